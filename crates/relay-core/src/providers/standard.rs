//! Standard Webhooks (and Svix, which uses the same scheme under `svix-*` names):
//! `webhook-signature: v1,<base64> ...` over `{webhook-id}.{webhook-timestamp}.{body}` with the
//! base64 key after `whsec_`; event type from the body's `type`; delivery id `webhook-id`. The
//! receiver refuses (400) a type that is not a header value (control characters, over 256 bytes)
//! and an id over 512 bytes. Secret: `whsec_` + base64 of 24 to 64 bytes, as the spec says.

use super::shared::{check_timestamp, json_string_field};
use super::{InboundRequest, Outcome, Provider, Rejection, SourceView, Verified, WeakSourceSecret};
use crate::signing::{
    constant_time_eq, decode_base64, hmac_sha256, standard_secret_key, validate_whsec,
};

pub(super) const PROVIDER: Provider = Provider::without_options(
    "standard",
    "Standard Webhooks / Svix (a whsec_ secret)",
    |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    |source, request, now| verify(source, request, now).map(Outcome::Event),
);

/// `whsec_` + base64 of the key, or the base64 alone: the Standard Webhooks libraries accept
/// both (`signing` strips the prefix when present).
pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    let prefixed;
    let secret = if secret.starts_with("whsec_") {
        secret
    } else {
        prefixed = format!("whsec_{secret}");
        &prefixed
    };
    validate_whsec(secret, "a Standard Webhooks secret")
        .map_err(|e| e.to_string())
        .map_err(|e| format!("{e} (copy the whsec_... secret the sender shows for this endpoint)"))
}

/// The `v1,<base64>` entries of every signature header value (space-separated lists; other
/// versions and entries that are not base64 are dropped).
pub fn parse_signatures<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Vec<u8>> {
    values
        .into_iter()
        .flat_map(|value| value.split_ascii_whitespace())
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(decode_base64)
        .collect()
}

pub(super) fn verify(
    source: &dyn SourceView,
    request: &InboundRequest,
    now: i64,
) -> Result<Verified, Rejection> {
    let (prefix, display) = if request.header("webhook-id").is_some() {
        ("webhook", "webhook")
    } else if request.header("svix-id").is_some() {
        ("svix", "svix")
    } else {
        return Err(Rejection::unauthorized("no webhook-id header"));
    };
    let id = request.header(&format!("{prefix}-id")).unwrap_or_default();
    let timestamp_text = request
        .header(&format!("{prefix}-timestamp"))
        .ok_or_else(|| Rejection::unauthorized(format!("no {display}-timestamp header")))?;
    let timestamp: i64 = timestamp_text.parse().map_err(|_| {
        Rejection::unauthorized(format!("{display}-timestamp is not a Unix time in seconds"))
    })?;
    let signatures = parse_signatures(request.header_values(&format!("{prefix}-signature")));
    if signatures.is_empty() {
        return Err(Rejection::unauthorized(format!(
            "no v1 signature in the {display}-signature header"
        )));
    }
    check_timestamp(timestamp, now, source.tolerance_secs())?;

    let ts = timestamp.to_string();
    let matched = source.secrets().iter().any(|secret| {
        let Some(key) = standard_secret_key(secret) else {
            return false;
        };
        let expected = hmac_sha256(
            &key,
            &[id.as_bytes(), b".", ts.as_bytes(), b".", &request.body],
        );
        signatures
            .iter()
            .any(|given| constant_time_eq(&expected, given))
    });
    if !matched {
        return Err(Rejection::unauthorized("signature does not match"));
    }

    let event_type = json_string_field(&request.body, "type")
        .map_err(Rejection::malformed)?
        .ok_or_else(|| Rejection::malformed("body has no string field \"type\""))?;
    Ok(Verified {
        event_type,
        delivery_id: Some(id.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config, request, source, vectors};
    use super::*;
    use crate::signing::standard_signature_header;

    fn signed(secret: &str, id: &str, ts: i64, body: &str) -> InboundRequest {
        let sig = standard_signature_header(&[secret], id, ts, body.as_bytes());
        request(
            &[
                ("webhook-id", id),
                ("webhook-timestamp", &ts.to_string()),
                ("webhook-signature", &format!("v1,bm90IGl0 {sig}")),
            ],
            body,
        )
    }

    #[test]
    fn official_vector_verifies_with_pinned_clock() {
        let v = &vectors()["standard_webhooks"];
        let ts = v["timestamp"].as_i64().unwrap();
        let req = request(
            &[
                ("webhook-id", v["id"].as_str().unwrap()),
                ("webhook-timestamp", &ts.to_string()),
                ("webhook-signature", v["signature"].as_str().unwrap()),
            ],
            v["body"].as_str().unwrap(),
        );
        let src = source(config("standard"), v["secret"].as_str().unwrap());
        // The vector's body has no "type": the signature passes, then the body is refused.
        let err = verify(&src, &req, ts).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("\"type\""));
        // Off by one second in the signature base, it fails on the signature.
        let err = verify(
            &src,
            &request(
                &[
                    ("webhook-id", v["id"].as_str().unwrap()),
                    ("webhook-timestamp", &(ts + 1).to_string()),
                    ("webhook-signature", v["signature"].as_str().unwrap()),
                ],
                v["body"].as_str().unwrap(),
            ),
            ts,
        )
        .unwrap_err();
        assert_eq!(err.message, "signature does not match");
    }

    #[test]
    fn verifies_type_and_id_and_svix_names() {
        let secret = vectors()["standard_webhooks"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = r#"{"type":"invoice.paid","data":{}}"#;
        let src = source(config("standard"), &secret);
        let verified = verify(&src, &signed(&secret, "msg_1", 1000, body), 1000).unwrap();
        assert_eq!(verified.event_type, "invoice.paid");
        assert_eq!(verified.delivery_id.as_deref(), Some("msg_1"));

        let sig = standard_signature_header(&[&secret], "msg_2", 1000, body.as_bytes());
        let req = request(
            &[
                ("svix-id", "msg_2"),
                ("svix-timestamp", "1000"),
                ("svix-signature", &sig),
            ],
            body,
        );
        assert!(verify(&src, &req, 1000).is_ok());
    }

    #[test]
    fn stale_future_tampered_and_unsigned_fail() {
        let secret = vectors()["standard_webhooks"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = r#"{"type":"a"}"#;
        let src = source(config("standard"), &secret);
        let stale = verify(&src, &signed(&secret, "m", 1000, body), 1812).unwrap_err();
        assert_eq!(stale.message, "timestamp 812 s old, tolerance 300 s");
        let future = verify(&src, &signed(&secret, "m", 1400, body), 1000).unwrap_err();
        assert!(future.message.contains("in the future"));
        let mut tampered = signed(&secret, "m", 1000, body);
        tampered.body = bytes::Bytes::from_static(br#"{"type":"b"}"#);
        assert_eq!(
            verify(&src, &tampered, 1000).unwrap_err().message,
            "signature does not match"
        );
        let unsigned = request(&[], body);
        assert_eq!(verify(&src, &unsigned, 1000).unwrap_err().status, 401);
    }
}
