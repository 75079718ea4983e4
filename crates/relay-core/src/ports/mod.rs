//! The ports the use cases need. relay-aws implements them over SQS and DynamoDB, relay-local
//! over SQLite. Time is a port too (`clock`), warm processes
//! cache the catalog's look-ups (`cache`), and every change of a stored subscription goes
//! through one function over the catalog (`subscriptions::modify_subscription`).

pub mod bodies;
pub mod cache;
pub mod clock;
pub mod subscriptions;

use async_trait::async_trait;

use crate::domain::model::{
    AttemptRecord, DedupClaim, DeliveryTask, Disposition, EventEnvelope, ReceivedMessage, Source,
    Subscription,
};
use crate::domain::patterns::matches_any;
use crate::domain::search::{DeliveryFilter, DeliveryState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    /// The item changed (or was removed) since it was read; read it again and redo the change.
    #[error("{0} changed since it was read")]
    Stale(String),
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::domain::limits::DelayTooLong> for QueueError {
    fn from(refused: crate::domain::limits::DelayTooLong) -> Self {
        QueueError::Unavailable(refused.to_string())
    }
}

/// The whole store: the catalog, the dedup ledger and the event archive, as one adapter
/// provides them (SQLite, DynamoDB, memory). Use cases take only the parts they use; admin
/// commands take the whole.
pub trait Store: Catalog + DedupLedger + EventArchive {}

impl<T: Catalog + DedupLedger + EventArchive + ?Sized> Store for T {}

/// Sources and their subscriptions.
///
/// Every adapter keeps the same rules; `testkit::contract` checks each of them against every
/// adapter (SQLite, DynamoDB, memory). Times passed in are seconds since the epoch. Lists come
/// back in a fixed order: sources by name, a source's subscriptions by id, events newest first,
/// attempt records by attempt number, then subscription id.
///
/// Dedup claims (`claim_dedup`, `confirm_dedup`, `release_dedup`) expire at an exact instant: a
/// claim with `expires_at = T` (a pending lease or a queued record) is live while `now < T` and
/// free from `now >= T` on, whether or not the store has reaped it yet.
#[async_trait]
pub trait Catalog: Send + Sync {
    async fn get_source(&self, name: &str) -> Result<Option<Source>, StoreError>;
    async fn put_source(&self, source: &Source) -> Result<(), StoreError>;
    async fn list_sources(&self) -> Result<Vec<Source>, StoreError>;
    /// Removes the source and its subscriptions; false when there was no such source.
    async fn remove_source(&self, name: &str) -> Result<bool, StoreError>;

    /// Every subscription of one source (one query).
    async fn source_subscriptions(&self, source: &str) -> Result<Vec<Subscription>, StoreError>;
    async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError>;
    /// Writes a subscription unless another writer changed it since it was read, so no writer
    /// undoes another's change and a removed subscription is never written back:
    /// `subscription.revision` must equal the stored revision, and 0 means "not stored yet".
    /// The copy stored carries `revision + 1`, which is returned.
    /// `StoreError::Stale` when the stored revision differs or the subscription was removed.
    async fn put_subscription(&self, subscription: &Subscription) -> Result<u64, StoreError>;
    /// By id.
    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;
    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError>;
}

/// A claim on a provider's delivery id: `key` (the provider's delivery id) of `source`, made
/// for the event `event_id`. Named, since three strings in a row are easy to swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    pub source: &'a str,
    pub key: &'a str,
    pub event_id: &'a str,
}

impl<'a> Claim<'a> {
    pub fn new(source: &'a str, key: &'a str, event_id: &'a str) -> Self {
        Self {
            source,
            key,
            event_id,
        }
    }
}

/// A new claim's lease: taken at `now`, lapsing at `until` (seconds) unless confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub now: i64,
    pub until: i64,
}

/// Provider delivery ids seen per source: claims that make a provider's retries duplicates.
#[async_trait]
pub trait DedupLedger: Send + Sync {
    /// Claims (source, key) for a new event unless a live claim exists. A `New` claim is a lease
    /// that expires at `lease.until` (seconds) unless confirmed.
    ///
    /// A live queued claim answers `Queued` with its event id; a live pending claim of another
    /// event answers `Pending`. A live pending claim of the same `event_id` answers `New`: it is
    /// the caller's own, taken by an earlier try whose answer was lost (an SDK retry must not
    /// turn the request into a 409); its lease is left as it was. A claim that expired
    /// (`lease.now >= expires_at`) is taken over.
    async fn claim_dedup(&self, slot: Claim<'_>, lease: Lease) -> Result<DedupClaim, StoreError>;
    /// Marks the claim queued, kept until `expires_at` (seconds); also when the caller's lease
    /// expired meanwhile and nobody took the key, since the event is on the queue.
    /// `StoreError::Conflict` when another event has claimed the key since.
    async fn confirm_dedup(&self, slot: Claim<'_>, expires_at: i64) -> Result<(), StoreError>;
    /// Drops a claim whose event could not be queued, so the provider's retry is accepted.
    /// Does nothing when the key is claimed by another event id (a lease that expired may
    /// already belong to another request), is already queued, or is not claimed at all.
    async fn release_dedup(&self, slot: Claim<'_>) -> Result<(), StoreError>;
    /// The event id holding a live claim on (source, key) at `now` (seconds), pending or
    /// queued; `None` when the key is unclaimed or its claim expired. Reconcile asks it which
    /// provider ids arrived. A pending claim counts: its event is being queued, or (claims left
    /// for the stored event to confirm) was queued.
    async fn claimed_event_id(
        &self,
        source: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
}

/// Accepted events, kept for `events show` and replay, with the attempt log of each.
#[async_trait]
pub trait EventArchive: Send + Sync {
    /// Stores the event for `events show` and replay, kept until `expires_at` (seconds).
    async fn put_event(&self, event: &EventEnvelope, expires_at: i64) -> Result<(), StoreError>;
    /// Stores the event together with its attempt records so far (the fanout calls it once per
    /// round on the events queue, after the round's attempts), in one write where the store can:
    /// an event delivered at the first try then costs this one write. Writing the event again
    /// replaces it; a record whose key is logged already (by an earlier call or by
    /// `put_attempts`, which may have written a later outcome meanwhile) is kept as logged, so
    /// the caller passes every record it read as well as the round's new ones.
    async fn record_event(
        &self,
        event: &EventEnvelope,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError>;
    async fn get_event(&self, id: &str) -> Result<Option<EventEnvelope>, StoreError>;
    /// One page of events, newest first (by `received_at`, then id, both descending), the
    /// page's `next` cursor set exactly when more events match. Events received up to the
    /// archive's retention before `query.now_millis` are found; older ones may be left out.
    async fn list_events(&self, query: &EventQuery) -> Result<EventPage, StoreError>;
    /// Writes attempt records, kept until `expires_at` (seconds). A record is keyed by
    /// (event id, subscription id, attempt number): writing a key again replaces the earlier
    /// record (a fanout that runs again logs the attempt's final outcome); within one call the
    /// last record of a key wins.
    async fn put_attempts(
        &self,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// The event's attempt log: by attempt number, then subscription id (not by time).
    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError>;
}

/// Which events `EventArchive::list_events` returns. A store bounds what it reads by the
/// source, the time range and the cursor, and passes each event it reads through
/// `EventSummary::admitted` for the rest, so every store filters alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// At most this many events (0 gives an empty page).
    pub limit: usize,
    /// Only events after this position in newest-first order (a `next` cursor of an earlier page).
    pub before: Option<EventCursor>,
    /// Only events of this source.
    pub source: Option<String>,
    /// Only events whose type one of these patterns matches (`*`, an exact type, `prefix.*`:
    /// the subscriptions' syntax); empty: every type.
    pub types: Vec<String>,
    /// Only events received at or after this instant (milliseconds since the epoch). Event ids
    /// carry their arrival time (`ids::event_id_at`), so a store may bound its read by id.
    pub since_millis: Option<i64>,
    /// Only events received before this instant (milliseconds since the epoch).
    pub until_millis: Option<i64>,
    /// Only one subscription's events, in some states; the store reads each candidate's
    /// attempt log and returns it with the event (`EventSummary::attempts`).
    pub delivery: Option<DeliveryFilter>,
    /// The caller's clock (milliseconds): a store that files events by day walks back from here.
    pub now_millis: i64,
}

impl EventQuery {
    /// The newest `limit` events of every source and type, as of `now_millis`.
    pub fn newest(limit: usize, now_millis: i64) -> Self {
        Self {
            limit,
            before: None,
            source: None,
            types: Vec::new(),
            since_millis: None,
            until_millis: None,
            delivery: None,
            now_millis,
        }
    }

    /// Whether an event passes the source, type and time filters and comes after the cursor.
    pub fn admits(&self, event: &EventSummary) -> bool {
        self.source.as_deref().is_none_or(|s| s == event.source)
            && (self.types.is_empty() || matches_any(&self.types, &event.event_type))
            && self.since_millis.is_none_or(|t| event.received_at >= t)
            && self.until_millis.is_none_or(|t| event.received_at < t)
            && self.is_after_cursor(event.received_at, &event.id)
    }

    /// Whether an event at this position comes after the cursor (is older than it).
    pub fn is_after_cursor(&self, received_at: i64, id: &str) -> bool {
        self.before
            .as_ref()
            .is_none_or(|cursor| (received_at, id) < (cursor.received_at, cursor.id.as_str()))
    }
}

/// A position in the newest-first event order: `<received_at millis>.<event id>` as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    pub received_at: i64,
    pub id: String,
}

impl EventCursor {
    /// The cursor just past this event.
    pub fn after(event: &EventSummary) -> Self {
        Self {
            received_at: event.received_at,
            id: event.id.clone(),
        }
    }
}

impl std::fmt::Display for EventCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.received_at, self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an events cursor (expected <millis>.<event id>, as `events list` prints it)")]
pub struct InvalidCursor;

impl std::str::FromStr for EventCursor {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (millis, id) = text.split_once('.').ok_or(InvalidCursor)?;
        let all_digits = !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit());
        if !all_digits || id.is_empty() {
            return Err(InvalidCursor);
        }
        Ok(Self {
            received_at: millis.parse().map_err(|_| InvalidCursor)?,
            id: id.to_owned(),
        })
    }
}

/// What a listing shows of an event: everything but the body, and the body's stored length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    pub id: String,
    pub source: String,
    pub event_type: String,
    /// Milliseconds since the epoch.
    pub received_at: i64,
    /// Length of the body as stored (UTF-8 bytes, or base64 characters for a binary body).
    pub body_bytes: usize,
    /// With a delivery filter: the filtered subscription's state and the event's attempt log
    /// (by attempt number, then subscription id). Empty otherwise.
    pub delivery: Option<DeliveryState>,
    pub attempts: Vec<AttemptRecord>,
}

impl EventSummary {
    pub fn of(event: &EventEnvelope) -> Self {
        Self {
            id: event.id.clone(),
            source: event.source.clone(),
            event_type: event.event_type.clone(),
            received_at: event.received_at,
            body_bytes: event.body_len(),
            delivery: None,
            attempts: Vec::new(),
        }
    }

    /// The summary when `query` admits it: with its delivery state and attempt log under a
    /// delivery filter (`log` is read only then). Every store filters through here.
    pub fn admitted<E>(
        mut self,
        query: &EventQuery,
        log: impl FnOnce() -> Result<Vec<AttemptRecord>, E>,
    ) -> Result<Option<Self>, E> {
        if !query.admits(&self) {
            return Ok(None);
        }
        let Some(filter) = &query.delivery else {
            return Ok(Some(self));
        };
        let log = log()?;
        Ok(filter.state(&self.event_type, &log).map(|state| {
            self.delivery = Some(state);
            self.attempts = log;
            self
        }))
    }
}

/// One page of `list_events`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// Where the next page starts; `None` when no more events match.
    pub next: Option<EventCursor>,
}

impl EventPage {
    /// The page from up to `limit + 1` matching events in newest-first order: the extra one
    /// only says that there is a next page.
    pub fn from_newest(mut events: Vec<EventSummary>, limit: usize) -> Self {
        if limit == 0 {
            return Self::default();
        }
        let more = events.len() > limit;
        events.truncate(limit);
        let next = if more {
            events.last().map(EventCursor::after)
        } else {
            None
        };
        Self { events, next }
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Returns once the events queue holds the event durably.
    async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError>;
    /// Schedules one delivery attempt on `lane`'s queue, visible after `delay_secs` (at most
    /// 900).
    async fn send_delivery_on(
        &self,
        lane: DeliveryLane,
        task: &DeliveryTask,
        delay_secs: u32,
    ) -> Result<(), QueueError>;
    /// Schedules one delivery attempt on the healthy lane (replays, redriven deliveries).
    async fn send_delivery(&self, task: &DeliveryTask, delay_secs: u32) -> Result<(), QueueError> {
        self.send_delivery_on(DeliveryLane::Healthy, task, delay_secs)
            .await
    }
    /// Parks a delivery whose schedule is spent in the deliveries DLQ.
    async fn dead_letter_delivery(&self, task: &DeliveryTask) -> Result<(), QueueError>;
}

#[derive(Debug, thiserror::Error)]
pub enum BodyStoreError {
    #[error("body store unavailable: {0}")]
    Unavailable(String),
}

/// Where bodies too large to travel inline are kept once (the claim check): S3 on AWS, files in
/// the data dir for `relay dev`. Keys are the core's (`bodies::body_key`). Every adapter keeps
/// the same rules; `testkit::body_contract` checks each (S3, files, memory).
#[async_trait]
pub trait BodyStore: Send + Sync {
    /// Stores `body` under `key`, durably once this returns; `sha256` is its lower-case hex
    /// SHA-256, which an adapter may have the store check. Writing a key again replaces it.
    async fn put(&self, key: &str, body: bytes::Bytes, sha256: &str) -> Result<(), BodyStoreError>;
    /// The body under `key`; `None` when there is none (never written, deleted or expired).
    async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>, BodyStoreError>;
    /// Removes the body under `key`; a key with no body is not an error.
    async fn delete(&self, key: &str) -> Result<(), BodyStoreError>;
}

/// Makes one outbound delivery attempt (the HTTP POST) and classifies its answer.
#[async_trait]
pub trait Deliverer: Send + Sync {
    /// The configured delivery timeout; an attempt may be given less.
    fn timeout(&self) -> std::time::Duration;
    async fn deliver(
        &self,
        attempt: crate::domain::attempt::Attempt<'_>,
    ) -> crate::domain::attempt::AttemptResult;
}

/// Which of the two deliveries queues a retry waits on. Subscriptions that keep failing have
/// their own lane, consumed apart with its own share of workers, so their backlog never sits
/// in front of another subscription's retries (`fanout::lane` decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryLane {
    Healthy,
    Failing,
}

impl DeliveryLane {
    pub fn queue(self) -> QueueName {
        match self {
            DeliveryLane::Healthy => QueueName::Deliveries,
            DeliveryLane::Failing => QueueName::FailingDeliveries,
        }
    }
}

/// The relay's five queues: the three it consumes (events and the two delivery lanes) and the
/// dead-letter queues (the failing lane shares the deliveries DLQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    Events,
    EventsDlq,
    Deliveries,
    DeliveriesDlq,
    FailingDeliveries,
}

impl QueueName {
    pub const ALL: [QueueName; 5] = [
        QueueName::Events,
        QueueName::EventsDlq,
        QueueName::Deliveries,
        QueueName::DeliveriesDlq,
        QueueName::FailingDeliveries,
    ];

    /// The queue's short name (`events`, `events-dlq`, `deliveries`, `deliveries-dlq`,
    /// `failing-deliveries`), also what `FromStr` accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Events => "events",
            QueueName::EventsDlq => "events-dlq",
            QueueName::Deliveries => "deliveries",
            QueueName::DeliveriesDlq => "deliveries-dlq",
            QueueName::FailingDeliveries => "failing-deliveries",
        }
    }

    /// The dead-letter queue of a main queue; `None` for a DLQ.
    pub fn dlq(self) -> Option<QueueName> {
        match self {
            QueueName::Events => Some(QueueName::EventsDlq),
            QueueName::Deliveries | QueueName::FailingDeliveries => Some(QueueName::DeliveriesDlq),
            QueueName::EventsDlq | QueueName::DeliveriesDlq => None,
        }
    }

    /// The main queue a DLQ is redriven to; `None` for a main queue. Dead letters of both
    /// delivery lanes go back to the healthy one: the next failure moves them again.
    pub fn source_queue(self) -> Option<QueueName> {
        match self {
            QueueName::EventsDlq => Some(QueueName::Events),
            QueueName::DeliveriesDlq => Some(QueueName::Deliveries),
            QueueName::Events | QueueName::Deliveries | QueueName::FailingDeliveries => None,
        }
    }

    /// Its position in `ALL`, for per-queue arrays.
    pub fn index(self) -> usize {
        match self {
            QueueName::Events => 0,
            QueueName::EventsDlq => 1,
            QueueName::Deliveries => 2,
            QueueName::DeliveriesDlq => 3,
            QueueName::FailingDeliveries => 4,
        }
    }
}

impl std::fmt::Display for QueueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for QueueName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueueName::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown queue {s:?}: expected events, events-dlq, deliveries, deliveries-dlq or failing-deliveries"
                )
            })
    }
}

/// What a consumer does with a message it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Remove it from the queue for good.
    Delete,
    /// Do nothing: it comes back when the visibility timeout of its receive ends.
    Leave,
}

impl Settle {
    /// How a fanout disposition is applied to the message it was given.
    pub fn for_disposition(disposition: Disposition) -> Settle {
        match disposition {
            Disposition::Delete => Settle::Delete,
            Disposition::Retry => Settle::Leave,
        }
    }
}

/// Approximate message counts of one queue; the three are disjoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QueueDepth {
    /// Ready to be received.
    pub visible: u64,
    /// Received and not yet visible again (deleted, hidden or left).
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
    /// Seconds since the oldest message still on the queue was sent; `None` when the queue is
    /// empty or the adapter cannot tell (SQS keeps it as a CloudWatch metric, not an attribute).
    pub oldest_age_secs: Option<u64>,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// The consumer and operator side of the queues: receive, settle, redrive, depth. Every adapter
/// keeps the same rules; `testkit::queue_contract` checks each against every adapter (SQLite,
/// SQS, memory).
///
/// - Visibility: a received message is not handed out again until the visibility of that receive
///   has passed, and is afterwards (unless settled).
/// - Receive counts: `receive_count` counts every receive of the message, this one included; it
///   starts again at 1 after a redrive.
/// - Dead letters: a main queue hands a message out at most its maximum receive count of times;
///   a receive after that moves it to the queue's DLQ instead. DLQs keep their messages.
/// - Delays: a message sent with a delay is not received before the delay has passed, and is
///   counted as delayed meanwhile.
/// - Receipt handles: each receive hands out a new receipt; settling with the receipt of the
///   latest receive acts on the message. A stale receipt (the message was received again since,
///   or is gone: deleted, dead-lettered, redriven) is not an error: `settle` answers `Ok`, and it
///   may or may not act on the message (SQLite and memory ignore it, SQS documents that it may
///   ignore an outdated handle, moto applies it). Either way the latest receipt still settles the
///   message, and a deleted message is never handed out again. Consumers therefore only settle
///   what is safe whether or not it takes effect: a delete after the work is done for good (the
///   fanout skips what its attempt log shows settled), or leave.
/// - Redrive moves every message of a DLQ back to its source queue, visible at once with its
///   receive count started again, and returns how many moved.
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// Takes up to `max` visible messages (an adapter may cap it: SQS at 10), waiting up to `wait`
    /// for the first (SQS caps a long poll at 20 s), and hides each for `visibility` (at most
    /// 12 h). An empty answer when nothing came within `wait`.
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: std::time::Duration,
        visibility: std::time::Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;
    /// Applies `action` to the message received with `receipt` (stale receipts: see above).
    async fn settle(
        &self,
        queue: QueueName,
        receipt: &str,
        action: Settle,
    ) -> Result<(), QueueError>;
    /// Moves every message of the DLQ `dlq` back to its source queue; returns how many moved.
    /// `QueueError::Unavailable` when `dlq` is not a DLQ.
    async fn redrive(&self, dlq: QueueName) -> Result<u64, QueueError>;
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError>;
}

/// Counts of what happened in a time window, as the relay's metrics count them: events accepted
/// (202), delivery attempts answered 2xx, and attempts that failed (sent and not answered 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ActivityCounts {
    pub accepted: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// Recent activity for `relay status`: SQLite counts its events and attempt log, AWS reads the
/// functions' metrics from CloudWatch.
#[async_trait]
pub trait RecentActivity: Send + Sync {
    /// Counts from `since_millis` (inclusive) to `until_millis` (exclusive).
    async fn activity(
        &self,
        since_millis: i64,
        until_millis: i64,
    ) -> Result<ActivityCounts, StoreError>;
    /// The age of the queue's oldest message as last measured before `now_millis`, for
    /// backends whose queue adapter cannot tell it (SQS publishes it only as a CloudWatch
    /// metric); `None` when unknown.
    async fn oldest_age_secs(
        &self,
        _queue: QueueName,
        _now_millis: i64,
    ) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}

impl ActivityCounts {
    /// Adds `n` attempts with this outcome, counted as the metrics count them: 2xx is
    /// delivered, a retry that sent nothing (subscription removed or disabled) or an attempt
    /// deferred untried is not an attempt, everything else failed.
    pub fn add_attempts(&mut self, outcome: crate::domain::model::AttemptOutcome, n: u64) {
        use crate::domain::model::AttemptOutcome as O;
        match outcome {
            O::Ok => self.delivered += n,
            O::SubscriptionRemoved | O::SubscriptionDisabled | O::Deferred => {}
            O::Gone
            | O::Redirect
            | O::HttpStatus
            | O::Timeout
            | O::Connect
            | O::RefusedDestination
            | O::InvalidRequest
            | O::PayloadExpired => self.failed += n,
        }
    }
}

/// Host name resolution for the destination check of `subscriptions add`: the CLI uses the
/// system resolver. Deliveries resolve again on every connection (`netguard::GuardedResolver`).
#[async_trait]
pub trait HostResolver: Send + Sync {
    /// Every address `host` resolves to; `Err` says why it could not be resolved.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<std::net::IpAddr>, String>;
}
