//! Slack (Events API, slash commands, interactivity).
//!
//! - Signature: `X-Slack-Signature: v0=<hex HMAC-SHA256>` keyed with the app's signing secret over
//!   `v0:{X-Slack-Request-Timestamp}:{raw body}` (the timestamp text as sent).
//! - Timestamp: `X-Slack-Request-Timestamp` within the source's tolerance (Slack's SDKs use
//!   300 s), in both directions.
//! - What the verified body is, and what it becomes:
//!   - JSON `{"type":"url_verification","challenge":...}`: answered at once with 200
//!     `{"challenge": ...}` and not queued (Slack accepts the challenge as JSON);
//!   - JSON `event_callback`: event type = `event.type` (`message`, `app_mention`), delivery id =
//!     `event_id` (the same across Slack's retries, which add `X-Slack-Retry-Num`);
//!   - other JSON envelopes (`app_rate_limited`, ...): their `type`, with `event_id` if present;
//!   - form with `payload=<JSON>` (interactivity): `interaction.<payload.type>`
//!     (`interaction.block_actions`, `interaction.view_submission`);
//!   - form with `command=/name` (slash command): `slash_command.name`;
//!   - form with `ssl_check=1`: answered with 200, not queued.
//!
//!   Slash commands and interactions carry no delivery id (Slack does not retry them); retry
//!   headers such as `X-Slack-Retry-Num` are not an id and are not used for deduplication.
//!   A verified body that is none of these is refused with 400, as is an `event_id` over 512
//!   bytes (checked by the receiver for every provider).
//! - Secret: the app's signing secret (32 hex characters); at least 16 are required.

use super::shared::{
    FORM_MEDIA_TYPE, check_timestamp, form_field, parse_timestamp, require_shared_secret,
    type_token,
};
use super::{
    Answer, EventDocument, InboundRequest, Outcome, Provider, Rejection, SourceView, Verified,
    WeakSourceSecret, event_document,
};
use crate::signing::{constant_time_eq, decode_hex, hmac_sha256};

pub(super) const PROVIDER: Provider = Provider::without_options(
    "slack",
    "X-Slack-Signature (the app's signing secret)",
    |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    verify,
);

const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
const SIGNATURE_HEADER: &str = "x-slack-signature";

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    require_shared_secret(
        secret,
        "the app's Signing Secret, 32 hex characters (api.slack.com/apps > the app > Basic \
         Information > App Credentials; not the deprecated verification token)",
    )
}

/// The `v0` signatures among the header values (hex-decoded; others dropped).
pub fn parse_signatures<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Vec<u8>> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().strip_prefix("v0="))
        .filter_map(decode_hex)
        .filter(|s| s.len() == 32)
        .collect()
}

/// What a verified Slack body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackBody {
    Challenge(String),
    SslCheck,
    Event {
        event_type: String,
        id: Option<String>,
    },
}

/// Classifies a (verified) body: JSON envelopes, interactive payloads, slash commands. Without
/// a content type, a body that opens an object is JSON and any other a form.
pub fn classify(content_type: Option<&str>, body: &[u8]) -> Result<SlackBody, String> {
    let assumed = if body.first() == Some(&b'{') {
        "application/json"
    } else {
        FORM_MEDIA_TYPE
    };
    match event_document(content_type.or(Some(assumed)), body)? {
        EventDocument::Json(json) => classify_envelope(json),
        EventDocument::FormPayload(json) => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| format!("the payload field is not JSON: {e}"))?;
            let kind = value
                .get("type")
                .and_then(serde_json::Value::as_str)
                .and_then(type_token)
                .ok_or("the payload has no string field \"type\"")?;
            Ok(SlackBody::Event {
                event_type: format!("interaction.{kind}"),
                id: None,
            })
        }
        EventDocument::Form(pairs) => classify_form(&pairs),
        EventDocument::Opaque => Err("Slack sends JSON or form bodies; this is neither".into()),
    }
}

/// An Events API envelope: `url_verification`, `event_callback` or another `type`.
fn classify_envelope(json: &str) -> Result<SlackBody, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("body is not JSON: {e}"))?;
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let kind = text(&value, "type").ok_or("body has no string field \"type\"")?;
    let id = text(&value, "event_id");
    match kind.as_str() {
        "url_verification" => text(&value, "challenge")
            .map(SlackBody::Challenge)
            .ok_or_else(|| "url_verification without a string \"challenge\"".into()),
        "event_callback" => {
            let event_type = value
                .get("event")
                .and_then(|e| text(e, "type"))
                .and_then(|t| type_token(&t).map(str::to_owned))
                .ok_or("event_callback without a string \"event.type\"")?;
            Ok(SlackBody::Event { event_type, id })
        }
        other => Ok(SlackBody::Event {
            event_type: type_token(other)
                .ok_or("\"type\" is not a usable event type")?
                .to_owned(),
            id,
        }),
    }
}

/// A form without a `payload`: a slash command or Slack's SSL check.
fn classify_form(pairs: &[(String, String)]) -> Result<SlackBody, String> {
    if let Some(command) = form_field(pairs, "command") {
        let name = type_token(command.trim_start_matches('/'))
            .ok_or("the command field is not a usable name")?;
        return Ok(SlackBody::Event {
            event_type: format!("slash_command.{name}"),
            id: None,
        });
    }
    if form_field(pairs, "ssl_check") == Some("1") {
        return Ok(SlackBody::SslCheck);
    }
    Err("form body is neither a slash command (command=) nor an interaction (payload=)".into())
}

pub(super) fn verify(
    source: &dyn SourceView,
    request: &InboundRequest,
    now: i64,
) -> Result<Outcome, Rejection> {
    let timestamp_text = request
        .header(TIMESTAMP_HEADER)
        .ok_or_else(|| Rejection::unauthorized("no X-Slack-Request-Timestamp header"))?;
    if request.header(SIGNATURE_HEADER).is_none() {
        return Err(Rejection::unauthorized("no X-Slack-Signature header"));
    }
    let given = parse_signatures(request.header_values(SIGNATURE_HEADER));
    if given.is_empty() {
        return Err(Rejection::unauthorized(
            "X-Slack-Signature is not of the form v0=<64 hex digits>",
        ));
    }
    let timestamp = parse_timestamp(timestamp_text, "X-Slack-Request-Timestamp")?;
    check_timestamp(timestamp, now, source.tolerance_secs())?;
    let matched = source.secrets().iter().any(|secret| {
        let expected = hmac_sha256(
            secret.as_bytes(),
            &[b"v0:", timestamp_text.as_bytes(), b":", &request.body],
        );
        given.iter().any(|g| constant_time_eq(&expected, g))
    });
    if !matched {
        return Err(Rejection::unauthorized("signature does not match"));
    }

    match classify(request.content_type(), &request.body).map_err(Rejection::malformed)? {
        SlackBody::Challenge(challenge) => Ok(Outcome::Answer(Answer {
            status: 200,
            body: serde_json::json!({ "challenge": challenge }),
        })),
        SlackBody::SslCheck => Ok(Outcome::Answer(Answer {
            status: 200,
            body: serde_json::json!({ "ok": true }),
        })),
        SlackBody::Event { event_type, id } => Ok(Outcome::Event(Verified {
            event_type,
            delivery_id: id,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config, request, source, vectors};
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const T: i64 = 1_531_420_618;

    fn sign(secret: &str, ts: i64, body: &str) -> String {
        let mac = hmac_sha256(
            secret.as_bytes(),
            &[format!("v0:{ts}:").as_bytes(), body.as_bytes()],
        );
        format!("v0={}", hex::encode(mac))
    }

    fn signed(ts: i64, body: &str, content_type: &str) -> InboundRequest {
        request(
            &[
                ("X-Slack-Request-Timestamp", &ts.to_string()),
                ("X-Slack-Signature", &sign(SECRET, ts, body)),
                ("Content-Type", content_type),
            ],
            body,
        )
    }

    fn event(outcome: Outcome) -> Verified {
        match outcome {
            Outcome::Event(v) => v,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn official_vector_is_a_slash_command() {
        let v = &vectors()["slack"];
        let ts = v["timestamp"].as_i64().unwrap();
        let req = request(
            &[
                (
                    "X-Slack-Request-Timestamp",
                    v["headers"]["X-Slack-Request-Timestamp"].as_str().unwrap(),
                ),
                (
                    "X-Slack-Signature",
                    v["headers"]["X-Slack-Signature"].as_str().unwrap(),
                ),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            v["body"].as_str().unwrap(),
        );
        let src = source(config("slack"), v["secret"].as_str().unwrap());
        let verified = event(verify(&src, &req, ts).unwrap());
        assert_eq!(verified.event_type, "slash_command.webhook-collect");
        assert_eq!(verified.delivery_id, None);
        // The vector is from 2018: with the real clock it is stale.
        let err = verify(&src, &req, ts + 3600).unwrap_err();
        assert_eq!(err.message, "timestamp 3600 s old, tolerance 300 s");
    }

    #[test]
    fn url_verification_is_answered_only_when_verified() {
        let body = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let src = source(config("slack"), SECRET);
        let outcome = verify(&src, &signed(T, body, "application/json"), T).unwrap();
        assert_eq!(
            outcome,
            Outcome::Answer(Answer {
                status: 200,
                body: serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}),
            })
        );
        let mut forged = signed(T, body, "application/json");
        forged.body = bytes::Bytes::from(body.replace("3eZ", "4eZ"));
        assert_eq!(verify(&src, &forged, T).unwrap_err().status, 401);
    }

    #[test]
    fn event_callback_interaction_and_other_envelopes() {
        let src = source(config("slack"), SECRET);
        let body = r#"{"type":"event_callback","event_id":"Ev123","event":{"type":"app_mention","text":"hi"}}"#;
        let verified = event(verify(&src, &signed(T, body, "application/json"), T).unwrap());
        assert_eq!(verified.event_type, "app_mention");
        assert_eq!(verified.delivery_id.as_deref(), Some("Ev123"));

        let body = "payload=%7B%22type%22%3A%22block_actions%22%2C%22trigger_id%22%3A%221%22%7D";
        let verified = event(
            verify(
                &src,
                &signed(T, body, "application/x-www-form-urlencoded"),
                T,
            )
            .unwrap(),
        );
        assert_eq!(verified.event_type, "interaction.block_actions");

        let body = r#"{"type":"app_rate_limited","minute_rate_limited":1}"#;
        let verified = event(verify(&src, &signed(T, body, "application/json"), T).unwrap());
        assert_eq!(verified.event_type, "app_rate_limited");

        let outcome = verify(
            &src,
            &signed(
                T,
                "ssl_check=1&token=x",
                "application/x-www-form-urlencoded",
            ),
            T,
        )
        .unwrap();
        assert!(matches!(
            outcome,
            Outcome::Answer(Answer { status: 200, .. })
        ));
    }

    #[test]
    fn authentic_but_broken_bodies_are_400() {
        let src = source(config("slack"), SECRET);
        for (body, ct) in [
            ("{", "application/json"),
            (r#"{"event":{}}"#, "application/json"),
            (r#"{"type":"event_callback"}"#, "application/json"),
            (r#"{"type":"url_verification"}"#, "application/json"),
            ("a=b", "application/x-www-form-urlencoded"),
            ("payload=notjson", "application/x-www-form-urlencoded"),
            ("hello", "text/plain"),
        ] {
            let err = verify(&src, &signed(T, body, ct), T).unwrap_err();
            assert_eq!(err.status, 400, "{body}: {}", err.message);
        }
    }

    #[test]
    fn tampered_wrong_secret_unsigned_stale_future() {
        let body = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}"#;
        let mut src = source(config("slack"), "other-secret");
        assert_eq!(
            verify(&src, &signed(T, body, "application/json"), T)
                .unwrap_err()
                .message,
            "signature does not match"
        );
        src.secrets.push(SECRET.into());
        assert!(verify(&src, &signed(T, body, "application/json"), T).is_ok());
        let mut tampered = signed(T, body, "application/json");
        tampered.body = bytes::Bytes::from(body.replace("Ev1", "Ev2"));
        assert_eq!(
            verify(&src, &tampered, T).unwrap_err().message,
            "signature does not match"
        );
        let err = verify(&src, &request(&[], body), T).unwrap_err();
        assert_eq!(err.message, "no X-Slack-Request-Timestamp header");
        let err = verify(
            &src,
            &request(&[("X-Slack-Request-Timestamp", "1")], body),
            T,
        )
        .unwrap_err();
        assert_eq!(err.message, "no X-Slack-Signature header");
        let err = verify(
            &src,
            &request(
                &[
                    ("X-Slack-Request-Timestamp", "1"),
                    ("X-Slack-Signature", "v1=ab"),
                ],
                body,
            ),
            T,
        )
        .unwrap_err();
        assert!(err.message.contains("v0=<64 hex digits>"));
        let err = verify(&src, &signed(T - 812, body, "application/json"), T).unwrap_err();
        assert_eq!(err.message, "timestamp 812 s old, tolerance 300 s");
        let err = verify(&src, &signed(T + 400, body, "application/json"), T).unwrap_err();
        assert_eq!(
            err.message,
            "timestamp 400 s in the future, tolerance 300 s"
        );
    }

    #[test]
    fn repeated_signature_headers_any_matches() {
        let body = r#"{"type":"event_callback","event":{"type":"message"}}"#;
        let src = source(config("slack"), SECRET);
        let req = request(
            &[
                ("x-slack-request-timestamp", &format!(" {T} ")),
                ("X-Slack-Signature", &format!("v0={}", "00".repeat(32))),
                ("X-SLACK-SIGNATURE", &sign(SECRET, T, body)),
                ("content-type", "application/json; charset=utf-8"),
            ],
            body,
        );
        assert!(verify(&src, &req, T).is_ok());
    }
}
