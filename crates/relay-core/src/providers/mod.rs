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

mod document;
pub mod fuzzing;
mod github;
mod hmac_generic;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod token;
mod twilio;
mod typeform;

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::model::Source;

pub use crate::provider_config::{
    HmacOptions, ProviderConfig, SignatureEncoding, TokenOptions, TwilioOptions,
};
pub use document::{EventDocument, PAYLOAD_FIELD, event_document};
pub use twilio::{InvalidPublicUrl, check_public_url};

/// The registry: every `--provider` choice, in the order `relay sources add --help` lists them.
/// Adding a provider is its file plus its line here (and its variant below when it is a new
/// kind of source rather than a preset of one).
pub static PROVIDERS: &[&Provider] = &[
    &github::PROVIDER,
    &stripe::PROVIDER,
    &shopify::PROVIDER,
    &slack::PROVIDER,
    &twilio::PROVIDER,
    &standard::PROVIDER,
    &hmac_generic::PROVIDER,
    &token::PROVIDER,
    &typeform::PROVIDER,
];

impl ProviderConfig {
    /// The registry entry that verifies this config: the one place that matches on the variant.
    /// A preset's sources belong to the provider it presets (typeform: hmac).
    pub fn provider(&self) -> &'static Provider {
        match self {
            ProviderConfig::Github => &github::PROVIDER,
            ProviderConfig::Standard => &standard::PROVIDER,
            ProviderConfig::Hmac(_) => &hmac_generic::PROVIDER,
            ProviderConfig::Stripe => &stripe::PROVIDER,
            ProviderConfig::Shopify => &shopify::PROVIDER,
            ProviderConfig::Slack => &slack::PROVIDER,
            ProviderConfig::Twilio(_) => &twilio::PROVIDER,
            ProviderConfig::Token(_) => &token::PROVIDER,
        }
    }

    /// The stored tag (`provider` in a source's JSON).
    pub fn name(&self) -> &'static str {
        self.provider().name
    }
}

/// One provider as the rest of the relay sees it, declared in the provider's file.
#[derive(Debug)]
pub struct Provider {
    /// The `--provider` value; for a provider with its own `ProviderConfig` variant also the
    /// stored tag.
    pub name: &'static str,
    /// What `relay sources add --help` says of it: where the signature is, which secret.
    pub help: &'static str,
    /// The `sources add` options it reads, as flag names without `--`.
    pub options: &'static [&'static str],
    /// The config of a new source from its options (only names in `options` reach it).
    pub configure: fn(&GivenOptions) -> Result<ProviderConfig, InvalidProviderOptions>,
    /// The rule for the secrets `sources add` and `sources update --add-secret` accept.
    pub validate_secret: fn(&ProviderConfig, &str) -> Result<(), WeakSourceSecret>,
    /// The methods it answers; everything else gets 405.
    pub methods: &'static [Method],
    /// Verifies a request to a source of this provider at `now` (seconds since the epoch).
    pub verify: fn(&Source, &InboundRequest, i64) -> Result<Outcome, Rejection>,
}

impl Provider {
    /// The config of a new source: refuses options that belong to other providers, then lets
    /// the provider build and check its own.
    pub fn new_config(
        &self,
        given: &GivenOptions,
    ) -> Result<ProviderConfig, InvalidProviderOptions> {
        if let Some(foreign) = given.names().find(|name| !self.options.contains(name)) {
            let owners: Vec<&str> = PROVIDERS
                .iter()
                .filter(|p| p.options.contains(&foreign))
                .map(|p| p.name)
                .collect();
            return Err(InvalidProviderOptions(format!(
                "--{foreign} is an option of --provider {}",
                owners.join(" or ")
            )));
        }
        (self.configure)(given)
    }
}

/// Options of a new source that its provider refuses: another provider's option, or a value
/// the provider cannot use. The message names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidProviderOptions(pub String);

/// The registry entry for a `--provider` value.
pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().copied().find(|p| p.name == name)
}

/// Provider options given to `sources add`, by flag name without `--` (`header`, `public-url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GivenOptions(BTreeMap<String, String>);

impl GivenOptions {
    /// Records `value` under `name` when it was given.
    pub fn set(&mut self, name: &str, value: Option<String>) -> &mut Self {
        if let Some(value) = value {
            self.0.insert(name.to_owned(), value);
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Only `POST`: what every provider but `token` answers.
pub(crate) const POST_ONLY: &[Method] = &[Method::POST];

/// The refusal when a registry entry is handed a source of another provider (a wiring mistake,
/// never the sender's).
pub(crate) fn wrong_provider(source: &Source, expected: &str) -> Rejection {
    Rejection {
        status: 500,
        message: format!(
            "source {} is a {} source, not {expected}",
            source.name,
            source.provider.name()
        ),
    }
}

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
        self.header_values(name).next()
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

    /// Every value of a signature header decoded from base64; refused with `missing` when the
    /// header is absent and with `not_base64` when no value decodes.
    pub(crate) fn base64_signatures(
        &self,
        name: &str,
        missing: &str,
        not_base64: &str,
    ) -> Result<Vec<Vec<u8>>, Rejection> {
        if self.header(name).is_none() {
            return Err(Rejection::unauthorized(missing));
        }
        let given: Vec<Vec<u8>> = self
            .header_values(name)
            .filter_map(crate::signing::decode_base64)
            .collect();
        if given.is_empty() {
            return Err(Rejection::unauthorized(not_base64));
        }
        Ok(given)
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

/// Verifies `request` for `source` at `now` (seconds since the epoch), through the source's
/// provider. Only `token` sources answer anything but `POST` (Mailchimp checks the URL with a
/// `GET`); the caller answers 405 to other methods (`accepts_method`) before coming here.
pub fn verify(source: &Source, request: &InboundRequest, now: i64) -> Result<Outcome, Rejection> {
    if source.secrets.is_empty() {
        return Err(Rejection::unauthorized(
            "source has no secret configured; add one with relay sources update --add-secret",
        ));
    }
    (source.provider.provider().verify)(source, request, now)
}

/// HMAC options a new source may not have; the message says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHmacOptions(pub String);

/// Checks the generic HMAC options of a new source (`sources add`).
pub fn validate_hmac_options(
    options: &crate::model::HmacOptions,
) -> Result<(), InvalidHmacOptions> {
    hmac_generic::validate_new_options(options).map_err(InvalidHmacOptions)
}

/// The fewest bytes a shared secret typed by a person (GitHub, hmac, token) or issued by a
/// provider (Shopify, Slack, Twilio) may have: short keys can be guessed offline from one signed
/// request. Every real provider secret is longer (Slack and Twilio issue 32 hex characters,
/// Shopify 32 or more).
pub const MIN_SHARED_SECRET_BYTES: usize = 16;

/// Checks a secret given to `sources add` or `sources update --add-secret` against what
/// `provider` issues. The message says what was wrong and where the secret is found; it never
/// contains the secret.
pub fn validate_source_secret(
    provider: &ProviderConfig,
    secret: &str,
) -> Result<(), WeakSourceSecret> {
    (provider.provider().validate_secret)(provider, secret)
}

/// A source secret weaker than (or not shaped like) what the provider issues. The message says
/// what was wrong and where the provider shows the secret; it never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakSourceSecret(pub String);

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
    provider.provider().methods.contains(method)
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

/// The media type of form bodies.
pub(crate) const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

pub(crate) fn is_form(request: &InboundRequest) -> bool {
    media_type_is(request.content_type(), FORM_MEDIA_TYPE)
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
    object_string_field(body, field).map_err(|e| format!("body is not a JSON object: {e}"))
}

/// The top-level string field `field` of the JSON object `json`; an error when `json` is no
/// JSON object.
pub(crate) fn object_string_field(
    json: &[u8],
    field: &str,
) -> Result<Option<String>, serde_json::Error> {
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
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = de.deserialize_map(FieldVisitor(field))?;
    de.end()?;
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
            reconcile: None,
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

    /// Where each registered provider's official vectors are in `providers.json`, when the key
    /// is not its `--provider` name.
    const VECTOR_KEYS: &[(&str, &str)] = &[("standard", "standard_webhooks")];

    /// Registered providers without official vectors, and why.
    const WITHOUT_OFFICIAL_VECTORS: &[(&str, &str)] = &[
        (
            "stripe",
            "Stripe publishes no fixed vector (providers.json says so); the unit tests use a \
             header made by the stripe library and the live test signs with it",
        ),
        (
            "hmac",
            "generic: no sender to publish vectors; the unit tests sign each option combination",
        ),
        (
            "token",
            "no signature: the token is compared as given, covered by the unit and live tests",
        ),
        (
            "typeform",
            "Typeform publishes only the algorithm, which the hmac unit test follows",
        ),
    ];

    /// What the completeness test found missing for each registered provider.
    fn missing_pieces(docs: &str, provider_files: &str) -> Vec<String> {
        let vectors = test_support::vectors();
        let fuzzed = fuzzing::fuzzed_providers();
        let mut missing = Vec::new();
        for provider in PROVIDERS {
            let name = provider.name;
            let exempt = WITHOUT_OFFICIAL_VECTORS.iter().any(|(n, _)| *n == name);
            let key = VECTOR_KEYS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(name, |(_, key)| *key);
            if !exempt {
                let vector = &vectors[key];
                if vector.get("secret").or(vector.get("auth_token")).is_none() {
                    missing.push(format!(
                        "{name}: no official vectors under {key:?} in testdata/providers.json \
                         (or list it in WITHOUT_OFFICIAL_VECTORS with the reason)"
                    ));
                } else if !provider_files.contains(&format!("vectors()[\"{key}\"]")) {
                    missing.push(format!("{name}: no unit test uses the {key} vectors"));
                }
            }
            match fuzzed.iter().find(|(n, _)| *n == name) {
                None => missing.push(format!(
                    "{name}: no entry in fuzzing::fuzzed_providers (the verify_request target)"
                )),
                Some((_, config)) if !configures(config, name) => missing.push(format!(
                    "{name}: its fuzz entry is a {} config",
                    config.name()
                )),
                Some(_) => {}
            }
            let heading = format!("`--provider {name}");
            let documented = docs.lines().any(|line| {
                line.starts_with('#')
                    && line.match_indices(&heading).any(|(at, _)| {
                        matches!(line[at + heading.len()..].chars().next(), Some('`' | ' '))
                    })
            });
            if !documented {
                missing.push(format!(
                    "{name}: no section headed {heading}` in docs/providers.md"
                ));
            }
        }
        missing
    }

    /// True when `config` is what `--provider name` stores: its variant, or its hmac preset.
    fn configures(config: &ProviderConfig, name: &str) -> bool {
        match config {
            ProviderConfig::Hmac(options) if options.preset.is_some() => {
                options.preset.as_deref() == Some(name)
            }
            other => other.name() == name,
        }
    }

    /// The text of every provider file, for looking up which vectors their tests use.
    fn provider_files() -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/providers");
        let mut text = String::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
        text
    }

    fn provider_docs() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/providers.md");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn every_registered_provider_has_vectors_fuzzing_and_docs() {
        let missing = missing_pieces(&provider_docs(), &provider_files());
        assert!(
            missing.is_empty(),
            "registered providers lack pieces (see docs/providers.md, Adding a provider):\n{}",
            missing.join("\n")
        );
        // The fuzz entries run through the fuzz target that cargo-fuzz builds.
        let fuzz_manifest =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/Cargo.toml");
        let manifest = std::fs::read_to_string(fuzz_manifest).unwrap();
        assert!(manifest.contains("fuzz_targets/verify_request.rs"));
    }

    #[test]
    fn the_completeness_check_notices_each_missing_piece() {
        let docs = provider_docs();
        let files = provider_files();
        assert!(missing_pieces(&docs, &files).is_empty());
        let undocumented = docs.replace("`--provider shopify`", "`shopify`");
        assert_eq!(
            missing_pieces(&undocumented, &files),
            ["shopify: no section headed `--provider shopify` in docs/providers.md"]
        );
        let untested = files.replace(r#"vectors()["slack"]"#, "vectors()[SLACK]");
        assert_eq!(
            missing_pieces(&docs, &untested),
            ["slack: no unit test uses the slack vectors"]
        );
    }

    #[test]
    fn every_vector_belongs_to_a_registered_provider() {
        // A vector added to providers.json for no registered provider fails this test.
        let vectors = test_support::vectors();
        let names: Vec<&String> = vectors
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('_'))
            .collect();
        assert!(!names.is_empty());
        for key in names {
            let name = VECTOR_KEYS
                .iter()
                .find(|(_, k)| k == key)
                .map_or(key.as_str(), |(name, _)| *name);
            assert!(
                find(name).is_some(),
                "the {key} vector names no registered provider"
            );
        }
    }

    #[test]
    fn cli_names_are_unique_and_options_refuse_other_providers() {
        let mut names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROVIDERS.len());
        let mut given = GivenOptions::default();
        given.set("public-url", Some("https://h.example/t".into()));
        let err = find("github").unwrap().new_config(&given).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--public-url is an option of --provider twilio"
        );
        given = GivenOptions::default();
        given.set("header", Some("X-Sig".into()));
        let err = find("slack").unwrap().new_config(&given).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--header is an option of --provider hmac or typeform"
        );
        let hmac = find("hmac").unwrap().new_config(&given).unwrap();
        assert_eq!(hmac.name(), "hmac");
        let typeform = find("typeform")
            .unwrap()
            .new_config(&GivenOptions::default())
            .unwrap();
        assert_eq!(
            typeform,
            ProviderConfig::Hmac(HmacOptions::preset("typeform").unwrap())
        );
        given.set("preset", Some("typeform".into()));
        assert_eq!(
            find("hmac").unwrap().new_config(&given).unwrap().name(),
            "hmac"
        );
        let mut wrong = GivenOptions::default();
        wrong.set("preset", Some("nope".into()));
        let err = find("typeform").unwrap().new_config(&wrong).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--provider typeform is the typeform preset; leave out --preset nope"
        );
        let err = find("hmac").unwrap().new_config(&wrong).unwrap_err();
        assert_eq!(err.to_string(), r#"no preset "nope"; presets: typeform"#);
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
                reconcile: None,
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
                let err = validate_source_secret(provider, blank).unwrap_err().0;
                assert!(err.starts_with("the secret is empty"), "{name}: {err}");
            }
            let err = validate_source_secret(provider, "fifteen-chars!!")
                .unwrap_err()
                .0;
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
            |provider: &ProviderConfig| validate_source_secret(provider, "x").unwrap_err().0;
        assert!(where_found(&ProviderConfig::Github).contains("typed into GitHub"));
        assert!(where_found(&ProviderConfig::Slack).contains("Signing Secret"));
        assert!(where_found(&shared[4]).contains("token"));
        assert!(where_found(&shared[6]).contains("Typeform"));

        let standard = ProviderConfig::Standard;
        for (secret, why) in [
            ("whsec_", "holds 0"),
            ("whsec_AA==", "holds 1"),
            ("whsec_!!!", "base64"),
            // Without the prefix, as the Standard Webhooks libraries take it: still 24 bytes.
            ("AA==", "holds 1"),
        ] {
            let err = validate_source_secret(&standard, secret).unwrap_err().0;
            assert!(err.contains(why), "{secret}: {err}");
            assert!(err.starts_with("a Standard Webhooks secret"), "{err}");
        }
        let vector = test_support::vectors()["standard_webhooks"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(validate_source_secret(&standard, &vector).is_ok());
        let bare = vector.strip_prefix("whsec_").unwrap_or(&vector);
        assert!(validate_source_secret(&standard, bare).is_ok());

        let stripe = ProviderConfig::Stripe;
        for secret in ["whsec_", "whsec_  ", "sk_live_abc", ""] {
            let err = validate_source_secret(&stripe, secret).unwrap_err().0;
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
