//! The ports the use cases need. relay-aws implements them over SQS and DynamoDB, relay-local
//! over SQLite.

use async_trait::async_trait;

use crate::model::{
    AttemptRecord, DedupClaim, DeliveryTask, Disposition, EventEnvelope, ReceivedMessage, Source,
    Subscription,
};

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

/// Provider delivery ids seen per source: claims that make a provider's retries duplicates.
#[async_trait]
pub trait DedupLedger: Send + Sync {
    /// Claims (source, key) for a new event unless a live claim exists. A `New` claim is a lease
    /// that expires at `lease_until` (seconds) unless confirmed.
    ///
    /// A live queued claim answers `Queued` with its event id; a live pending claim of another
    /// event answers `Pending`. A live pending claim of the same `event_id` answers `New`: it is
    /// the caller's own, taken by an earlier try whose answer was lost (an SDK retry must not
    /// turn the request into a 409); its lease is left as it was. A claim that expired
    /// (`now >= expires_at`) is taken over.
    async fn claim_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<DedupClaim, StoreError>;
    /// Marks the claim queued, kept until `expires_at` (seconds); also when the caller's lease
    /// expired meanwhile and nobody took the key, since the event is on the queue.
    /// `StoreError::Conflict` when another event has claimed the key since.
    async fn confirm_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Drops a claim whose event could not be queued, so the provider's retry is accepted.
    /// Does nothing when the key is claimed by another event id (a lease that expired may
    /// already belong to another request), is already queued, or is not claimed at all.
    async fn release_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
    ) -> Result<(), StoreError>;
}

/// Accepted events, kept for `events show` and replay, with the attempt log of each.
#[async_trait]
pub trait EventArchive: Send + Sync {
    /// Stores the event for `events show` and replay, kept until `expires_at` (seconds).
    async fn put_event(&self, event: &EventEnvelope, expires_at: i64) -> Result<(), StoreError>;
    async fn get_event(&self, id: &str) -> Result<Option<EventEnvelope>, StoreError>;
    /// Newest first.
    async fn list_events(&self, limit: usize) -> Result<Vec<EventEnvelope>, StoreError>;
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

#[async_trait]
pub trait Queue: Send + Sync {
    /// Returns once the events queue holds the event durably.
    async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError>;
    /// Schedules one delivery attempt, visible after `delay_secs` (at most 900).
    async fn send_delivery(&self, task: &DeliveryTask, delay_secs: u32) -> Result<(), QueueError>;
    /// Parks a delivery whose schedule is spent in the deliveries DLQ.
    async fn dead_letter_delivery(&self, task: &DeliveryTask) -> Result<(), QueueError>;
}

/// Makes one outbound delivery attempt (the HTTP POST) and classifies its answer.
#[async_trait]
pub trait Deliverer: Send + Sync {
    /// The configured delivery timeout; an attempt may be given less.
    fn timeout(&self) -> std::time::Duration;
    async fn deliver(
        &self,
        attempt: crate::delivery::Attempt<'_>,
    ) -> crate::delivery::AttemptResult;
}

/// The relay's four queues: the two it consumes and their dead-letter queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    Events,
    EventsDlq,
    Deliveries,
    DeliveriesDlq,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [
        QueueName::Events,
        QueueName::EventsDlq,
        QueueName::Deliveries,
        QueueName::DeliveriesDlq,
    ];

    /// The queue's short name (`events`, `events-dlq`, `deliveries`, `deliveries-dlq`), also
    /// what `FromStr` accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Events => "events",
            QueueName::EventsDlq => "events-dlq",
            QueueName::Deliveries => "deliveries",
            QueueName::DeliveriesDlq => "deliveries-dlq",
        }
    }

    /// The dead-letter queue of a main queue; `None` for a DLQ.
    pub fn dlq(self) -> Option<QueueName> {
        match self {
            QueueName::Events => Some(QueueName::EventsDlq),
            QueueName::Deliveries => Some(QueueName::DeliveriesDlq),
            QueueName::EventsDlq | QueueName::DeliveriesDlq => None,
        }
    }

    /// The main queue a DLQ is redriven to; `None` for a main queue.
    pub fn source_queue(self) -> Option<QueueName> {
        match self {
            QueueName::EventsDlq => Some(QueueName::Events),
            QueueName::DeliveriesDlq => Some(QueueName::Deliveries),
            QueueName::Events | QueueName::Deliveries => None,
        }
    }

    /// Its position in `ALL`, for per-queue arrays.
    pub fn index(self) -> usize {
        match self {
            QueueName::Events => 0,
            QueueName::EventsDlq => 1,
            QueueName::Deliveries => 2,
            QueueName::DeliveriesDlq => 3,
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
                    "unknown queue {s:?}: expected events, events-dlq, deliveries or deliveries-dlq"
                )
            })
    }
}

/// What a consumer does with a message it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Remove it from the queue for good.
    Delete,
    /// Hide it for this many seconds from now (at most SQS's 12 h; 0 makes it visible at once).
    HideFor(u32),
    /// Do nothing: it comes back when the visibility timeout of its receive ends.
    Leave,
}

impl Settle {
    /// How a fanout disposition is applied to the message it was given.
    pub fn for_disposition(disposition: Disposition) -> Settle {
        match disposition {
            Disposition::Delete => Settle::Delete,
            Disposition::Retry => Settle::Leave,
            Disposition::HideFor(secs) => Settle::HideFor(secs),
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
///   fanout skips what its attempt log shows settled), a hide, or leave.
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
