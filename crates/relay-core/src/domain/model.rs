//! Domain types shared by every adapter. Stored and queued as JSON, so field names are contracts
//! between versions of the relay: add fields with defaults, never rename.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

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
    /// How `relay reconcile` reaches the provider's API for this source; none until configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<ReconcileSettings>,
}

/// How `relay reconcile` reaches a provider's API for one source (stored with the source).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReconcileSettings {
    /// The API's base URL; the provider's real one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Where the API credential is, never the credential itself: `env:NAME`, `file:NAME` (in the
    /// data dir), `ssm:NAME` (SecureString) or `secretsmanager:NAME`.
    pub credential: String,
    /// GitHub: whose hook's deliveries are listed: `repos/OWNER/REPO/hooks/ID`,
    /// `orgs/ORG/hooks/ID` or `app/hook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_hook: Option<String>,
    /// GitHub, `app/hook` only: the App's client ID or App ID, the `iss` of the JWTs minted from
    /// the App's private key (the credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_app_id: Option<String>,
    /// Stripe: only events of these types (every type when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
}

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECS
}

// A source's provider config lives with the providers (`providers/config.rs`, each provider's
// options in its own file); re-exported here because a `Source` carries it.
pub use crate::providers::ProviderConfig;

/// What verification reads of a source.
impl crate::providers::SourceView for Source {
    fn provider(&self) -> &ProviderConfig {
        &self.provider
    }

    fn secrets(&self) -> &[String] {
        &self.secrets
    }

    fn tolerance_secs(&self) -> u64 {
        self.tolerance_secs
    }
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
    /// Set when the destination guard refused a delivery (the URL is or resolves to a
    /// non-global address while private destinations are denied); cleared by a delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedDeliveries>,
    /// Extra headers sent with every delivery.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// A content filter the event's body and headers must match too (`filter`); parsed when
    /// the subscription is read. Absent in subscriptions stored before filters existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::domain::filter::Filter>,
    /// Its own retry schedule, timeout, concurrency and rate; what is unset takes the relay's
    /// settings. Absent in subscriptions stored before policies existed.
    #[serde(default, skip_serializing_if = "DeliveryPolicy::is_default")]
    pub policy: DeliveryPolicy,
    /// Milliseconds since the epoch until which the breaker holds its deliveries back (the
    /// subscriber asked for room with Retry-After, or kept failing); then one probe attempt
    /// decides. Written once per pause; cleared by a delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<i64>,
    /// Pauses in a row without a delivery between them, for the breaker's backoff.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pause_streak: u32,
    #[serde(default)]
    pub created_at: i64,
    /// Bumped by every write; a write names the revision it read (`Store::put_subscription`).
    /// 0 only before the first write; a document stored without one reads as revision 1.
    #[serde(default = "first_revision")]
    pub revision: u64,
}

/// Deliveries of a subscription the destination guard refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDeliveries {
    /// Seconds since the epoch of the first refusal since the last delivery.
    pub since: i64,
    /// The guard's reason for the latest refusal.
    pub reason: String,
}

impl crate::domain::filter::FilterSubject for EventEnvelope {
    fn id(&self) -> &str {
        &self.id
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }
    fn body(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.body_bytes().ok()
    }
}

/// How the fanout delivers to one subscription. Every field left unset takes the relay's
/// setting (`RELAY_RETRY_SCHEDULE`, `RELAY_DELIVERY_TIMEOUT_SECS`, no concurrency or rate cap).
/// Checked when written (`crate::domain::policy::validate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryPolicy {
    /// A retry schedule in the syntax of `RELAY_RETRY_SCHEDULE` (`5s,1m,10m`; empty: no retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<String>,
    /// Timeout of each attempt, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Attempts to this subscription at once, per fanout process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Deliveries per second, per fanout process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

impl DeliveryPolicy {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

/// How a body travels inside JSON: as text when it is UTF-8 and its escaped JSON string is no
/// longer than its base64 or the text budget, base64 otherwise (`EventEnvelope::encode_body`).
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
    /// Ingested by `relay reconcile` from the provider's API rather than received as a signed
    /// webhook (its authenticity is the API call). Absent, and false, in older messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconciled: bool,
    /// Set when the body was too large to travel inline (`bodies::INLINE_BODY_MAX_BYTES`): it
    /// is kept once in the body store and `body` is empty. Absent in older messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_body: Option<StoredBody>,
}

/// The claim check of a body kept in the body store (`ports::BodyStore`): what the queue
/// messages and the archived event carry instead of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBody {
    /// The object's key in the body store (`bodies/<event id>`).
    pub key: String,
    /// Lower-case hex SHA-256 of the body: what is read back must match it.
    pub sha256: String,
    /// The body's length in bytes.
    pub bytes: u64,
}

impl EventEnvelope {
    /// The body's length: the stored body's, or the inline body's as carried (UTF-8 bytes, or
    /// base64 characters for a binary body).
    pub fn body_len(&self) -> usize {
        match &self.stored_body {
            Some(stored) => usize::try_from(stored.bytes).unwrap_or(usize::MAX),
            None => self.body.len(),
        }
    }

    /// The body as the envelope carries it: the text itself when it is UTF-8 and escaped as a
    /// JSON string it is no larger than its base64 or than `TEXT_BODY_BUDGET_BYTES` (so every
    /// ordinary JSON body stays readable text), else base64. A body of control characters would
    /// grow sixfold (`\u0001`) as text; with this rule no body exceeds
    /// `largest_encoded_body_bytes`. Both encodings decode with `body_bytes`, old messages
    /// included.
    pub fn encode_body(body: &[u8]) -> (String, BodyEncoding) {
        match std::str::from_utf8(body) {
            Ok(text)
                if json_escaped_len(text) <= base64_len(body.len()).max(TEXT_BODY_BUDGET_BYTES) =>
            {
                (text.to_owned(), BodyEncoding::Utf8)
            }
            _ => (STANDARD.encode(body), BodyEncoding::Base64),
        }
    }

    /// The original bytes of the body.
    pub fn body_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, BodyDecodeError> {
        match self.body_encoding {
            BodyEncoding::Utf8 => Ok(std::borrow::Cow::Borrowed(self.body.as_bytes())),
            BodyEncoding::Base64 => STANDARD
                .decode(&self.body)
                .map(std::borrow::Cow::Owned)
                .map_err(BodyDecodeError),
        }
    }
}

/// A base64-carried event body that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event body is not valid base64: {0}")]
pub struct BodyDecodeError(pub base64::DecodeError);

/// The length of `text` as a JSON string the way `serde_json` writes it, without the quotes:
/// `"`, `\` and the short escapes take 2 bytes, other control characters 6 (`\u001f`), every
/// other byte (UTF-8 included) 1. Counted without building the string.
pub fn json_escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

// What the receiver lets through: the bounds every queue message and stored event is sized by
// (`receive` refuses what goes beyond them).

/// The largest body that travels inline: a body this large, in the worst case, still fits one
/// queue message (`model::LARGEST_QUEUE_MESSAGE_BYTES`) and one stored event (a DynamoDB item
/// holds 400 KB). Larger ones are kept in the body store and the message carries their key.
pub const INLINE_BODY_MAX_BYTES: usize = 256 * 1024;

/// The default body limit: 6 MB (decimal), the request payload a Lambda function URL accepts.
/// Bodies over `INLINE_BODY_MAX_BYTES` go through the body store.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6_000_000;

/// The longest event type the relay carries; it travels in the `x-relay-event-type` header.
pub const MAX_EVENT_TYPE_BYTES: usize = 256;

/// The longest provider delivery id the relay deduplicates on: it becomes part of a store key
/// (DynamoDB allows 2,048 bytes for a partition key, `DEDUP#<source>#<id>`).
pub const MAX_DELIVERY_ID_BYTES: usize = 512;

/// The longest source name (`POST /{source}`).
pub const MAX_SOURCE_NAME_BYTES: usize = 64;

/// The longest `content-type` the relay carries (it is stored and sent on with every delivery).
pub const MAX_CONTENT_TYPE_BYTES: usize = 1024;

/// Escaped text up to this size is carried as text whatever its density of escapes: the base64
/// of a body at the inline limit, so the bound on a message does not grow.
pub const TEXT_BODY_BUDGET_BYTES: usize = base64_len(INLINE_BODY_MAX_BYTES);

/// The most an encoded body of at most `max_body_bytes` can take in a message.
pub const fn largest_encoded_body_bytes(max_body_bytes: usize) -> usize {
    let base64 = base64_len(max_body_bytes);
    if base64 > TEXT_BODY_BUDGET_BYTES {
        base64
    } else {
        TEXT_BODY_BUDGET_BYTES
    }
}

/// The length of the padded standard base64 of `len` bytes.
pub const fn base64_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// The largest message a queue must carry (the core's bound).
pub use crate::domain::limits::MAX_QUEUE_MESSAGE_BYTES;

/// The most a queue message adds to its encoded body: the keys and punctuation of the larger
/// message (a `DeliveryTask`), and every other field at the largest the receiver lets through,
/// each byte escaped to at most 2 (those fields are visible ASCII, space or tab).
pub const QUEUE_MESSAGE_OVERHEAD_BYTES: usize = 256 // keys, quotes, commas, "base64"
    + 2 * 2 * MAX_RELAY_ID_BYTES // event id, subscription id
    + 2 * MAX_SOURCE_NAME_BYTES
    + 2 * MAX_EVENT_TYPE_BYTES
    + 2 * MAX_CONTENT_TYPE_BYTES
    + 4 * 20; // received_at, attempt, schedule_step, not_before (at most 20 digits each)

/// The longest id the relay mints (`evt_` / `sub_` + 32 hex digits is 36 bytes).
pub const MAX_RELAY_ID_BYTES: usize = 64;

/// The largest queue message a body of `max_body_bytes` can become.
pub const fn largest_queue_message_bytes(max_body_bytes: usize) -> usize {
    largest_encoded_body_bytes(max_body_bytes) + QUEUE_MESSAGE_OVERHEAD_BYTES
}

/// The largest queue message at the inline body limit: 349,528 bytes of base64 for 256 KiB
/// plus 3,280 bytes of envelope = 352,808 bytes, under the queues' 1,048,576. A stored body's
/// claim check (key, hash, length: under 250 bytes) is far smaller than an inline body.
pub const LARGEST_QUEUE_MESSAGE_BYTES: usize = largest_queue_message_bytes(INLINE_BODY_MAX_BYTES);

const _: () = assert!(LARGEST_QUEUE_MESSAGE_BYTES <= MAX_QUEUE_MESSAGE_BYTES);

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

/// A message on any queue. The tag lets one fanout function serve them all.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub event_id: String,
    pub subscription_id: String,
    pub attempt: u32,
    /// Milliseconds since the epoch when the attempt started.
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub outcome: AttemptOutcome,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_excerpt: String,
    pub next: NextStep,
}

impl AttemptRecord {
    /// True when this subscription needs nothing more from the event's fanout: it succeeded, or
    /// its delivery now belongs to the deliveries queue, the DLQ, or was dropped for good.
    pub fn settles_fanout(&self) -> bool {
        self.next != NextStep::FanoutRetry
    }
}

/// Defines a unit enum stored and printed by fixed snake_case names, with `as_str` and
/// `Display` giving the same spelling as serde.
macro_rules! spelled_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

spelled_enum! {
    /// What one attempt came to (`outcome` of an attempt record).
    AttemptOutcome {
        /// 2xx.
        Ok => "ok",
        /// 410: the subscriber asks never to be called again.
        Gone => "gone",
        /// 3xx (redirects are not followed).
        Redirect => "redirect",
        /// Any other status.
        HttpStatus => "http_status",
        Timeout => "timeout",
        /// No connection, or it broke.
        Connect => "connect",
        /// The address guard refused the destination.
        RefusedDestination => "refused_destination",
        /// The request could not be built (URL, headers).
        InvalidRequest => "invalid_request",
        /// A retry found its subscription removed, or disabled: nothing was sent.
        SubscriptionRemoved => "subscription_removed",
        SubscriptionDisabled => "subscription_disabled",
        /// Not attempted from the events queue: the subscription was failing, so its attempt
        /// went to the deliveries queue at once (the record is replaced by that attempt's).
        Deferred => "deferred",
        /// Nothing was sent: the stored body is gone (expired or deleted); dead-lettered.
        PayloadExpired => "payload_expired",
    }
}

spelled_enum! {
    /// What follows an attempt (`next` of an attempt record).
    NextStep {
        /// Delivered: nothing more for this subscription.
        Done => "done",
        /// The next attempt is on the deliveries queue.
        RetryScheduled => "retry_scheduled",
        /// The follow-up could not be queued: the event message is retried, and this
        /// subscription with it (the record does not settle it).
        FanoutRetry => "fanout_retry",
        /// The schedule is spent: parked in the deliveries DLQ.
        DeadLettered => "dead_lettered",
        /// The subscription was disabled (410, or failing for the whole health window).
        Disabled => "disabled",
        /// Given up for good: the destination is refused or invalid, or the subscription is gone.
        Dropped => "dropped",
    }
}

/// Result of claiming a provider delivery id for deduplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupClaim {
    /// First time seen: the caller owns it and must confirm or release it.
    New,
    /// Another copy holds a live pending claim: being accepted right now, or (when claims are
    /// left unconfirmed, `ReceiverConfig::confirm_dedup`) queued and not stored yet.
    Pending { event_id: String },
    /// Already queued as this event.
    Queued { event_id: String },
}

impl DedupClaim {
    /// What a live claim on a key, held by `holder` and queued or pending, means for a
    /// claimant holding `claimant`: every store answers by this one rule.
    pub fn of_live_claim(holder: &str, queued: bool, claimant: &str) -> Self {
        if queued {
            Self::Queued {
                event_id: holder.to_owned(),
            }
        } else if holder == claimant {
            // Our own lease, taken by an earlier try whose answer was lost: still ours.
            Self::New
        } else {
            Self::Pending {
                event_id: holder.to_owned(),
            }
        }
    }
}

/// A message as a queue consumer receives it (SQS record or local queue row).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// The receipt handle of this receive: what `QueueConsumer::settle` takes. Each receive of a
    /// message hands out a new one.
    pub receipt: String,
    /// The queue's id of the message, the same on every receive, where the adapter has one (SQS
    /// and Lambda report it; batch item failures name it).
    pub message_id: Option<String>,
    pub body: String,
    /// How many times the queue has handed this message out, this time included.
    pub receive_count: u32,
}

impl ReceivedMessage {
    /// The message id where there is one, else the receipt: what logs name the message by.
    pub fn name(&self) -> &str {
        self.message_id.as_deref().unwrap_or(&self.receipt)
    }
}

/// What the consumer must do with a message after the fanout handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Handled for good (delivered, rescheduled as a new message, or dead-lettered): delete it.
    Delete,
    /// Not handled: leave it, so the queue hands it out again after its visibility timeout.
    /// (An early wake-up is not hidden again: it is sent on as a new delayed message, which
    /// holds nothing in flight.)
    Retry,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::{
        INLINE_BODY_MAX_BYTES, MAX_CONTENT_TYPE_BYTES, MAX_EVENT_TYPE_BYTES, MAX_SOURCE_NAME_BYTES,
    };

    #[test]
    fn a_subscription_stored_before_policies_reads_with_the_defaults() {
        let old = r#"{"id":"sub_1","source":"gh","url":"https://a.example/","events":["*"],"secrets":[{"secret":"whsec_abc"}],"failing_since":5,"headers":[],"created_at":1,"revision":4}"#;
        let sub: Subscription = serde_json::from_str(old).unwrap();
        assert!(sub.policy.is_default());
        assert_eq!(
            (sub.paused_until, sub.pause_streak, sub.revision),
            (None, 0, 4)
        );
        // Written back without the new fields while they are unset.
        let written = serde_json::to_string(&sub).unwrap();
        assert!(
            !written.contains("policy") && !written.contains("paused"),
            "{written}"
        );
    }

    #[test]
    fn escaped_length_is_what_serde_json_writes() {
        let mut samples: Vec<String> = (0u32..0x80)
            .filter_map(char::from_u32)
            .map(String::from)
            .collect();
        samples.extend(["é", "€", "😀", "\u{7f}", "\u{2028}", "a\"b\\c\u{0}\n"].map(String::from));
        samples.push(samples.concat());
        for text in samples {
            let written = serde_json::to_string(&text).unwrap();
            assert_eq!(json_escaped_len(&text) + 2, written.len(), "{text:?}");
        }
        for len in 0..10 {
            assert_eq!(base64_len(len), STANDARD.encode(vec![0u8; len]).len());
        }
    }

    #[test]
    fn bodies_travel_in_the_smaller_encoding_and_decode_back() {
        // A JSON body stays readable text, however dense in quotes; a large one whose escapes
        // would outgrow the budget goes as base64.
        let json = br#"{"action":"opened","issue":{"number":1,"title":"a/b"}}"#;
        assert_eq!(EventEnvelope::encode_body(json).1, BodyEncoding::Utf8);
        assert_eq!(
            EventEnvelope::encode_body(br#"{"a":"b","c":""}"#).1,
            BodyEncoding::Utf8
        );
        assert_eq!(EventEnvelope::encode_body(b"").1, BodyEncoding::Utf8);
        assert_eq!(EventEnvelope::encode_body(&[1u8; 30]).1, BodyEncoding::Utf8);
        assert_eq!(
            EventEnvelope::encode_body(&vec![1u8; 60_000]).1,
            BodyEncoding::Base64
        );
        assert_eq!(
            EventEnvelope::encode_body(&vec![b'"'; 200_000]).1,
            BodyEncoding::Base64
        );
        for body in [&json[..], b"", &[1u8; 30], &[0xff, 0xfe], "é€😀".as_bytes()] {
            let (encoded, body_encoding) = EventEnvelope::encode_body(body);
            let event = envelope(encoded, body_encoding);
            assert_eq!(&*event.body_bytes().unwrap(), body);
        }
        // Messages queued before this choice existed (control characters as text) still decode.
        let old = r#"{"kind":"event","id":"evt_1","source":"s","type":"t","received_at":1,"body":"\u0001\u0002"}"#;
        let QueueMessage::Event(event) = serde_json::from_str(old).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(&*event.body_bytes().unwrap(), &[1u8, 2]);
    }

    #[test]
    fn attempt_outcomes_and_next_steps_keep_their_stored_spellings() {
        for outcome in AttemptOutcome::ALL {
            let json = serde_json::to_string(outcome).unwrap();
            assert_eq!(json, format!("\"{outcome}\""));
            assert_eq!(
                &serde_json::from_str::<AttemptOutcome>(&json).unwrap(),
                outcome
            );
        }
        for next in NextStep::ALL {
            let json = serde_json::to_string(next).unwrap();
            assert_eq!(json, format!("\"{}\"", next.as_str()));
            assert_eq!(&serde_json::from_str::<NextStep>(&json).unwrap(), next);
        }
        // A record written before these were enums reads back unchanged.
        let stored = r#"{"event_id":"evt_1","subscription_id":"sub_1","attempt":2,"at":5,"status":503,"outcome":"http_status","latency_ms":7,"next":"fanout_retry"}"#;
        let record: AttemptRecord = serde_json::from_str(stored).unwrap();
        assert_eq!(
            (record.outcome, record.next),
            (AttemptOutcome::HttpStatus, NextStep::FanoutRetry)
        );
        assert!(!record.settles_fanout());
        assert_eq!(serde_json::to_string(&record).unwrap(), stored);
        assert_eq!(format!("{:<8}|", NextStep::Done), "done    |");
    }

    fn envelope(body: String, body_encoding: BodyEncoding) -> EventEnvelope {
        EventEnvelope {
            id: "evt_1".into(),
            source: "gh".into(),
            event_type: "push".into(),
            content_type: None,
            received_at: 0,
            body,
            body_encoding,
            reconciled: false,
            stored_body: None,
        }
    }

    /// Deterministic pseudo-random bytes (xorshift), so the test needs no seed handling.
    fn random_bytes(len: usize) -> Vec<u8> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn every_body_at_the_limit_fits_one_queue_message() {
        let max = INLINE_BODY_MAX_BYTES;
        let controls: Vec<u8> = (0..max).map(|i| (i % 0x20) as u8).collect();
        let quotes: Vec<u8> = (0..max)
            .map(|i| if i % 2 == 0 { b'"' } else { b'\\' })
            .collect();
        let mut invalid_utf8 = vec![b'a'; max];
        invalid_utf8[max - 1] = 0xff;
        let bodies = [
            ("control characters", controls),
            ("quotes and backslashes", quotes),
            ("one control character", vec![0x01; max]),
            ("invalid UTF-8", invalid_utf8),
            ("random bytes", random_bytes(max)),
            ("plain text", vec![b'x'; max]),
        ];
        // Every other field at the largest the receiver lets through, of the worst characters.
        let mut largest_seen = 0;
        for (what, body) in bodies {
            assert_eq!(body.len(), max);
            let (encoded, body_encoding) = EventEnvelope::encode_body(&body);
            let event = EventEnvelope {
                id: format!("evt_{}", "0".repeat(32)),
                source: "s".repeat(MAX_SOURCE_NAME_BYTES),
                event_type: "\"".repeat(MAX_EVENT_TYPE_BYTES),
                content_type: Some("\t".repeat(MAX_CONTENT_TYPE_BYTES)),
                received_at: i64::MIN,
                body: encoded,
                body_encoding,
                reconciled: false,
                stored_body: None,
            };
            let task = DeliveryTask {
                event: event.clone(),
                subscription_id: format!("sub_{}", "0".repeat(32)),
                attempt: u32::MAX,
                schedule_step: u32::MAX,
                not_before: i64::MIN,
            };
            let as_event = QueueMessageRef::Event(&event).to_json().unwrap().len();
            let as_delivery = QueueMessageRef::Delivery(&task).to_json().unwrap().len();
            println!(
                "{what}: event message {as_event} bytes, delivery message {as_delivery} bytes"
            );
            for len in [as_event, as_delivery] {
                assert!(len <= LARGEST_QUEUE_MESSAGE_BYTES, "{what}: {len} bytes");
                assert!(len <= MAX_QUEUE_MESSAGE_BYTES, "{what}: {len} bytes");
            }
            largest_seen = largest_seen.max(as_delivery);
            assert_eq!(&*event.body_bytes().unwrap(), &body[..], "{what}");
        }
        println!(
            "largest message {largest_seen} bytes; bound {LARGEST_QUEUE_MESSAGE_BYTES}; queues {MAX_QUEUE_MESSAGE_BYTES}"
        );
    }

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
            reconciled: false,
            stored_body: None,
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
