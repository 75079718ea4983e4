//! What a source stores of its provider: which provider signs its requests and that provider's
//! options, as data. The behaviour (verifying, configuring, the secret rules) is in `providers`;
//! keeping the stored shape apart lets the model hold it without depending on the verifiers.

use serde::{Deserialize, Serialize};

use crate::signing::Algorithm;

/// Which provider signs a source's requests, with that provider's options. Serialized flat into
/// the source under `provider` (the tag) plus the variant's own fields; every option added later
/// carries a serde default so older stored sources keep loading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum ProviderConfig {
    Github,
    Standard,
    Hmac(HmacOptions),
    Stripe,
    Shopify,
    Slack,
    Twilio(TwilioOptions),
    Token(TokenOptions),
}

/// Options of the generic HMAC provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HmacOptions {
    pub header: String,
    pub algorithm: Algorithm,
    pub encoding: SignatureEncoding,
    #[serde(default)]
    pub prefix: String,
    /// Header naming the event type, when the sender sends one.
    #[serde(default)]
    pub type_header: Option<String>,
    /// Header carrying the sender's delivery id, used for deduplication.
    #[serde(default)]
    pub id_header: Option<String>,
    /// JSON pointer (`/type`, `/event/type`) to the event type in the body, when no header has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_pointer: Option<String>,
    /// JSON pointer to the sender's delivery id in the body, when no header has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pointer: Option<String>,
    /// Header carrying the signed Unix timestamp (seconds), checked against the tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// What is signed, with `{body}`, `{timestamp}` and `{id}` placeholders. Absent: the body
    /// alone, or `{timestamp}.{body}` when a timestamp header is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_payload: Option<String>,
    /// The preset these options came from (`typeform`), shown by `sources list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

impl Default for HmacOptions {
    fn default() -> Self {
        Self {
            header: String::new(),
            algorithm: Algorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: String::new(),
            type_header: None,
            id_header: None,
            type_pointer: None,
            id_pointer: None,
            timestamp_header: None,
            signed_payload: None,
            preset: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// Options of the shared-token provider. The token itself is one of the source's secrets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenOptions {
    /// Query parameter carrying the token; `token` when neither this nor a header is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_param: Option<String>,
    /// Header carrying the token instead (`Authorization: Bearer <token>` is understood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_header: Option<String>,
}

/// Options of the Twilio provider.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TwilioOptions {
    /// The URL Twilio was told to call, without the query (the request's own query is appended),
    /// e.g. `https://hooks.example.com/prod/twilio`. Absent: rebuilt from `X-Forwarded-Proto`,
    /// `Host` and the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}
