//! Stripe.
//!
//! - Signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]`; each `v1` is
//!   the hex HMAC-SHA256 of `{t}.{raw body}` keyed with the whole endpoint secret as text,
//!   `whsec_` prefix included (it is not base64-decoded, unlike Standard Webhooks). Any `v1`
//!   matching any of the source's secrets passes (Stripe sends one `v1` per active secret while
//!   an endpoint secret is rolled); `v0` (test-mode legacy scheme) is ignored.
//! - Timestamp: `t` must be within the source's tolerance (default 300 s, as Stripe's libraries)
//!   in both directions (the libraries only check the past; a future stamp is refused here too).
//! - Event type: the body's `type` (`payment_intent.succeeded`); delivery id: the body's `id`
//!   (`evt_...`), the same across Stripe's retries. Both are required: an authentic body without
//!   them is refused with 400; so is a type that is not a header value (control characters, over
//!   256 bytes) or an id over 512 bytes (checked by the receiver for every provider).
//! - Secret: `whsec_` followed by the rest of the endpoint's signing secret.

use super::shared::{check_timestamp, parse_timestamp};
use super::{InboundRequest, Outcome, Provider, Rejection, SourceView, Verified, WeakSourceSecret};
use crate::signing::{constant_time_eq, decode_hex, hmac_sha256};

pub(super) const PROVIDER: Provider = Provider::without_options(
    "stripe",
    "Stripe-Signature (the endpoint's whsec_ signing secret)",
    |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    |source, request, now| verify(source, request, now).map(Outcome::Event),
);

const HEADER: &str = "stripe-signature";

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    let rest = secret.trim().strip_prefix("whsec_");
    if rest.is_some_and(|rest| !rest.trim().is_empty()) {
        return Ok(());
    }
    Err(
        "a Stripe endpoint secret is whsec_ followed by the key (Dashboard > Developers > \
         Webhooks > the endpoint > Signing secret, or the one `stripe listen` prints)"
            .into(),
    )
}

/// What a `Stripe-Signature` header says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureHeader {
    pub timestamp: Option<i64>,
    /// Decoded `v1` signatures (entries that are not hex are dropped: they cannot match).
    pub v1: Vec<Vec<u8>>,
}

/// Parses every value of the header (repeated headers are joined as one list). Items are
/// `key=value`, comma-separated, whitespace around them ignored, unknown keys skipped.
pub fn parse_signature_header<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<SignatureHeader, Rejection> {
    let mut parsed = SignatureHeader::default();
    for value in values {
        for item in value.split(',') {
            let Some((key, val)) = item.split_once('=') else {
                continue;
            };
            match key.trim() {
                "t" => {
                    let ts = parse_timestamp(val, "Stripe-Signature timestamp (t=)")?;
                    if parsed.timestamp.is_some_and(|t| t != ts) {
                        return Err(Rejection::unauthorized(
                            "Stripe-Signature has more than one timestamp (t=)",
                        ));
                    }
                    parsed.timestamp = Some(ts);
                }
                "v1" => {
                    if let Some(sig) = decode_hex(val).filter(|s| s.len() == 32) {
                        parsed.v1.push(sig);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(parsed)
}

/// The signature Stripe computes: hex-decoded form of HMAC-SHA256(secret, `{t}.{body}`).
pub fn expected_signature(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp.to_string();
    hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body])
}

pub(super) fn verify(
    source: &dyn SourceView,
    request: &InboundRequest,
    now: i64,
) -> Result<Verified, Rejection> {
    if request.header(HEADER).is_none() {
        return Err(Rejection::unauthorized("no Stripe-Signature header"));
    }
    let header = parse_signature_header(request.header_values(HEADER))?;
    let timestamp = header
        .timestamp
        .ok_or_else(|| Rejection::unauthorized("Stripe-Signature has no timestamp (t=)"))?;
    if header.v1.is_empty() {
        return Err(Rejection::unauthorized(
            "Stripe-Signature has no v1 signature (v1=<64 hex digits>)",
        ));
    }
    check_timestamp(timestamp, now, source.tolerance_secs())?;
    let matched = source.secrets().iter().any(|secret| {
        let expected = expected_signature(secret, timestamp, &request.body);
        header
            .v1
            .iter()
            .any(|given| constant_time_eq(&expected, given))
    });
    if !matched {
        return Err(Rejection::unauthorized("signature does not match"));
    }

    let body: serde_json::Value = serde_json::from_slice(&request.body)
        .map_err(|e| Rejection::malformed(format!("body is not a Stripe event (JSON): {e}")))?;
    let field = |name: &str| {
        body.get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                Rejection::malformed(format!(
                    "body is not a Stripe event: no string field {name:?}"
                ))
            })
    };
    let event_type = field("type")?;
    let id = field("id")?;
    Ok(Verified {
        event_type,
        delivery_id: Some(id),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config, request, source};
    use super::*;
    use crate::domain::model::Source;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &str = r#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}"#;
    const T: i64 = 1_700_000_000;

    fn header(secret: &str, t: i64, body: &str) -> String {
        format!(
            "t={t},v1={}",
            hex::encode(expected_signature(secret, t, body.as_bytes()))
        )
    }

    fn req(header_value: &str, body: &str) -> InboundRequest {
        request(&[("Stripe-Signature", header_value)], body)
    }

    fn src() -> Source {
        source(config("stripe"), SECRET)
    }

    /// Produced by the official `stripe` Python library (stripe 16.1, `WebhookSignature.generate_signature_header`): the header that
    /// `stripe.WebhookSignature` accepts for this secret, timestamp and body (see
    /// tests/test_providers_live.py, which signs with the library at run time as well).
    #[test]
    fn header_made_by_the_official_library_verifies() {
        let body = r#"{"id": "evt_test_webhook", "object": "event", "type": "charge.succeeded"}"#;
        let secret = "whsec_test_secret";
        let t = 1_700_000_000;
        let sig =
            "t=1700000000,v1=dedcb17f0e6cb0edfa1b8990429c72d68d7bff47404b384af2ffdd0ff8acffd2";
        let src = source(config("stripe"), secret);
        let verified = verify(&src, &req(sig, body), t).unwrap();
        assert_eq!(verified.event_type, "charge.succeeded");
        assert_eq!(verified.delivery_id.as_deref(), Some("evt_test_webhook"));
    }

    #[test]
    fn verifies_type_and_id() {
        let verified = verify(&src(), &req(&header(SECRET, T, BODY), BODY), T).unwrap();
        assert_eq!(verified.event_type, "payment_intent.succeeded");
        assert_eq!(verified.delivery_id.as_deref(), Some("evt_1"));
    }

    #[test]
    fn key_is_the_whole_whsec_string() {
        // Keyed with the base64-decoded part (the Standard Webhooks way), it must not verify.
        let decoded = crate::signing::standard_secret_key(SECRET).unwrap_or_default();
        let mac = hmac_sha256(&decoded, &[T.to_string().as_bytes(), b".", BODY.as_bytes()]);
        let wrong = format!("t={T},v1={}", hex::encode(mac));
        assert_eq!(
            verify(&src(), &req(&wrong, BODY), T).unwrap_err().message,
            "signature does not match"
        );
    }

    #[test]
    fn any_v1_matches_and_other_schemes_are_ignored() {
        let good = header(SECRET, T, BODY);
        let sig = good.split_once(",v1=").unwrap().1;
        let value = format!(" t={T} , v0={sig}, v1={}, v1={sig} ", "ab".repeat(32));
        assert!(verify(&src(), &req(&value, BODY), T).is_ok());
        // Only a v0 with the right value is not enough.
        let value = format!("t={T},v0={sig}");
        assert!(
            verify(&src(), &req(&value, BODY), T)
                .unwrap_err()
                .message
                .contains("no v1")
        );
    }

    #[test]
    fn repeated_headers_are_joined() {
        let good = header(SECRET, T, BODY);
        let (t, v1) = good.split_once(',').unwrap();
        let req = request(&[("stripe-signature", t), ("STRIPE-SIGNATURE", v1)], BODY);
        assert!(verify(&src(), &req, T).is_ok());
    }

    #[test]
    fn rotation_any_secret_passes() {
        let mut src = src();
        src.secrets = vec!["whsec_old".into(), SECRET.into()];
        assert!(verify(&src, &req(&header(SECRET, T, BODY), BODY), T).is_ok());
        src.secrets = vec!["whsec_old".into()];
        assert_eq!(
            verify(&src, &req(&header(SECRET, T, BODY), BODY), T)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn tampered_wrong_secret_unsigned_stale_future() {
        let src = src();
        let tampered = BODY.replace("evt_1", "evt_2");
        let err = verify(&src, &req(&header(SECRET, T, BODY), &tampered), T).unwrap_err();
        assert_eq!(
            (err.status, err.message.as_str()),
            (401, "signature does not match")
        );
        let err = verify(&src, &req(&header("whsec_other", T, BODY), BODY), T).unwrap_err();
        assert_eq!(err.message, "signature does not match");
        let err = verify(&src, &request(&[], BODY), T).unwrap_err();
        assert_eq!(err.message, "no Stripe-Signature header");
        let err = verify(&src, &req(&header(SECRET, T - 812, BODY), BODY), T).unwrap_err();
        assert_eq!(err.message, "timestamp 812 s old, tolerance 300 s");
        let err = verify(&src, &req(&header(SECRET, T + 400, BODY), BODY), T).unwrap_err();
        assert_eq!(
            err.message,
            "timestamp 400 s in the future, tolerance 300 s"
        );
        // At the edge of the tolerance it still passes.
        assert!(verify(&src, &req(&header(SECRET, T - 300, BODY), BODY), T).is_ok());
        assert!(verify(&src, &req(&header(SECRET, T + 300, BODY), BODY), T).is_ok());
    }

    #[test]
    fn malformed_headers_say_what_failed_without_secrets() {
        let src = src();
        for (value, expected) in [
            ("v1=abcd", "no timestamp"),
            ("t=12x,v1=ab", "not a Unix time"),
            (&format!("t={T}")[..], "no v1 signature"),
            (
                &format!("t={T},t={},v1=00", T + 1)[..],
                "more than one timestamp",
            ),
            ("garbage", "no timestamp"),
        ] {
            let err = verify(&src, &req(value, BODY), T).unwrap_err();
            assert_eq!(err.status, 401, "{value}");
            assert!(err.message.contains(expected), "{value}: {}", err.message);
            assert!(!err.message.contains(SECRET));
        }
    }

    #[test]
    fn authentic_body_without_structure_is_400() {
        for body in ["not json", r#"{"id":"evt_1"}"#, r#"{"type":"x"}"#, "[1]"] {
            let err = verify(&src(), &req(&header(SECRET, T, body), body), T).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
        }
    }
}
