//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`; event type from
//! `X-GitHub-Event` plus the event's top-level string `action` (`issues.opened`); delivery id
//! `X-GitHub-Delivery`. A hook sends its events as `json` (the body is the event) or `form`
//! (`application/x-www-form-urlencoded`, the event in the field `payload`): both are typed from
//! the same document (`event_document`), and a form without a JSON `payload` is refused (400).
//! A proxy that merges repeated headers may send `sha256=<a>,sha256=<b>`: the value is split on
//! commas and any entry that verifies passes. The receiver refuses (400) an event type that is
//! not a header value (control characters, over 256 bytes) and a delivery id over 512 bytes.
//! Secret: the one typed into GitHub's webhook settings, at least 16 characters.

use super::shared::require_shared_secret;
use super::{
    EventDocument, InboundRequest, Outcome, PAYLOAD_FIELD, Provider, Rejection, SourceView,
    Verified, WeakSourceSecret, event_document,
};
use crate::signing::{constant_time_eq, decode_hex, hmac_sha256};

pub(super) const PROVIDER: Provider = Provider::without_options(
    "github",
    "X-Hub-Signature-256 (the webhook secret)",
    |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    |source, request, _now| verify(source, request).map(Outcome::Event),
);

const SIGNATURE_HEADER: &str = "x-hub-signature-256";

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    require_shared_secret(
        secret,
        "the webhook secret typed into GitHub (repository or organization Settings > Webhooks > \
         Secret): a random string of at least 16 characters, e.g. from `openssl rand -hex 32`",
    )
}

/// The `sha256=<hex>` entries of every header value, comma-joined ones split (entries of another
/// form are dropped: they cannot match).
pub fn parse_signatures<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Vec<u8>> {
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().strip_prefix("sha256="))
        .filter_map(decode_hex)
        .collect()
}

pub(super) fn verify(
    source: &dyn SourceView,
    request: &InboundRequest,
) -> Result<Verified, Rejection> {
    if request.header(SIGNATURE_HEADER).is_none() {
        return Err(Rejection::unauthorized("no X-Hub-Signature-256 header"));
    }
    let given = parse_signatures(request.header_values(SIGNATURE_HEADER));
    if given.is_empty() {
        return Err(Rejection::unauthorized(
            "X-Hub-Signature-256 is not of the form sha256=<hex>",
        ));
    }
    // Each entry is compared in constant time; which entry matched may show, as it is public.
    let matched = source.secrets().iter().any(|secret| {
        let expected = hmac_sha256(secret.as_bytes(), &[&request.body]);
        given.iter().any(|g| constant_time_eq(&expected, g))
    });
    if !matched {
        return Err(Rejection::unauthorized("signature does not match"));
    }

    let event = request
        .header("x-github-event")
        .ok_or_else(|| Rejection::malformed("no X-GitHub-Event header"))?;
    // GitHub names the content type of the hook (`json` or `form`); a request without one is
    // read as JSON.
    let content_type = request.content_type().or(Some("application/json"));
    let document = event_document(content_type, &request.body).map_err(Rejection::malformed)?;
    if let EventDocument::Form(_) = document {
        return Err(Rejection::malformed(format!(
            "form body has no {PAYLOAD_FIELD} field (GitHub's form content type sends the event \
             as {PAYLOAD_FIELD}=<JSON>)"
        )));
    }
    let action = document
        .string_field("action")
        .map_err(Rejection::malformed)?;
    let event_type = match action {
        Some(action) => format!("{event}.{action}"),
        None => event.to_owned(),
    };
    Ok(Verified {
        event_type,
        delivery_id: request.header("x-github-delivery").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config, request, source, vectors};
    use super::*;
    use crate::domain::model::Source;

    fn vector_request(extra: &[(&str, &str)], body: &str) -> (Source, InboundRequest) {
        let v = &vectors()["github"];
        let sig = v["headers"]["X-Hub-Signature-256"].as_str().unwrap();
        let mut headers = vec![("X-Hub-Signature-256", sig), ("X-GitHub-Event", "ping")];
        headers.extend_from_slice(extra);
        (
            source(config("github"), v["secret"].as_str().unwrap()),
            request(&headers, body),
        )
    }

    #[test]
    fn official_vector_verifies() {
        let body = vectors()["github"]["body"].as_str().unwrap().to_owned();
        let (src, req) = vector_request(
            &[("content-type", "text/plain"), ("X-GitHub-Delivery", "d-1")],
            &body,
        );
        let verified = verify(&src, &req).unwrap();
        assert_eq!(verified.event_type, "ping");
        assert_eq!(verified.delivery_id.as_deref(), Some("d-1"));
    }

    #[test]
    fn comma_joined_signatures_pass_when_any_entry_verifies() {
        // A proxy that merges repeated headers joins their values with commas.
        let v = &vectors()["github"];
        let right = v["headers"]["X-Hub-Signature-256"].as_str().unwrap();
        let wrong = format!("sha256={}", "0".repeat(64));
        let body = v["body"].as_str().unwrap();
        let src = source(config("github"), v["secret"].as_str().unwrap());
        let signed = |signature: &str| {
            request(
                &[
                    ("X-Hub-Signature-256", signature),
                    ("X-GitHub-Event", "ping"),
                    ("content-type", "text/plain"),
                ],
                body,
            )
        };
        for joined in [
            format!("{wrong},{right}"),
            format!("{right},{wrong}"),
            format!("{wrong} , {right}"),
            format!("md5=zz,{right}"),
        ] {
            let req = signed(&joined);
            assert!(verify(&src, &req).is_ok(), "{joined}");
        }
        let both_wrong = format!("{wrong},sha256={}", "1".repeat(64));
        let req = signed(&both_wrong);
        assert_eq!(
            verify(&src, &req).unwrap_err().message,
            "signature does not match"
        );
        assert_eq!(
            parse_signatures([both_wrong.as_str(), "sha256=zz,,"]).len(),
            2
        );
    }

    #[test]
    fn tampered_body_fails() {
        let (src, req) = vector_request(&[], "Hello, World?");
        assert_eq!(
            verify(&src, &req).unwrap_err().message,
            "signature does not match"
        );
    }

    #[test]
    fn wrong_secret_fails_and_any_rotation_secret_passes() {
        let body = vectors()["github"]["body"].as_str().unwrap().to_owned();
        let (mut src, req) = vector_request(&[("content-type", "text/plain")], &body);
        let right = src.secrets[0].clone();
        src.secrets = vec!["wrong".into()];
        assert_eq!(verify(&src, &req).unwrap_err().status, 401);
        src.secrets = vec!["wrong".into(), right];
        assert!(verify(&src, &req).is_ok());
    }

    #[test]
    fn missing_and_malformed_headers_say_which() {
        let src = source(config("github"), "s");
        let err = verify(&src, &request(&[], "{}")).unwrap_err();
        assert_eq!(err.message, "no X-Hub-Signature-256 header");
        let err = verify(&src, &request(&[("X-Hub-Signature-256", "md5=zz")], "{}")).unwrap_err();
        assert!(err.message.contains("sha256=<hex>"));
    }

    #[test]
    fn event_type_includes_action() {
        let body = r#"{"action":"opened","issue":{"number":1}}"#;
        let sig = format!(
            "sha256={}",
            hex::encode(hmac_sha256(b"s", &[body.as_bytes()]))
        );
        let req = request(
            &[
                ("X-Hub-Signature-256", &sig),
                ("X-GitHub-Event", "issues"),
                ("content-type", "application/json"),
            ],
            body,
        );
        let verified = verify(&source(config("github"), "s"), &req).unwrap();
        assert_eq!(verified.event_type, "issues.opened");
        assert_eq!(verified.delivery_id, None);
    }

    /// A delivery signed over its raw body with secret `s`, as GitHub sends it.
    fn signed(event: &str, content_type: &str, body: &str) -> InboundRequest {
        let sig = format!(
            "sha256={}",
            hex::encode(hmac_sha256(b"s", &[body.as_bytes()]))
        );
        request(
            &[
                ("X-Hub-Signature-256", &sig),
                ("X-GitHub-Event", event),
                ("content-type", content_type),
            ],
            body,
        )
    }

    use crate::providers::document::form_of;
    use crate::providers::shared::FORM_MEDIA_TYPE as FORM;

    #[test]
    fn form_deliveries_are_typed_as_the_same_event_in_json() {
        let src = source(config("github"), "s");
        let type_of = |event: &str, content_type: &str, body: &str| {
            verify(&src, &signed(event, content_type, body))
                .map(|v| v.event_type)
                .map_err(|r| (r.status, r.message))
        };
        for (event, json, expected) in [
            (
                "issues",
                r#"{"action":"opened","issue":{"title":"a+b & c=d 100% ü"}}"#,
                "issues.opened",
            ),
            (
                "pull_request",
                r#"{"number":1,"action":"synchronize"}"#,
                "pull_request.synchronize",
            ),
            ("push", r#"{"ref":"refs/heads/main"}"#, "push"),
            ("ping", r#"{"zen":"x","hook_id":1}"#, "ping"),
            // Only a top-level string is an action.
            ("weird", r#"{"action":{"nested":"no"}}"#, "weird"),
        ] {
            let form = form_of(json);
            assert_eq!(
                type_of(event, "application/json", json).as_deref(),
                Ok(expected)
            );
            assert_eq!(
                type_of(event, FORM, &form).as_deref(),
                Ok(expected),
                "{form}"
            );
        }
        // Other content types are not read, as before.
        let form = form_of(r#"{"action":"opened"}"#);
        assert_eq!(
            type_of("issues", "text/plain", &form).as_deref(),
            Ok("issues")
        );
    }

    #[test]
    fn form_signatures_cover_the_raw_form_bytes() {
        let src = source(config("github"), "s");
        let form = form_of(r#"{"action":"opened", "n":1}"#);
        assert!(form.contains('+'), "{form}");
        let mut req = signed("issues", FORM, &form);
        assert_eq!(verify(&src, &req).unwrap().event_type, "issues.opened");
        // The same document encoded otherwise (`%20` for `+`) is not what was signed.
        req.body = bytes::Bytes::from(form.replace('+', "%20"));
        assert_eq!(
            verify(&src, &req).unwrap_err().message,
            "signature does not match"
        );
    }

    #[test]
    fn form_bodies_without_a_json_payload_are_400_and_say_which() {
        let src = source(config("github"), "s");
        let refusal = |body: &str| verify(&src, &signed("issues", FORM, body)).unwrap_err();
        for body in ["", "action=opened", "payloads=%7B%7D"] {
            let err = refusal(body);
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(
                err.message,
                "form body has no payload field (GitHub's form content type sends the event as \
                 payload=<JSON>)"
            );
        }
        for body in ["payload=", "payload=opened", "payload=%7B%22action%22"] {
            let err = refusal(body);
            assert_eq!(err.status, 400, "{body}");
            assert!(
                err.message
                    .starts_with("the form field payload is not JSON: "),
                "{body}: {}",
                err.message
            );
        }
        let err = refusal("payload=%5B%5D");
        assert_eq!(err.status, 400);
        assert!(
            err.message
                .starts_with("the form field payload is not a JSON object: "),
            "{}",
            err.message
        );
        // A JSON body that is not JSON, or no object, stays a 400 too.
        let err = verify(&src, &signed("issues", "application/json", "{")).unwrap_err();
        assert!(
            err.message.starts_with("body is not JSON: "),
            "{}",
            err.message
        );
        let err = verify(&src, &signed("issues", "application/json", "[]")).unwrap_err();
        assert!(
            err.message.starts_with("body is not a JSON object: "),
            "{}",
            err.message
        );
    }
}
