//! The ports the use cases need. relay-aws implements them over SQS and DynamoDB, relay-local
//! over SQLite.

use async_trait::async_trait;

use crate::model::{AttemptRecord, DedupClaim, DeliveryTask, EventEnvelope, Source, Subscription};

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

#[async_trait]
pub trait Store: Send + Sync {
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
    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;
    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError>;

    /// Claims (source, key) for a new event unless a live claim exists. A `New` claim is a lease
    /// that expires at `lease_until` (seconds) unless confirmed.
    async fn claim_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<DedupClaim, StoreError>;
    /// Marks the claim queued, kept until `expires_at` (seconds).
    async fn confirm_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Drops a claim whose event could not be queued, so the provider's retry is accepted.
    async fn release_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
    ) -> Result<(), StoreError>;

    /// Stores the event for `events show` and replay, kept until `expires_at` (seconds).
    async fn put_event(&self, event: &EventEnvelope, expires_at: i64) -> Result<(), StoreError>;
    async fn get_event(&self, id: &str) -> Result<Option<EventEnvelope>, StoreError>;
    /// Newest first.
    async fn list_events(&self, limit: usize) -> Result<Vec<EventEnvelope>, StoreError>;
    async fn put_attempts(
        &self,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// In attempt order.
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
