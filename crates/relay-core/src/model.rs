//! Domain types shared by every adapter. Stored and queued as JSON, so field names are contracts
//! between versions of the relay: add fields with defaults, never rename.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::signing::Algorithm;

pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// A configured inbound endpoint: `POST /{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    #[serde(flatten)]
    pub provider: ProviderConfig,
    /// Several during rotation; any one that verifies passes.
    pub secrets: Vec<String>,
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    #[serde(default)]
    pub created_at: i64,
}

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECS
}

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

impl ProviderConfig {
    pub fn name(&self) -> &'static str {
        match self {
            ProviderConfig::Github => "github",
            ProviderConfig::Standard => "standard",
            ProviderConfig::Hmac(_) => "hmac",
            ProviderConfig::Stripe => "stripe",
            ProviderConfig::Shopify => "shopify",
            ProviderConfig::Slack => "slack",
            ProviderConfig::Twilio(_) => "twilio",
            ProviderConfig::Token(_) => "token",
        }
    }
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

impl HmacOptions {
    /// A named preset: the options a well-known sender needs.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            // Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>; the body carries
            // `event_id` and `event_type` (`form_response`).
            "typeform" => Some(Self {
                header: "Typeform-Signature".into(),
                algorithm: Algorithm::Sha256,
                encoding: SignatureEncoding::Base64,
                prefix: "sha256=".into(),
                type_pointer: Some("/event_type".into()),
                id_pointer: Some("/event_id".into()),
                preset: Some("typeform".into()),
                ..Self::default()
            }),
            _ => None,
        }
    }

    pub const PRESETS: &'static [&'static str] = &["typeform"];
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

impl TokenOptions {
    pub const DEFAULT_PARAM: &'static str = "token";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// A secret a subscription's deliveries are signed with. An old secret kept during rotation has
/// an expiry, after which it is no longer used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub source: String,
    pub url: String,
    /// Event-type patterns; see `patterns`.
    pub events: Vec<String>,
    pub secrets: Vec<SigningSecret>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Seconds since the epoch of the first failure in the current run of failures; cleared by a
    /// success. A run longer than the health window disables the subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    /// Extra headers sent with every delivery.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub created_at: i64,
    /// Bumped by every write; a write names the revision it read (`Store::put_subscription`).
    /// 0 only before the first write; a document stored without one reads as revision 1.
    #[serde(default = "first_revision")]
    pub revision: u64,
}

fn first_revision() -> u64 {
    1
}

fn default_true() -> bool {
    true
}

impl Subscription {
    /// Secrets in force at `now` (seconds), newest first.
    pub fn active_secrets(&self, now: i64) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| s.secret.as_str())
            .collect()
    }
}

/// How a body travels inside JSON: as text when it is UTF-8, base64 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    #[default]
    Utf8,
    Base64,
}

/// An accepted event as it travels on the events queue and is stored for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Milliseconds since the epoch when the receiver accepted it.
    pub received_at: i64,
    pub body: String,
    #[serde(default)]
    pub body_encoding: BodyEncoding,
}

impl EventEnvelope {
    pub fn encode_body(body: &[u8]) -> (String, BodyEncoding) {
        match std::str::from_utf8(body) {
            Ok(text) => (text.to_owned(), BodyEncoding::Utf8),
            Err(_) => (STANDARD.encode(body), BodyEncoding::Base64),
        }
    }

    /// The original bytes of the body.
    pub fn body_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        match self.body_encoding {
            BodyEncoding::Utf8 => Ok(std::borrow::Cow::Borrowed(self.body.as_bytes())),
            BodyEncoding::Base64 => STANDARD
                .decode(&self.body)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| format!("event body is not valid base64: {e}")),
        }
    }
}

/// One (event, subscription) delivery waiting for its next attempt on the deliveries queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryTask {
    pub event: EventEnvelope,
    pub subscription_id: String,
    /// The number of the attempt this message is for; never resets.
    pub attempt: u32,
    /// Index into the retry schedule of the delay that follows a failure of this attempt.
    pub schedule_step: u32,
    /// Milliseconds since the epoch before which the attempt must not run.
    pub not_before: i64,
}

/// A message on either queue. The tag lets one fanout function serve both queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum QueueMessage {
    Event(EventEnvelope),
    Delivery(DeliveryTask),
}

/// `QueueMessage` as borrowed data, so sending does not clone the event body; serializes to the
/// same JSON. Every queue adapter encodes with it.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum QueueMessageRef<'a> {
    Event(&'a EventEnvelope),
    Delivery(&'a DeliveryTask),
}

impl QueueMessageRef<'_> {
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub event_id: String,
    pub subscription_id: String,
    pub attempt: u32,
    /// Milliseconds since the epoch when the attempt started.
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `ok`, `http_status`, `timeout`, `connect`, `refused_destination`, `redirect`, ...
    pub outcome: String,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_excerpt: String,
    /// What happens next: `done`, `retry_scheduled`, `dead_lettered`, `disabled`, `dropped`.
    pub next: String,
}

impl AttemptRecord {
    /// True when this subscription needs nothing more from the event's fanout: it succeeded, or
    /// its delivery now belongs to the deliveries queue, the DLQ, or was dropped for good.
    pub fn settles_fanout(&self) -> bool {
        self.next != "fanout_retry"
    }
}

/// Result of claiming a provider delivery id for deduplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupClaim {
    /// First time seen: the caller owns it and must confirm or release it.
    New,
    /// Another copy is being accepted right now.
    Pending,
    /// Already queued as this event.
    Queued { event_id: String },
}

/// A message as a queue consumer receives it (SQS record or local queue row).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// Identifies this receive of the message (SQS message id / local receipt handle).
    pub id: String,
    pub body: String,
    /// How many times the queue has handed this message out, this time included.
    pub receive_count: u32,
}

/// What the consumer must do with a message after the fanout handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Handled for good (delivered, rescheduled as a new message, or dead-lettered): delete it.
    Delete,
    /// Not handled: leave it, so the queue hands it out again after its visibility timeout.
    Retry,
    /// Woke before its time: hide it again for this many seconds, then leave it.
    HideFor(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_messages_serialize_like_queue_messages() {
        let event = EventEnvelope {
            id: "evt_1".into(),
            source: "gh".into(),
            event_type: "push".into(),
            content_type: Some("application/json".into()),
            received_at: 1_700_000_000_000,
            body: "{\"a\":1}".into(),
            body_encoding: BodyEncoding::Utf8,
        };
        let task = DeliveryTask {
            event: event.clone(),
            subscription_id: "sub_1".into(),
            attempt: 2,
            schedule_step: 1,
            not_before: 5,
        };
        let borrowed = QueueMessageRef::Event(&event).to_json().unwrap();
        let owned = serde_json::to_string(&QueueMessage::Event(event.clone())).unwrap();
        assert_eq!(borrowed, owned);
        let borrowed = QueueMessageRef::Delivery(&task).to_json().unwrap();
        assert_eq!(
            serde_json::from_str::<QueueMessage>(&borrowed).unwrap(),
            QueueMessage::Delivery(task)
        );
    }
}
