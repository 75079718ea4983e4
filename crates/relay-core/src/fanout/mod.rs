//! The fanout use case, for messages from both queues:
//! - an event: deliver to every matching subscription at once; each failure becomes its own
//!   message on the deliveries queue, so one failing subscriber never re-delivers to another;
//! - a delivery: one attempt for one subscription, then the next message of its schedule, or
//!   the DLQ when the schedule is spent.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tracing::{debug, info, warn};

use crate::cache::TtlCache;
use crate::clock::SharedClock;
use crate::delivery::{Attempt, AttemptResult, DeliveryClient, Outcome};
use crate::metrics::Tally;
use crate::model::{
    AttemptOutcome, AttemptRecord, DeliveryTask, Disposition, EventEnvelope, NextStep,
    QueueMessage, ReceivedMessage, Subscription,
};
use crate::ports::{Catalog, Deliverer, EventArchive, Queue};
use crate::retry::RetrySchedule;
use crate::subscriptions::modify_subscription;

pub mod decide;
pub mod targets;
#[cfg(test)]
mod tests;

use decide::{
    AttemptFacts, FollowUp, HealthChange, decide, hop_delay, respaced_hop, superseding_record,
};

#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub retry: RetrySchedule,
    /// How long events and attempt logs are kept.
    pub retention_secs: i64,
    /// Records of one batch handled at once.
    pub record_concurrency: usize,
    pub cache_ttl: Duration,
    /// A subscription failing without a single success for this long is disabled.
    pub health_window_secs: i64,
    /// Timeout of the first attempt, made from the events queue; None: the delivery timeout.
    /// Shorter, so a hanging subscriber moves to the deliveries queue instead of holding its
    /// whole event batch.
    pub first_attempt_timeout: Option<Duration>,
    /// Which events are stored, with their attempt log, for `events show` and replay.
    pub archive: ArchiveMode,
}

/// Which events the fanout stores with their attempt log (`RELAY_EVENT_ARCHIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveMode {
    /// Every event: any of them can be shown and replayed.
    #[default]
    All,
    /// Only events with an attempt that did not succeed at once: an event delivered to every
    /// subscription at the first try costs no write.
    Failures,
    /// None: nothing to show or replay, and a retried event is delivered again to
    /// subscriptions that already have it (they see the same `webhook-id`).
    Off,
}

impl ArchiveMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Some(Self::All),
            "failures" => Some(Self::Failures),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// Whether a round that produced `records` stores the event.
    pub fn keeps(self, records: &[AttemptRecord]) -> bool {
        match self {
            Self::All => true,
            Self::Failures => records.iter().any(|r| r.outcome != AttemptOutcome::Ok),
            Self::Off => false,
        }
    }
}

/// Time kept back from a batch's deadline for writing outcomes and queuing follow-ups.
pub const SETTLE_RESERVE: Duration = Duration::from_secs(5);
/// No attempt gets less than this, however close the deadline.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            retry: RetrySchedule::default(),
            retention_secs: 14 * 86_400,
            record_concurrency: 16,
            cache_ttl: Duration::from_secs(10),
            health_window_secs: 5 * 86_400,
            first_attempt_timeout: None,
            archive: ArchiveMode::All,
        }
    }
}

pub struct Fanout {
    catalog: Arc<dyn Catalog>,
    archive: Arc<dyn EventArchive>,
    queue: Arc<dyn Queue>,
    deliverer: Arc<dyn Deliverer>,
    clock: SharedClock,
    config: FanoutConfig,
    by_source: TtlCache<Arc<Vec<Subscription>>>,
    by_id: TtlCache<Arc<Subscription>>,
    /// Where each attempt is counted for metrics, when the adapter emits them.
    tally: Option<Arc<Mutex<Tally>>>,
}

/// What happened to one subscription in this handling, before it is logged.
/// What a round on the events queue has stored so far.
#[derive(Default)]
struct RoundLog {
    event_stored: bool,
    /// Outcomes not stored yet: successes, while the archive keeps only failed events.
    held: Vec<AttemptRecord>,
}

struct Settled {
    record: AttemptRecord,
    /// False when the follow-up (retry message, DLQ) could not be queued.
    handed_off: bool,
}

impl Fanout {
    pub fn new<S: Catalog + EventArchive + 'static>(
        store: Arc<S>,
        queue: Arc<dyn Queue>,
        client: DeliveryClient,
        clock: SharedClock,
        config: FanoutConfig,
    ) -> Self {
        Self::with_deliverer(store, queue, Arc::new(client), clock, config)
    }

    /// The fanout over any deliverer (tests script one).
    /// Over a store that holds the catalog and the event archive (the fanout uses nothing else).
    pub fn with_deliverer<S: Catalog + EventArchive + 'static>(
        store: Arc<S>,
        queue: Arc<dyn Queue>,
        deliverer: Arc<dyn Deliverer>,
        clock: SharedClock,
        config: FanoutConfig,
    ) -> Self {
        Self {
            by_source: TtlCache::new(config.cache_ttl),
            by_id: TtlCache::new(config.cache_ttl),
            catalog: store.clone(),
            archive: store,
            queue,
            deliverer,
            clock,
            config,
            tally: None,
        }
    }

    /// Counts every attempt into `tally` (the adapter renders it as EMF or Prometheus).
    pub fn with_tally(mut self, tally: Arc<Mutex<Tally>>) -> Self {
        self.tally = Some(tally);
        self
    }

    /// Handles a batch concurrently (bounded) and says what to do with each message, by receipt.
    pub async fn handle_batch(&self, messages: Vec<ReceivedMessage>) -> Vec<(String, Disposition)> {
        self.handle_batch_by(messages, None).await
    }

    /// `handle_batch` for a batch that must be answered by `deadline` (a Lambda invocation's):
    /// attempts are cut short so that every outcome is still written and queued in time.
    pub async fn handle_batch_by(
        &self,
        messages: Vec<ReceivedMessage>,
        deadline: Option<Instant>,
    ) -> Vec<(String, Disposition)> {
        futures::stream::iter(messages)
            .map(|message| async move {
                let disposition = self.handle_message_by(&message, deadline).await;
                (message.receipt, disposition)
            })
            .buffer_unordered(self.config.record_concurrency.max(1))
            .collect()
            .await
    }

    pub async fn handle_message(&self, message: &ReceivedMessage) -> Disposition {
        self.handle_message_by(message, None).await
    }

    pub async fn handle_message_by(
        &self,
        message: &ReceivedMessage,
        deadline: Option<Instant>,
    ) -> Disposition {
        match serde_json::from_str::<QueueMessage>(&message.body) {
            Ok(QueueMessage::Event(event)) => {
                let timeout = self.attempt_timeout(self.config.first_attempt_timeout, deadline);
                self.handle_event(event, timeout).await
            }
            Ok(QueueMessage::Delivery(task)) => {
                let timeout = self.attempt_timeout(None, deadline);
                self.handle_delivery(task, timeout, message.receive_count)
                    .await
            }
            Err(e) => {
                // Not ours or damaged: leave it, so maxReceiveCount moves it to the DLQ intact.
                warn!(message_id = %message.name(), error = %e, "unreadable queue message left for the DLQ");
                Disposition::Retry
            }
        }
    }

    /// The delivery timeout (or `preferred`, when shorter), cut to what the deadline leaves
    /// after the settle reserve.
    fn attempt_timeout(&self, preferred: Option<Duration>, deadline: Option<Instant>) -> Duration {
        let configured = self.deliverer.timeout();
        let mut timeout = preferred.map_or(configured, |p| p.min(configured));
        if let Some(deadline) = deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(SETTLE_RESERVE);
            timeout = timeout.min(left);
        }
        timeout.max(MIN_ATTEMPT_TIMEOUT)
    }

    async fn handle_event(&self, event: EventEnvelope, timeout: Duration) -> Disposition {
        let body = match event.body_bytes() {
            Ok(body) => Bytes::from(body.into_owned()),
            Err(e) => {
                warn!(event_id = %event.id, error = %e, "event left for the DLQ");
                return Disposition::Retry;
            }
        };
        let retention_until = self.clock.now_secs() + self.config.retention_secs;
        let (subscriptions, settled) = tokio::join!(
            self.subscriptions_of(&event.source),
            self.past_attempts(&event.id),
        );
        let (subscriptions, settled) = match (subscriptions, settled) {
            (Ok(subs), Ok(settled)) => (subs, settled),
            (subs, settled) => {
                let error = [
                    subs.err().map(|e| e.to_string()),
                    settled.err().map(|e| e.to_string()),
                ];
                warn!(event_id = %event.id, error = ?error, "store unavailable; event will be retried");
                return Disposition::Retry;
            }
        };
        // A retried or redriven event skips the subscriptions it already settled.
        let done: HashSet<&str> = settled
            .iter()
            .filter(|a| a.settles_fanout())
            .map(|a| a.subscription_id.as_str())
            .collect();
        let targets: Vec<&Subscription> = subscriptions
            .iter()
            .filter(|s| targets::delivers_to(s, &event.event_type))
            .filter(|s| !done.contains(s.id.as_str()))
            .collect();
        if targets.is_empty() {
            info!(event_id = %event.id, source = %event.source, event_type = %event.event_type, "no subscription to deliver to");
            return match self
                .store_untargeted(&event, &settled, retention_until)
                .await
            {
                Ok(()) => Disposition::Delete,
                Err(()) => Disposition::Retry,
            };
        }

        // Attempt numbers run on past earlier tries of this event (whose follow-up could not be
        // queued), so `x-relay-attempt` never repeats.
        let attempt_of = |sub: &Subscription| targets::next_attempt(&settled, &sub.id);
        // Each outcome is stored as soon as it is known, not when the slowest sibling is done:
        // a crash meanwhile then re-sends the event only to the subscriptions still unsettled.
        // The first outcome stored writes the event item with it (for one subscription, the
        // event's only write); later ones are records of their own.
        let round_log = tokio::sync::Mutex::new(RoundLog::default());
        let round = futures::future::join_all(targets.iter().map(|sub| {
            let body = body.clone();
            let event = &event;
            let attempt = attempt_of(sub);
            let (settled, round_log) = (&settled, &round_log);
            async move {
                let outcome = if sub.failing_since.is_some() {
                    self.hand_off(event, sub, attempt).await
                } else {
                    let result = self.attempt(event, body, sub, attempt, timeout).await;
                    self.settle(event, sub, attempt, 0, result).await
                };
                let logged = self
                    .log_outcome(event, settled, outcome.record, round_log, retention_until)
                    .await;
                outcome.handed_off && logged.is_ok()
            }
        }))
        .await;
        // Without a record a retry could not tell who already has it: retry the event, which
        // skips the subscriptions whose outcome was stored.
        if round.iter().all(|done| *done) {
            Disposition::Delete
        } else {
            Disposition::Retry
        }
    }

    /// Stores one outcome of a round on the events queue, as the archive mode says: with the
    /// event, when it is the first of the event to be stored (and with the outcomes held back
    /// before it: `failures` holds successes until one attempt fails), else as a record.
    async fn log_outcome(
        &self,
        event: &EventEnvelope,
        past: &[AttemptRecord],
        record: AttemptRecord,
        round_log: &tokio::sync::Mutex<RoundLog>,
        until: i64,
    ) -> Result<(), ()> {
        if self.config.archive == ArchiveMode::Off {
            return Ok(());
        }
        // The round's writes go one at a time, so only one of them writes the event item.
        let mut log = round_log.lock().await;
        let written = if log.event_stored {
            self.archive
                .put_attempts(std::slice::from_ref(&record), until)
                .await
        } else {
            log.held.push(record);
            if past.is_empty() && !self.config.archive.keeps(&log.held) {
                return Ok(());
            }
            let all: Vec<AttemptRecord> = past.iter().chain(&log.held).cloned().collect();
            let written = self.archive.record_event(event, &all, until).await;
            if written.is_ok() {
                log.event_stored = true;
                log.held.clear();
            }
            written
        };
        written.map_err(|e| {
            warn!(event_id = %event.id, error = %e, "attempt log write failed; event will be retried");
        })
    }

    /// The attempt records of earlier rounds and retries; none when nothing is archived.
    async fn past_attempts(
        &self,
        event_id: &str,
    ) -> Result<Vec<AttemptRecord>, crate::ports::StoreError> {
        if self.config.archive == ArchiveMode::Off {
            return Ok(Vec::new());
        }
        self.archive.event_attempts(event_id).await
    }

    /// Stores an event no subscription takes (archive `all`, or stored before), so it is
    /// listed and can be replayed.
    async fn store_untargeted(
        &self,
        event: &EventEnvelope,
        past: &[AttemptRecord],
        until: i64,
    ) -> Result<(), ()> {
        if past.is_empty() && !self.config.archive.keeps(&[]) {
            return Ok(());
        }
        self.archive
            .record_event(event, past, until)
            .await
            .map_err(|e| {
                warn!(event_id = %event.id, error = %e, "event write failed; event will be retried");
            })
    }

    /// A subscription already failing gets even its first attempt from the deliveries queue, so
    /// the event's batch, and every other subscription in it, never waits for a subscriber
    /// that may hang. The schedule is the same as after a failed inline attempt (step 0 next),
    /// and the attempt there overwrites this record (same event, subscription and number).
    async fn hand_off(&self, event: &EventEnvelope, sub: &Subscription, attempt: u32) -> Settled {
        let task = DeliveryTask {
            event: event.clone(),
            subscription_id: sub.id.clone(),
            attempt,
            schedule_step: 0,
            not_before: self.clock.now_millis(),
        };
        let mut record = self.record(
            event,
            &sub.id,
            attempt,
            None,
            AttemptOutcome::Deferred,
            NextStep::RetryScheduled,
        );
        let handed_off = match self.queue.send_delivery(&task, 0).await {
            Ok(()) => true,
            Err(e) => {
                warn!(event_id = %event.id, subscription_id = %sub.id, error = %e, "could not hand a failing subscription to the deliveries queue; the event will be retried");
                record.next = NextStep::FanoutRetry;
                false
            }
        };
        Settled { record, handed_off }
    }

    /// One attempt of a task from the deliveries queue, unless the task is not due (it hops) or
    /// the attempt log shows it was made already: a message whose delete was lost comes back,
    /// and a hop sent twice is two messages with one task.
    async fn handle_delivery(
        &self,
        task: DeliveryTask,
        timeout: Duration,
        receive_count: u32,
    ) -> Disposition {
        if let Some(delay_secs) = hop_delay(&task, self.clock.now_millis()) {
            return self.hop(task, delay_secs, receive_count).await;
        }
        let event = &task.event;
        let (subscription, superseded) = tokio::join!(
            self.subscription(&task.subscription_id),
            self.superseding_record(&task),
        );
        match superseded {
            Ok(None) => {}
            Ok(Some(record)) => {
                info!(event_id = %event.id, subscription_id = %task.subscription_id, attempt = task.attempt, logged_attempt = record.attempt, logged_outcome = %record.outcome, "delivery already attempted; duplicate message dropped");
                return Disposition::Delete;
            }
            Err(e) => {
                // Attempting blind could deliver twice to a subscriber that already has it.
                warn!(event_id = %event.id, error = %e, "attempt log unavailable; retry later");
                return Disposition::Retry;
            }
        }
        let subscription = match subscription {
            Ok(Some(sub)) if sub.enabled => sub,
            Ok(found) => {
                let why = if found.is_some() {
                    AttemptOutcome::SubscriptionDisabled
                } else {
                    AttemptOutcome::SubscriptionRemoved
                };
                info!(event_id = %event.id, subscription_id = %task.subscription_id, outcome = %why, "retry dropped");
                self.log(&[self.record(
                    event,
                    &task.subscription_id,
                    task.attempt,
                    None,
                    why,
                    NextStep::Dropped,
                )])
                .await;
                return Disposition::Delete;
            }
            Err(e) => {
                warn!(event_id = %event.id, error = %e, "subscription lookup failed; retry later");
                return Disposition::Retry;
            }
        };
        let body = match event.body_bytes() {
            Ok(body) => Bytes::from(body.into_owned()),
            Err(e) => {
                warn!(event_id = %event.id, error = %e, "delivery left for the DLQ");
                return Disposition::Retry;
            }
        };
        let result = self
            .attempt(event, body, &subscription, task.attempt, timeout)
            .await;
        let settled = self
            .settle(
                event,
                &subscription,
                task.attempt,
                task.schedule_step,
                result,
            )
            .await;
        if !settled.handed_off {
            return Disposition::Retry;
        }
        self.log(&[settled.record]).await;
        Disposition::Delete
    }

    /// The record in the event's attempt log that makes `task` a duplicate
    /// (`decide::superseding_record`); none when nothing is archived.
    async fn superseding_record(
        &self,
        task: &DeliveryTask,
    ) -> Result<Option<AttemptRecord>, crate::ports::StoreError> {
        if self.config.archive == ArchiveMode::Off {
            return Ok(None);
        }
        let log = self.archive.event_attempts(&task.event.id).await?;
        Ok(superseding_record(&log, task).cloned())
    }

    /// An early wake-up (SQS delays stop at 15 minutes) goes on as a new delayed message with
    /// the same task; no attempt is counted or logged. Only once the new message is queued is
    /// the received one deleted. A message received before (`receive_count` > 1) may have been
    /// sent on already, its delete lost: its copy is due later (`decide::respaced_hop`), so the
    /// two copies never run at once and the later one finds the first one's record.
    async fn hop(&self, task: DeliveryTask, delay_secs: u32, receive_count: u32) -> Disposition {
        let (task, delay_secs) = if receive_count > 1 {
            let spacing = self.deliverer.timeout() + 2 * SETTLE_RESERVE;
            respaced_hop(task, spacing, self.clock.now_millis())
        } else {
            (task, delay_secs)
        };
        let task = &task;
        match self.queue.send_delivery(task, delay_secs).await {
            Ok(()) => {
                debug!(event_id = %task.event.id, subscription_id = %task.subscription_id, attempt = task.attempt, delay_secs, "delivery not due yet; sent on");
                Disposition::Delete
            }
            Err(e) => {
                warn!(event_id = %task.event.id, subscription_id = %task.subscription_id, error = %e, "could not send an early delivery on; it comes back after its visibility timeout");
                Disposition::Retry
            }
        }
    }

    async fn attempt(
        &self,
        event: &EventEnvelope,
        body: Bytes,
        subscription: &Subscription,
        attempt: u32,
        timeout: Duration,
    ) -> AttemptResult {
        let result = self
            .deliverer
            .deliver(Attempt {
                event,
                body,
                subscription,
                attempt,
                now_secs: self.clock.now_secs(),
                timeout,
            })
            .await;
        info!(
            event_id = %event.id,
            subscription_id = %subscription.id,
            attempt,
            outcome = %result.outcome.kind(),
            status = result.outcome.status(),
            latency_ms = result.latency.as_millis() as u64,
            "delivery attempt"
        );
        result
    }

    /// Decides what follows an attempt (`decide::decide`) and applies it: the health change,
    /// then the follow-up on the queue. The record says `fanout_retry` and `handed_off` is false
    /// when the follow-up could not be queued.
    async fn settle(
        &self,
        event: &EventEnvelope,
        subscription: &Subscription,
        attempt: u32,
        step: u32,
        result: AttemptResult,
    ) -> Settled {
        let now_millis = self.clock.now_millis();
        let decision = decide(&AttemptFacts {
            event,
            subscription,
            attempt,
            schedule_step: step,
            outcome: &result.outcome,
            retry_delay: self.config.retry.delay(step, result.retry_after),
            now_millis,
            health_window_secs: self.config.health_window_secs,
        });
        let mut record = AttemptRecord {
            event_id: event.id.clone(),
            subscription_id: subscription.id.clone(),
            attempt,
            at: now_millis - result.latency.as_millis() as i64,
            status: result.outcome.status(),
            outcome: result.outcome.kind(),
            latency_ms: result.latency.as_millis() as u64,
            response_excerpt: match &result.outcome {
                Outcome::Refused(reason) | Outcome::Invalid(reason) | Outcome::Connect(reason) => {
                    reason.clone()
                }
                _ => result.excerpt.clone(),
            },
            next: decision.next,
        };
        if let Some(change) = decision.health {
            self.apply_health(subscription, change).await;
        }
        let queued = match &decision.follow_up {
            None => Ok(()),
            Some(FollowUp::Retry {
                task,
                send_delay_secs,
            }) => self.queue.send_delivery(task, *send_delay_secs).await,
            Some(FollowUp::DeadLetter(task)) => {
                let parked = self.queue.dead_letter_delivery(task).await;
                if parked.is_ok() {
                    warn!(event_id = %event.id, subscription_id = %subscription.id, attempt, "retries spent; delivery dead-lettered");
                }
                parked
            }
        };
        let handed_off = match queued {
            Ok(()) => true,
            Err(e) => {
                warn!(event_id = %event.id, subscription_id = %subscription.id, error = %e, "could not queue the follow-up; the event will be retried");
                record.next = NextStep::FanoutRetry;
                false
            }
        };
        if let Some(tally) = &self.tally {
            tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record_attempt(&event.source, event.received_at, &record);
        }
        Settled { record, handed_off }
    }

    async fn apply_health(&self, subscription: &Subscription, change: HealthChange) {
        match change {
            HealthChange::StartFailing(now) => {
                self.update_subscription(subscription, |sub| {
                    sub.failing_since.get_or_insert(now);
                })
                .await;
            }
            HealthChange::Recovered => {
                self.update_subscription(subscription, |sub| sub.failing_since = None)
                    .await;
            }
            HealthChange::Disable(reason) => {
                self.update_subscription(subscription, |sub| {
                    sub.enabled = false;
                    sub.disabled_reason = Some(reason.clone());
                })
                .await;
                warn!(subscription_id = %subscription.id, reason = %reason, "subscription disabled");
            }
        }
    }

    /// Changes the stored subscription (not the cached copy) on the revision it read, so an
    /// operator's concurrent change (removal, disabling, a rotated secret) is never undone.
    async fn update_subscription(
        &self,
        subscription: &Subscription,
        mut change: impl FnMut(&mut Subscription) + Send,
    ) {
        let id = &subscription.id;
        let result = modify_subscription(self.catalog.as_ref(), id, |sub| {
            change(sub);
            true
        })
        .await;
        match result {
            Ok(_) => {
                self.by_id.invalidate(id);
                self.by_source.invalidate(&subscription.source);
            }
            Err(e) => warn!(subscription_id = %id, error = %e, "could not update the subscription"),
        }
    }

    fn record(
        &self,
        event: &EventEnvelope,
        subscription_id: &str,
        attempt: u32,
        status: Option<u16>,
        outcome: AttemptOutcome,
        next: NextStep,
    ) -> AttemptRecord {
        AttemptRecord {
            event_id: event.id.clone(),
            subscription_id: subscription_id.to_owned(),
            attempt,
            at: self.clock.now_millis(),
            status,
            outcome,
            latency_ms: 0,
            response_excerpt: String::new(),
            next,
        }
    }

    /// The attempt log is for people; a failed write must not repeat a delivery.
    async fn log(&self, records: &[AttemptRecord]) {
        if self.config.archive == ArchiveMode::Off {
            return;
        }
        let until = self.clock.now_secs() + self.config.retention_secs;
        if let Err(e) = self.archive.put_attempts(records, until).await {
            warn!(error = %e, "attempt log write failed");
        }
    }

    async fn subscriptions_of(
        &self,
        source: &str,
    ) -> Result<Arc<Vec<Subscription>>, crate::ports::StoreError> {
        let loaded = self
            .by_source
            .get_or_load(source, || async {
                self.catalog
                    .source_subscriptions(source)
                    .await
                    .map(|subs| Some(Arc::new(subs)))
            })
            .await?;
        Ok(loaded.unwrap_or_default())
    }

    async fn subscription(
        &self,
        id: &str,
    ) -> Result<Option<Arc<Subscription>>, crate::ports::StoreError> {
        self.by_id
            .get_or_load(id, || async {
                self.catalog
                    .get_subscription(id)
                    .await
                    .map(|s| s.map(Arc::new))
            })
            .await
    }
}
