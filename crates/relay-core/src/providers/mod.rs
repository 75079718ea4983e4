//! Inbound verification. Each provider is one file that says where its signature, event type and
//! delivery id come from; `verify` dispatches on the source's configured provider.
//!
//! Rules every provider keeps: the signature is checked over the raw bytes before anything in the
//! body is believed; every secret of the source is tried (rotation); comparisons are constant-time
//! (`signing::constant_time_eq`); signed timestamps are checked in both directions against the
//! source's tolerance (`check_timestamp`) with the clock passed in as `now`; header names are
//! case-insensitive, values are trimmed and repeated headers are all looked at (a provider whose
//! signature header may arrive comma-joined by a proxy splits it: GitHub, Stripe, Slack); a 401
//! says what failed and never echoes a secret or an expected signature; a 400 is only given to an
//! authentic request whose body breaks the structure the provider defines.
//!
//! What a provider extracts is checked once more, for every provider, by the receive use case
//! (`receive::check_carriable`): an event type must be at most `receive::MAX_EVENT_TYPE_BYTES`
//! of visible ASCII and space (it travels in the `x-relay-event-type` header), a delivery id at
//! most `receive::MAX_DELIVERY_ID_BYTES` (it is part of a store key); otherwise 400.
//!
//! Each provider file also holds `validate_secret`, the rule for the secrets `sources add` and
//! `sources update --add-secret` accept (`validate_source_secret`).

pub mod fuzzing;
mod github;
mod hmac_generic;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod token;
mod twilio;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::model::{ProviderConfig, Source};

/// An inbound HTTP request with its body exactly as the provider sent it.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub method: Method,
    /// The path without the query, e.g. `/github`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl InboundRequest {
    /// The first value of a header, trimmed; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .find(|v| !v.is_empty())
    }

    /// Every value of a repeated header, each as sent: a value that a proxy joined with commas
    /// stays one value, so a provider whose header may be joined splits it itself.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .get_all(name)
            .into_iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }
}

/// What verification learned about an authentic request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub event_type: String,
    /// The provider's own delivery id, used to drop duplicate deliveries.
    pub delivery_id: Option<String>,
}

/// What an authentic request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Queue it as an event.
    Event(Verified),
    /// Answer at once and queue nothing: Slack's `url_verification` challenge, a `token`
    /// source's URL check by `GET`.
    Answer(Answer),
}

/// A direct answer to an authentic request that is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

/// Why a request is refused: a status code and a message safe to show the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

impl Rejection {
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            message: message.into(),
        }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }
}

/// Verifies `request` for `source` at `now` (seconds since the epoch). Only `token` sources
/// answer anything but `POST` (Mailchimp checks the URL with a `GET`); the caller answers 405
/// to other methods before coming here.
pub fn verify(source: &Source, request: &InboundRequest, now: i64) -> Result<Outcome, Rejection> {
    if source.secrets.is_empty() {
        return Err(Rejection::unauthorized(
            "source has no secret configured; add one with relay sources update --add-secret",
        ));
    }
    let event = |verified: Verified| Outcome::Event(verified);
    match &source.provider {
        ProviderConfig::Github => github::verify(source, request).map(event),
        ProviderConfig::Standard => standard::verify(source, request, now).map(event),
        ProviderConfig::Hmac(options) => {
            hmac_generic::verify(source, options, request, now).map(event)
        }
        ProviderConfig::Stripe => stripe::verify(source, request, now).map(event),
        ProviderConfig::Shopify => shopify::verify(source, request).map(event),
        ProviderConfig::Slack => slack::verify(source, request, now),
        ProviderConfig::Twilio(options) => twilio::verify(source, options, request).map(event),
        ProviderConfig::Token(options) => token::verify(source, options, request),
    }
}

pub use hmac_generic::validate_new_options as validate_hmac_options;

/// The fewest bytes a shared secret typed by a person (GitHub, hmac, token) or issued by a
/// provider (Shopify, Slack, Twilio) may have: short keys can be guessed offline from one signed
/// request. Every real provider secret is longer (Slack and Twilio issue 32 hex characters,
/// Shopify 32 or more).
pub const MIN_SHARED_SECRET_BYTES: usize = 16;

/// Checks a secret given to `sources add` or `sources update --add-secret` against what
/// `provider` issues. The message says what was wrong and where the secret is found; it never
/// contains the secret.
pub fn validate_source_secret(provider: &ProviderConfig, secret: &str) -> Result<(), String> {
    match provider {
        ProviderConfig::Github => github::validate_secret(secret),
        ProviderConfig::Standard => standard::validate_secret(secret),
        ProviderConfig::Hmac(options) => hmac_generic::validate_secret(options, secret),
        ProviderConfig::Stripe => stripe::validate_secret(secret),
        ProviderConfig::Shopify => shopify::validate_secret(secret),
        ProviderConfig::Slack => slack::validate_secret(secret),
        ProviderConfig::Twilio(_) => twilio::validate_secret(secret),
        ProviderConfig::Token(_) => token::validate_secret(secret),
    }
}

/// The rule of the shared-secret providers: not blank and at least `MIN_SHARED_SECRET_BYTES`
/// (surrounding whitespace not counted); `issued` says what the provider gives out.
pub(crate) fn require_shared_secret(secret: &str, issued: &str) -> Result<(), String> {
    let length = secret.trim().len();
    if length == 0 {
        return Err(format!("the secret is empty; expected {issued}"));
    }
    if length < MIN_SHARED_SECRET_BYTES {
        return Err(format!(
            "the secret is too short: {length} of at least {MIN_SHARED_SECRET_BYTES} characters; expected {issued}"
        ));
    }
    Ok(())
}

/// True when `method` is answered by `source`'s provider; everything else gets 405.
pub fn accepts_method(provider: &ProviderConfig, method: &Method) -> bool {
    *method == Method::POST
        || (*method == Method::GET && matches!(provider, ProviderConfig::Token(_)))
}

/// Parses a signed Unix timestamp in seconds (`header` names it in the refusal).
pub(crate) fn parse_timestamp(text: &str, header: &str) -> Result<i64, Rejection> {
    let text = text.trim();
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::unauthorized(format!(
            "{header} is not a Unix time in seconds"
        )));
    }
    text.parse()
        .map_err(|_| Rejection::unauthorized(format!("{header} is not a Unix time in seconds")))
}

/// True when the media type of `content_type` is `essence` (parameters and case ignored).
pub(crate) fn media_type_is(content_type: Option<&str>, essence: &str) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(essence))
    })
}

pub(crate) fn is_form(request: &InboundRequest) -> bool {
    media_type_is(request.content_type(), "application/x-www-form-urlencoded")
}

/// The pairs of an `application/x-www-form-urlencoded` text, decoded (`+` is a space).
pub(crate) fn form_pairs(text: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of form field `name`.
pub(crate) fn form_field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A value usable as (part of) an event type: 1-128 visible ASCII characters without spaces.
pub(crate) fn type_token(text: &str) -> Option<&str> {
    let text = text.trim();
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'*' && b != b',');
    ok.then_some(text)
}

/// Checks a signed timestamp against the tolerance, in both directions.
pub(crate) fn check_timestamp(timestamp: i64, now: i64, tolerance: u64) -> Result<(), Rejection> {
    let age = now.saturating_sub(timestamp);
    let tolerance_i = i64::try_from(tolerance).unwrap_or(i64::MAX);
    if age > tolerance_i {
        return Err(Rejection::unauthorized(format!(
            "timestamp {age} s old, tolerance {tolerance} s"
        )));
    }
    if -age > tolerance_i {
        return Err(Rejection::unauthorized(format!(
            "timestamp {} s in the future, tolerance {tolerance} s",
            -age
        )));
    }
    Ok(())
}

/// The top-level string field `field` of a JSON object body, without building a whole tree.
pub(crate) fn json_string_field(body: &[u8], field: &str) -> Result<Option<String>, String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct FieldVisitor<'f>(&'f str);
    impl<'de> Visitor<'de> for FieldVisitor<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if found.is_none() && key == self.0 {
                    let value: serde_json::Value = map.next_value()?;
                    found = value.as_str().map(str::to_owned);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = de
        .deserialize_map(FieldVisitor(field))
        .map_err(|e| format!("body is not a JSON object: {e}"))?;
    de.end()
        .map_err(|e| format!("body is not a JSON object: {e}"))?;
    Ok(value)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn vectors() -> serde_json::Value {
        let text = include_str!("../../testdata/providers.json");
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn request(headers: &[(&str, &str)], body: &str) -> InboundRequest {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        InboundRequest {
            method: Method::POST,
            path: "/test".into(),
            query: None,
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    pub fn source(provider: ProviderConfig, secret: &str) -> Source {
        Source {
            name: "test".into(),
            provider,
            secrets: vec![secret.into()],
            tolerance_secs: 300,
            created_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_directions() {
        assert!(check_timestamp(1000, 1000, 300).is_ok());
        assert!(check_timestamp(700, 1000, 300).is_ok());
        let old = check_timestamp(188, 1000, 300).unwrap_err();
        assert_eq!(old.message, "timestamp 812 s old, tolerance 300 s");
        let future = check_timestamp(1400, 1000, 300).unwrap_err();
        assert_eq!(
            future.message,
            "timestamp 400 s in the future, tolerance 300 s"
        );
    }

    #[test]
    fn reads_one_json_field() {
        let body = br#"{"zen":"x","nested":{"action":"no"},"action":"opened"}"#;
        assert_eq!(
            json_string_field(body, "action").unwrap(),
            Some("opened".into())
        );
        assert_eq!(json_string_field(br#"{"a":1}"#, "action").unwrap(), None);
        assert!(json_string_field(b"[1,2]", "action").is_err());
        assert!(json_string_field(b"{} trailing", "action").is_err());
    }

    #[test]
    fn every_vector_has_a_provider_test() {
        // Adding a vector to providers.json without a test here fails this test.
        let tested = [
            "github",
            "standard_webhooks",
            "slack",
            "shopify",
            "twilio",
            "stripe",
        ];
        let vectors = test_support::vectors();
        let names: Vec<&String> = vectors
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('_'))
            .collect();
        assert!(!names.is_empty());
        for name in names {
            assert!(
                tested.contains(&name.as_str()),
                "no test uses the {name} vector"
            );
        }
    }

    #[test]
    fn every_provider_config_round_trips_flat_in_a_source() {
        use crate::model::{HmacOptions, TokenOptions, TwilioOptions};
        for provider in [
            ProviderConfig::Github,
            ProviderConfig::Standard,
            ProviderConfig::Stripe,
            ProviderConfig::Shopify,
            ProviderConfig::Slack,
            ProviderConfig::Twilio(TwilioOptions::default()),
            ProviderConfig::Twilio(TwilioOptions {
                public_url: Some("https://h.example/t".into()),
            }),
            ProviderConfig::Token(TokenOptions::default()),
            ProviderConfig::Token(TokenOptions {
                token_param: None,
                token_header: Some("X-Token".into()),
            }),
            ProviderConfig::Hmac(HmacOptions::preset("typeform").unwrap()),
        ] {
            let source = test_support::source(provider, "s");
            let json = serde_json::to_value(&source).unwrap();
            assert_eq!(json["provider"], source.provider.name());
            let back: Source = serde_json::from_value(json).unwrap();
            assert_eq!(back, source);
        }
        // Sources stored before these options existed still load.
        let old: Source = serde_json::from_str(
            r#"{"name":"t","provider":"twilio","secrets":["x"],"tolerance_secs":300}"#,
        )
        .unwrap();
        assert_eq!(
            old.provider,
            ProviderConfig::Twilio(TwilioOptions::default())
        );
    }

    #[test]
    fn every_provider_config_keeps_its_stored_json() {
        // Sources in SQLite and DynamoDB are this JSON: each variant must write and read exactly it.
        use crate::model::{HmacOptions, TokenOptions, TwilioOptions};
        let stored = |rest: &str| {
            format!(r#"{{"name":"s",{rest},"secrets":["k"],"tolerance_secs":300,"created_at":7}}"#)
        };
        let cases = [
            (ProviderConfig::Github, r#""provider":"github""#),
            (ProviderConfig::Standard, r#""provider":"standard""#),
            (ProviderConfig::Stripe, r#""provider":"stripe""#),
            (ProviderConfig::Shopify, r#""provider":"shopify""#),
            (ProviderConfig::Slack, r#""provider":"slack""#),
            (
                ProviderConfig::Twilio(TwilioOptions::default()),
                r#""provider":"twilio""#,
            ),
            (
                ProviderConfig::Twilio(TwilioOptions {
                    public_url: Some("https://h.example/t".into()),
                }),
                r#""provider":"twilio","public_url":"https://h.example/t""#,
            ),
            (
                ProviderConfig::Token(TokenOptions::default()),
                r#""provider":"token""#,
            ),
            (
                ProviderConfig::Token(TokenOptions {
                    token_param: Some("key".into()),
                    token_header: Some("X-Token".into()),
                }),
                r#""provider":"token","token_param":"key","token_header":"X-Token""#,
            ),
            (
                ProviderConfig::Hmac(HmacOptions {
                    header: "X-Sig".into(),
                    ..HmacOptions::default()
                }),
                r#""provider":"hmac","header":"X-Sig","algorithm":"sha256","encoding":"hex","prefix":"","type_header":null,"id_header":null"#,
            ),
            (
                ProviderConfig::Hmac(HmacOptions {
                    header: "X-Sig".into(),
                    algorithm: crate::signing::Algorithm::Sha512,
                    encoding: crate::model::SignatureEncoding::Base64,
                    prefix: "v1=".into(),
                    type_header: Some("X-Type".into()),
                    id_header: Some("X-Id".into()),
                    type_pointer: Some("/type".into()),
                    id_pointer: Some("/id".into()),
                    timestamp_header: Some("X-Ts".into()),
                    signed_payload: Some("{timestamp}.{id}.{body}".into()),
                    preset: None,
                }),
                r#""provider":"hmac","header":"X-Sig","algorithm":"sha512","encoding":"base64","prefix":"v1=","type_header":"X-Type","id_header":"X-Id","type_pointer":"/type","id_pointer":"/id","timestamp_header":"X-Ts","signed_payload":"{timestamp}.{id}.{body}""#,
            ),
            (
                ProviderConfig::Hmac(HmacOptions::preset("typeform").unwrap()),
                r#""provider":"hmac","header":"Typeform-Signature","algorithm":"sha256","encoding":"base64","prefix":"sha256=","type_header":null,"id_header":null,"type_pointer":"/event_type","id_pointer":"/event_id","preset":"typeform""#,
            ),
        ];
        for (provider, fields) in cases {
            let source = Source {
                name: "s".into(),
                provider,
                secrets: vec!["k".into()],
                tolerance_secs: 300,
                created_at: 7,
            };
            let json = stored(fields);
            assert_eq!(serde_json::to_string(&source).unwrap(), json);
            assert_eq!(serde_json::from_str::<Source>(&json).unwrap(), source);
        }
    }

    #[test]
    fn only_token_sources_answer_get() {
        use crate::model::TokenOptions;
        assert!(accepts_method(&ProviderConfig::Github, &Method::POST));
        assert!(!accepts_method(&ProviderConfig::Github, &Method::GET));
        let token = ProviderConfig::Token(TokenOptions::default());
        assert!(accepts_method(&token, &Method::GET));
        assert!(!accepts_method(&token, &Method::PUT));
    }

    #[test]
    fn source_secrets_are_as_strong_as_the_provider_issues() {
        use crate::model::{HmacOptions, TokenOptions, TwilioOptions};
        let shared = [
            ProviderConfig::Github,
            ProviderConfig::Shopify,
            ProviderConfig::Slack,
            ProviderConfig::Twilio(TwilioOptions::default()),
            ProviderConfig::Token(TokenOptions::default()),
            ProviderConfig::Hmac(HmacOptions::default()),
            ProviderConfig::Hmac(HmacOptions::preset("typeform").unwrap()),
        ];
        for provider in &shared {
            let name = provider.name();
            for blank in ["", "   "] {
                let err = validate_source_secret(provider, blank).unwrap_err();
                assert!(err.starts_with("the secret is empty"), "{name}: {err}");
            }
            let err = validate_source_secret(provider, "fifteen-chars!!").unwrap_err();
            assert!(
                err.contains("too short: 15 of at least 16"),
                "{name}: {err}"
            );
            assert!(
                !err.contains("fifteen-chars!!"),
                "{name} echoes the secret: {err}"
            );
            // Padding does not count.
            assert!(validate_source_secret(provider, "  short-secret   ").is_err());
            assert!(
                validate_source_secret(provider, "sixteen-chars!!!").is_ok(),
                "{name}"
            );
            // Real secrets: 32 hex characters (Slack, Twilio), shpss_ + 32 hex (Shopify).
            assert!(validate_source_secret(provider, &"a1".repeat(16)).is_ok());
            assert!(validate_source_secret(provider, &format!("shpss_{}", "f".repeat(32))).is_ok());
        }
        let where_found =
            |provider: &ProviderConfig| validate_source_secret(provider, "x").unwrap_err();
        assert!(where_found(&ProviderConfig::Github).contains("typed into GitHub"));
        assert!(where_found(&ProviderConfig::Slack).contains("Signing Secret"));
        assert!(where_found(&shared[4]).contains("token"));
        assert!(where_found(&shared[6]).contains("Typeform"));

        let standard = ProviderConfig::Standard;
        for (secret, why) in [
            ("whsec_", "holds 0"),
            ("whsec_AA==", "holds 1"),
            ("whsec_!!!", "base64"),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ] {
            let err = validate_source_secret(&standard, secret).unwrap_err();
            assert!(err.contains(why), "{secret}: {err}");
            assert!(err.starts_with("a Standard Webhooks secret"), "{err}");
        }
        let vector = test_support::vectors()["standard_webhooks"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(validate_source_secret(&standard, &vector).is_ok());

        let stripe = ProviderConfig::Stripe;
        for secret in ["whsec_", "whsec_  ", "sk_live_abc", ""] {
            let err = validate_source_secret(&stripe, secret).unwrap_err();
            assert!(err.contains("Signing secret"), "{err}");
        }
        assert!(validate_source_secret(&stripe, "whsec_abc123").is_ok());
    }

    #[test]
    fn repeated_headers_and_case() {
        let req = test_support::request(&[("X-Thing", " a "), ("x-thing", "b")], "");
        assert_eq!(req.header("x-THING"), Some("a"));
        assert_eq!(req.header_values("x-thing").count(), 2);
    }
}
