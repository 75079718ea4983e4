//! Inbound verification. Each provider is one file that says where its signature, event type and
//! delivery id come from; `verify` dispatches on the source's configured provider.
//!
//! Rules every provider keeps: the signature is checked over the raw bytes before anything in the
//! body is believed; every secret of the source is tried (rotation); comparisons are constant-time
//! (`signing::constant_time_eq`); signed timestamps are checked in both directions against the
//! source's tolerance (`shared::check_timestamp`) with the clock passed in as `now`; header names
//! are case-insensitive, values are trimmed and repeated headers are all looked at (a provider
//! whose signature header may arrive comma-joined by a proxy splits it: GitHub, Stripe, Slack); a
//! 401 says what failed and never echoes a secret or an expected signature; a 400 is only given to
//! an authentic request whose body breaks the structure the provider defines.
//!
//! What a provider extracts is checked once more, for every provider, by the receive use case
//! (`receive::check_carriable`): an event type must be at most `receive::MAX_EVENT_TYPE_BYTES`
//! of visible ASCII and space (it travels in the `x-relay-event-type` header), a delivery id at
//! most `receive::MAX_DELIVERY_ID_BYTES` (it is part of a store key); otherwise 400.
//!
//! Each provider file also holds `validate_secret`, the rule for the secrets `sources add` and
//! `sources update --add-secret` accept (`validate_source_secret`), and its options: their type,
//! how `sources add` builds them (`configure`) and how a stored source's fields decode into them
//! (`decode`, see `config`). This file keeps the registry, the request and outcome types and
//! the dispatch; what several providers share when verifying is in `shared`.

mod config;
mod document;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod github;
mod hmac_generic;
mod shared;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod token;
mod twilio;
mod typeform;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};

pub use config::{NoOptions, ProviderConfig, ProviderOptions, StoredFields};
pub use document::{EventDocument, PAYLOAD_FIELD, event_document};
pub use hmac_generic::{HmacOptions, SignatureEncoding};
pub use shared::MIN_SHARED_SECRET_BYTES;
pub use token::TokenOptions;
pub use twilio::{InvalidPublicUrl, TwilioOptions, check_public_url};

/// The registry: every `--provider` choice, in the order `relay sources add --help` lists them.
/// Adding a provider is its file plus its line here (docs/providers.md, "Adding a provider").
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

/// One provider as the rest of the relay sees it, declared in the provider's file.
#[derive(Debug)]
pub struct Provider {
    /// The `--provider` value; for a provider that is no preset also the stored tag.
    pub name: &'static str,
    /// What `relay sources add --help` says of it: where the signature is, which secret.
    pub help: &'static str,
    /// The `sources add` options it reads; the CLI makes its flags from these.
    pub options: &'static [ProviderOption],
    /// The options a sample source of it is configured with (the fuzz target's, the registry's
    /// tests'); empty when it needs none.
    pub sample_options: &'static [(&'static str, &'static str)],
    /// For a preset of another provider (typeform of hmac): that provider's name. The preset's
    /// sources are stored and verified as that provider's.
    pub preset_of: Option<&'static str>,
    /// The config of a new source from its options (only names in `options` reach it).
    pub configure:
        fn(&'static Provider, &GivenOptions) -> Result<ProviderConfig, InvalidProviderOptions>,
    /// Its options from a stored source's fields (`config::decode` of its options type), once
    /// per read of the source.
    pub decode: fn(StoredFields) -> Result<Arc<dyn ProviderOptions>, serde_json::Error>,
    /// The rule for the secrets `sources add` and `sources update --add-secret` accept.
    pub validate_secret: fn(&ProviderConfig, &str) -> Result<(), WeakSourceSecret>,
    /// The methods it answers; everything else gets 405.
    pub methods: &'static [Method],
    /// Verifies a request to a source of this provider at `now` (seconds since the epoch).
    pub verify: fn(&dyn SourceView, &InboundRequest, i64) -> Result<Outcome, Rejection>,
}

impl Provider {
    /// The entry of a provider that has no options and answers `POST` only, as most do: its
    /// name, help line, secret rule and verification, the rest implied.
    pub(super) const fn without_options(
        name: &'static str,
        help: &'static str,
        validate_secret: fn(&ProviderConfig, &str) -> Result<(), WeakSourceSecret>,
        verify: fn(&dyn SourceView, &InboundRequest, i64) -> Result<Outcome, Rejection>,
    ) -> Self {
        Provider {
            name,
            help,
            options: &[],
            sample_options: &[],
            preset_of: None,
            configure: |provider, _| Ok(ProviderConfig::new(provider, NoOptions {})),
            decode: config::decode::<NoOptions>,
            validate_secret,
            methods: shared::POST_ONLY,
            verify,
        }
    }

    /// The config of a new source: refuses options that belong to other providers, then lets
    /// the provider build and check its own.
    pub fn new_config(
        &'static self,
        given: &GivenOptions,
    ) -> Result<ProviderConfig, InvalidProviderOptions> {
        if let Some(foreign) = given.names().find(|name| !self.takes(name)) {
            let owners: Vec<&str> = PROVIDERS
                .iter()
                .filter(|p| p.takes(foreign))
                .map(|p| p.name)
                .collect();
            return Err(InvalidProviderOptions(format!(
                "--{foreign} is an option of --provider {}",
                owners.join(" or ")
            )));
        }
        (self.configure)(self, given)
    }

    /// Whether `name` is one of its options.
    pub fn takes(&self, name: &str) -> bool {
        self.options.iter().any(|option| option.name == name)
    }

    /// The options of its sample source (`sample_options`).
    pub fn sample(&self) -> GivenOptions {
        let mut given = GivenOptions::default();
        for (name, value) in self.sample_options {
            given.set(name, Some((*value).to_owned()));
        }
        given
    }
}

/// One `sources add` option of a provider: its flag name without `--`, and what it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderOption {
    pub name: &'static str,
    pub help: &'static str,
}

/// Every option of the registry once, in registry order, with the providers that take it
/// (presets left out: they take their base provider's options): the flags of `sources add`.
pub fn registry_options() -> Vec<(ProviderOption, Vec<&'static str>)> {
    let mut options: Vec<(ProviderOption, Vec<&'static str>)> = Vec::new();
    for provider in PROVIDERS.iter().filter(|p| p.preset_of.is_none()) {
        for option in provider.options {
            match options
                .iter_mut()
                .find(|(known, _)| known.name == option.name)
            {
                Some((_, owners)) => owners.push(provider.name),
                None => options.push((*option, vec![provider.name])),
            }
        }
    }
    options
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

/// What verification reads of a source (`model::Source` is one): its provider config, its
/// secrets (every one is tried: rotation) and the tolerance of signed timestamps.
pub trait SourceView {
    fn provider(&self) -> &ProviderConfig;
    fn secrets(&self) -> &[String];
    fn tolerance_secs(&self) -> u64;
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
pub fn verify(
    source: &dyn SourceView,
    request: &InboundRequest,
    now: i64,
) -> Result<Outcome, Rejection> {
    if source.secrets().is_empty() {
        return Err(Rejection::unauthorized(
            "source has no secret configured; add one with relay sources update --add-secret",
        ));
    }
    (source.provider().entry().verify)(source, request, now)
}

/// Checks a secret given to `sources add` or `sources update --add-secret` against what
/// `provider` issues. The message says what was wrong and where the secret is found; it never
/// contains the secret.
pub fn validate_source_secret(
    provider: &ProviderConfig,
    secret: &str,
) -> Result<(), WeakSourceSecret> {
    (provider.entry().validate_secret)(provider, secret)
}

/// A source secret weaker than (or not shaped like) what the provider issues. The message says
/// what was wrong and where the provider shows the secret; it never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakSourceSecret(pub String);

/// True when `method` is answered by `source`'s provider; everything else gets 405.
pub fn accepts_method(provider: &ProviderConfig, method: &Method) -> bool {
    provider.entry().methods.contains(method)
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;
