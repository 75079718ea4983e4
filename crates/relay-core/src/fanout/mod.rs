//! The fanout use case, for messages from the three queues it consumes:
//! - an event: deliver to every matching subscription at once; each failure becomes its own
//!   message on the deliveries queue, so one failing subscriber never re-delivers to another;
//! - a delivery: one attempt for one subscription, then the next message of its schedule, or
//!   the DLQ when the schedule is spent.
//!
//! What to do is decided by pure functions (`plan`: which subscriptions a round attempts, whether
//! a task runs, the attempt records and the round's writes; `decide`: what follows an attempt);
//! this module reads their inputs through the ports, applies their plans and settles.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tracing::{debug, info, warn};

use crate::domain::metrics::Tally;
use crate::domain::model::{
    AttemptOutcome, AttemptRecord, DeliveryTask, Disposition, EventEnvelope, NextStep,
    QueueMessage, ReceivedMessage, Subscription,
};
use crate::domain::policy::Pacer;
use crate::outbound::delivery::{Attempt, AttemptResult, DeliveryClient};
use crate::ports::bodies::{BatchBodies, BodyReadError, with_inline_body};
use crate::ports::cache::TtlCache;
use crate::ports::clock::SharedClock;
use crate::ports::{
    BodyStore, Catalog, Deliverer, DeliveryLane, EventArchive, Queue, QueueError, StoreError,
};

pub mod breaker;
mod config;
pub mod decide;
mod health;
pub mod lane;
mod pace;
pub mod plan;
#[cfg(test)]
mod stored_bodies_tests;
pub mod targets;
#[cfg(test)]
mod tests;

use breaker::{BreakerFacts, FailureRuns, after_attempt};
use config::MIN_ATTEMPT_TIMEOUT;
pub use config::{ArchiveMode, FanoutConfig, SETTLE_RESERVE};
use decide::{AttemptFacts, FollowUp, decide, hop_delay, respaced_hop};
use health::Gated;
use pace::Paced;
use plan::{
    LogWrite, Planned, RoundLog, RoundStep, Step, TaskPlan, attempt_record, plan_round, plan_task,
};

pub struct Fanout {
    catalog: Arc<dyn Catalog>,
    archive: Arc<dyn EventArchive>,
    queue: Arc<dyn Queue>,
    deliverer: Arc<dyn Deliverer>,
    /// Where bodies too large to travel inline are read from.
    bodies: Option<Arc<dyn BodyStore>>,
    clock: SharedClock,
    config: FanoutConfig,
    by_source: TtlCache<Arc<Vec<Subscription>>>,
    by_id: TtlCache<Arc<Subscription>>,
    /// Where each attempt is counted for metrics, when the adapter emits them.
    tally: Option<Arc<Mutex<Tally>>>,
    /// Each subscription's rate and in-flight count in this process.
    pacer: Arc<Mutex<Pacer>>,
    /// Each subscription's failed attempts in a row in this process, for the breaker.
    failure_runs: Mutex<FailureRuns>,
}

/// One step's outcome, once applied.
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
            bodies: None,
            clock,
            config,
            tally: None,
            pacer: Arc::default(),
            failure_runs: Mutex::default(),
        }
    }

    /// Reads stored bodies (events whose body was too large to travel inline) from `bodies`.
    pub fn with_bodies(mut self, bodies: Arc<dyn BodyStore>) -> Self {
        self.bodies = Some(bodies);
        self
    }

    /// Counts every attempt into `tally` (the adapter renders it as EMF or Prometheus).
    pub fn with_tally(mut self, tally: Arc<Mutex<Tally>>) -> Self {
        self.tally = Some(tally);
        self
    }

    /// Handles a batch concurrently (bounded) and says what to do with each message, by receipt.
    /// With a `deadline` (a Lambda invocation's), attempts are cut short so that every outcome
    /// is still written and queued in time.
    pub async fn handle_batch(
        &self,
        messages: Vec<ReceivedMessage>,
        deadline: Option<Instant>,
    ) -> Vec<(String, Disposition)> {
        let bodies = &BatchBodies::default();
        futures::stream::iter(messages)
            .map(|message| async move {
                let disposition = self.handle_in_batch(&message, deadline, bodies).await;
                (message.receipt, disposition)
            })
            .buffer_unordered(self.config.record_concurrency.max(1))
            .collect()
            .await
    }

    /// Handles one message of either queue (by `deadline`, as `handle_batch`).
    pub async fn handle_message(
        &self,
        message: &ReceivedMessage,
        deadline: Option<Instant>,
    ) -> Disposition {
        self.handle_in_batch(message, deadline, &BatchBodies::default())
            .await
    }

    /// `handle_message`, reading stored bodies through the batch's `bodies`.
    async fn handle_in_batch(
        &self,
        message: &ReceivedMessage,
        deadline: Option<Instant>,
        bodies: &BatchBodies,
    ) -> Disposition {
        match serde_json::from_str::<QueueMessage>(&message.body) {
            Ok(QueueMessage::Event(event)) => {
                let body = bodies.read(self.bodies.as_deref(), &event).await;
                self.handle_event(event, body, deadline).await
            }
            Ok(QueueMessage::Delivery(task)) => {
                self.handle_delivery(task, deadline, message.receive_count, bodies)
                    .await
            }
            Err(e) => {
                // Not ours or damaged: leave it, so maxReceiveCount moves it to the DLQ intact.
                warn!(message_id = %message.name(), error = %e, "unreadable queue message left for the DLQ");
                Disposition::Retry
            }
        }
    }

    /// The subscription's timeout (its own, else the relay's delivery timeout), or `preferred`
    /// when shorter, cut to what the deadline leaves after the settle reserve.
    fn attempt_timeout(
        &self,
        subscription: &Subscription,
        preferred: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Duration {
        let configured = self.subscription_timeout(subscription);
        let mut timeout = preferred.map_or(configured, |p| p.min(configured));
        if let Some(deadline) = deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(SETTLE_RESERVE);
            timeout = timeout.min(left);
        }
        timeout.max(MIN_ATTEMPT_TIMEOUT)
    }

    /// The subscription's own attempt timeout, else the relay's.
    fn subscription_timeout(&self, subscription: &Subscription) -> Duration {
        subscription.policy.timeout_or(self.deliverer.timeout())
    }

    async fn handle_event(
        &self,
        event: EventEnvelope,
        body: Result<Bytes, BodyReadError>,
        deadline: Option<Instant>,
    ) -> Disposition {
        // `None`: the stored body is gone, so every subscription's delivery is dead-lettered.
        let body = match body {
            Ok(body) => Some(body),
            Err(BodyReadError::Gone { key }) => {
                warn!(event_id = %event.id, key, "stored body gone; the event's deliveries are dead-lettered");
                None
            }
            Err(e @ BodyReadError::Unavailable(_)) => {
                warn!(event_id = %event.id, error = %e, "body unavailable; event will be retried");
                return Disposition::Retry;
            }
            Err(e) => {
                warn!(event_id = %event.id, error = %e, "event left for the DLQ");
                return Disposition::Retry;
            }
        };
        let retention_until = self.clock.now_secs() + self.config.retention_secs;
        let (subscriptions, past) = tokio::join!(
            self.subscriptions_of(&event.source),
            self.attempt_log(&event.id),
        );
        let (subscriptions, past) = match (subscriptions, past) {
            (Ok(subs), Ok(past)) => (subs, past),
            (subs, past) => {
                let error = [
                    subs.err().map(|e| e.to_string()),
                    past.err().map(|e| e.to_string()),
                ];
                warn!(event_id = %event.id, error = ?error, "store unavailable; event will be retried");
                return Disposition::Retry;
            }
        };
        // Content filters look into the body: a stored one is planned over a copy carrying it.
        // Without the body no filter can be evaluated: every subscription taking the type is
        // told that the payload expired.
        let unfiltered: Vec<Subscription>;
        let planned = match &body {
            Some(body) if event.stored_body.is_some() => {
                plan_round(&with_inline_body(&event, body), &subscriptions, &past)
            }
            Some(_) => plan_round(&event, &subscriptions, &past),
            None => {
                unfiltered = subscriptions
                    .iter()
                    .map(|s| Subscription {
                        filter: None,
                        ..s.clone()
                    })
                    .collect();
                plan_round(&event, &unfiltered, &past)
            }
        };
        if planned.is_empty() {
            info!(event_id = %event.id, source = %event.source, event_type = %event.event_type, "no subscription to deliver to");
            return match self.store_untargeted(&event, &past, retention_until).await {
                Ok(()) => Disposition::Delete,
                Err(e) => {
                    warn!(event_id = %event.id, error = %e, "event write failed; event will be retried");
                    Disposition::Retry
                }
            };
        }

        // Each outcome is stored as soon as it is known, not when the slowest sibling is done:
        // a crash meanwhile then re-sends the event only to the subscriptions still unsettled.
        // One writer stores them in the order they come, so only one writes the event item.
        let (outcomes, mut settled) = tokio::sync::mpsc::unbounded_channel::<Settled>();
        let event = &event;
        let steps = async move {
            futures::future::join_all(planned.into_iter().map(|planned| {
                let (body, outcomes) = (body.clone(), outcomes.clone());
                async move {
                    let outcome = self.apply_step(event, planned, body, deadline).await;
                    // The writer outlives every step: the send cannot fail.
                    let _ = outcomes.send(outcome);
                }
            }))
            .await;
        };
        let writer = async {
            let mut log = RoundLog::default();
            let mut all_settled = true;
            while let Some(outcome) = settled.recv().await {
                let write = log.write_for(outcome.record, &past, self.config.archive);
                let stored = self.store(event, write, &mut log, retention_until).await;
                if let Err(e) = &stored {
                    warn!(event_id = %event.id, error = %e, "attempt log write failed; event will be retried");
                }
                all_settled &= outcome.handed_off && stored.is_ok();
            }
            all_settled
        };
        let ((), all_settled) = tokio::join!(steps, writer);
        // Without a record a retry could not tell who already has it: retry the event, which
        // skips the subscriptions whose outcome was stored.
        if all_settled {
            Disposition::Delete
        } else {
            Disposition::Retry
        }
    }

    /// One subscription's part in a round: an attempt now (when its pace lets it go within the
    /// batch), or the hand-off of a failing or deferred one.
    async fn apply_step(
        &self,
        event: &EventEnvelope,
        planned: Planned<'_>,
        body: Option<Bytes>,
        deadline: Option<Instant>,
    ) -> Settled {
        let Planned {
            subscription,
            attempt,
            step,
        } = planned;
        let now = self.clock.now_millis();
        let Some(body) = body else {
            let task = DeliveryTask {
                event: event.clone(),
                subscription_id: subscription.id.clone(),
                attempt,
                schedule_step: 0,
                not_before: now,
            };
            return self.payload_expired(&task).await;
        };
        match step {
            RoundStep::HandOff => {
                // Paused: due when the pause ends, not before.
                let not_before = match breaker::gate(subscription, now) {
                    breaker::Gate::Wait(until) => until,
                    _ => now,
                };
                self.hand_off(event, subscription, attempt, not_before)
                    .await
            }
            RoundStep::Deliver => {
                let timeout =
                    self.attempt_timeout(subscription, self.config.first_attempt_timeout, deadline);
                let probe = match self.breaker_gate(subscription, timeout).await {
                    Gated::Go { probe } => probe,
                    Gated::Wait(until) => {
                        return self.hand_off(event, subscription, attempt, until).await;
                    }
                };
                let _turn = match self.pace(subscription, timeout, deadline).await {
                    Paced::Go(turn) => turn,
                    Paced::Defer(wait_ms) => {
                        let not_before = self.clock.now_millis() + wait_ms;
                        return self
                            .hand_off(event, subscription, attempt, not_before)
                            .await;
                    }
                };
                let result = self
                    .attempt(event, body, subscription, attempt, timeout)
                    .await;
                self.settle(event, subscription, attempt, 0, result, probe)
                    .await
            }
        }
    }

    /// Performs a write of the round log (`RoundLog::write_for`).
    async fn store(
        &self,
        event: &EventEnvelope,
        write: LogWrite,
        log: &mut RoundLog,
        until: i64,
    ) -> Result<(), StoreError> {
        match write {
            LogWrite::Nothing => Ok(()),
            LogWrite::Record(record) => {
                self.archive
                    .put_attempts(std::slice::from_ref(&record), until)
                    .await
            }
            LogWrite::Event(records) => {
                self.archive.record_event(event, &records, until).await?;
                log.event_written();
                Ok(())
            }
        }
    }

    /// The event's attempt log, of earlier rounds and retries; none when nothing is archived.
    async fn attempt_log(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
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
    ) -> Result<(), StoreError> {
        if past.is_empty() && !self.config.archive.keeps(&[]) {
            return Ok(());
        }
        self.archive.record_event(event, past, until).await
    }

    /// A subscription already failing gets even its first attempt from the deliveries queue, so
    /// the event's batch, and every other subscription in it, never waits for a subscriber
    /// that may hang. The schedule is the same as after a failed inline attempt (step 0 next),
    /// and the attempt there overwrites this record (same event, subscription and number).
    /// A delivery its pace holds back is handed off the same way, due at `not_before`: a wait,
    /// not a failed attempt.
    async fn hand_off(
        &self,
        event: &EventEnvelope,
        sub: &Subscription,
        attempt: u32,
        not_before: i64,
    ) -> Settled {
        let task = DeliveryTask {
            event: event.clone(),
            subscription_id: sub.id.clone(),
            attempt,
            schedule_step: 0,
            not_before,
        };
        let delay_secs = hop_delay(&task, self.clock.now_millis()).unwrap_or(0);
        let record = attempt_record(
            event,
            &sub.id,
            attempt,
            self.clock.now_millis(),
            Step::NotSent(AttemptOutcome::Deferred),
            NextStep::RetryScheduled,
        );
        let lane = self.lane_of(sub);
        let queued = self.queue.send_delivery_on(lane, &task, delay_secs).await;
        // Not an attempt: nothing for the tally.
        self.settled(event, record, queued, false)
    }

    /// One attempt of a task from the deliveries queue, unless the task is not due (it hops) or
    /// the attempt log shows it was made already: a message whose delete was lost comes back,
    /// and a hop sent twice is two messages with one task.
    async fn handle_delivery(
        &self,
        task: DeliveryTask,
        deadline: Option<Instant>,
        receive_count: u32,
        bodies: &BatchBodies,
    ) -> Disposition {
        if let Some(delay_secs) = hop_delay(&task, self.clock.now_millis()) {
            return self.hop(task, delay_secs, receive_count).await;
        }
        let event = &task.event;
        let (subscription, log) = tokio::join!(
            self.subscription(&task.subscription_id),
            self.attempt_log(&event.id),
        );
        let log = match log {
            Ok(log) => log,
            Err(e) => {
                // Attempting blind could deliver twice to a subscriber that already has it.
                warn!(event_id = %event.id, error = %e, "attempt log unavailable; retry later");
                return Disposition::Retry;
            }
        };
        let subscription = match plan_task(&task, &log, subscription.as_ref().map(Option::as_deref))
        {
            Ok(TaskPlan::Attempt(sub)) => sub,
            Ok(TaskPlan::Duplicate(record)) => {
                info!(event_id = %event.id, subscription_id = %task.subscription_id, attempt = task.attempt, logged_attempt = record.attempt, logged_outcome = %record.outcome, "delivery already attempted; duplicate message dropped");
                return Disposition::Delete;
            }
            Ok(TaskPlan::Drop(why)) => {
                info!(event_id = %event.id, subscription_id = %task.subscription_id, outcome = %why, "retry dropped");
                self.log(&[attempt_record(
                    event,
                    &task.subscription_id,
                    task.attempt,
                    self.clock.now_millis(),
                    Step::NotSent(why),
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
        let body = match bodies.read(self.bodies.as_deref(), event).await {
            Ok(body) => body,
            Err(BodyReadError::Gone { key }) => {
                warn!(event_id = %event.id, subscription_id = %task.subscription_id, key, "stored body gone; delivery dead-lettered");
                let settled = self.payload_expired(&task).await;
                if !settled.handed_off {
                    return Disposition::Retry;
                }
                self.log(&[settled.record]).await;
                return Disposition::Delete;
            }
            Err(e @ BodyReadError::Unavailable(_)) => {
                warn!(event_id = %event.id, error = %e, "body unavailable; retry later");
                return Disposition::Retry;
            }
            Err(e) => {
                warn!(event_id = %event.id, error = %e, "delivery left for the DLQ");
                return Disposition::Retry;
            }
        };
        let timeout = self.attempt_timeout(subscription, None, deadline);
        let probe = match self.breaker_gate(subscription, timeout).await {
            Gated::Go { probe } => probe,
            Gated::Wait(until) => {
                // Paused: the same task, due when the pause ends; nothing attempted or logged.
                let task = DeliveryTask {
                    not_before: until,
                    ..task.clone()
                };
                let delay_secs = hop_delay(&task, self.clock.now_millis()).unwrap_or(0);
                return self.hop(task, delay_secs, receive_count).await;
            }
        };
        let _turn = match self.pace(subscription, timeout, deadline).await {
            Paced::Go(turn) => turn,
            Paced::Defer(wait_ms) => {
                // A wait, not an attempt: the same task, due later, with nothing logged.
                let task = DeliveryTask {
                    not_before: self.clock.now_millis() + wait_ms,
                    ..task.clone()
                };
                let delay_secs = hop_delay(&task, self.clock.now_millis()).unwrap_or(0);
                return self.hop(task, delay_secs, receive_count).await;
            }
        };
        let result = self
            .attempt(event, body, subscription, task.attempt, timeout)
            .await;
        let settled = self
            .settle(
                event,
                subscription,
                task.attempt,
                task.schedule_step,
                result,
                probe,
            )
            .await;
        if !settled.handed_off {
            return Disposition::Retry;
        }
        self.log(&[settled.record]).await;
        Disposition::Delete
    }

    /// An early wake-up (SQS delays stop at 15 minutes) goes on as a new delayed message with
    /// the same task; no attempt is counted or logged. Only once the new message is queued is
    /// the received one deleted. A message received before (`receive_count` > 1) may have been
    /// sent on already, its delete lost: its copy is due later (`decide::respaced_hop`), so the
    /// two copies never run at once and the later one finds the first one's record.
    async fn hop(&self, task: DeliveryTask, delay_secs: u32, receive_count: u32) -> Disposition {
        // Read through the cache: the subscription's lane and its own timeout.
        let subscription = self
            .subscription(&task.subscription_id)
            .await
            .ok()
            .flatten();
        let lane = subscription
            .as_deref()
            .map_or(DeliveryLane::Healthy, |sub| self.lane_of(sub));
        let (task, delay_secs) = if receive_count > 1 {
            let timeout = subscription
                .as_deref()
                .map_or(self.deliverer.timeout(), |sub| {
                    self.subscription_timeout(sub)
                });
            let spacing = timeout.max(self.deliverer.timeout()) + 2 * SETTLE_RESERVE;
            respaced_hop(task, spacing, self.clock.now_millis())
        } else {
            (task, delay_secs)
        };
        let task = &task;
        match self.queue.send_delivery_on(lane, task, delay_secs).await {
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

    /// The lane of `subscription`'s next delivery (`lane::lane`), by this process's run.
    fn lane_of(&self, subscription: &Subscription) -> DeliveryLane {
        let run = self
            .failure_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .current(&subscription.id);
        lane::lane(subscription, run, self.clock.now_millis())
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

    /// Decides what follows an attempt (`decide::decide`, `breaker::after_attempt`) and applies
    /// it: the health and breaker changes (one write), then the follow-up on the queue. The
    /// record says `fanout_retry` and `handed_off` is false when the follow-up could not be
    /// queued. `probe`: the attempt was the one at the end of a pause.
    async fn settle(
        &self,
        event: &EventEnvelope,
        subscription: &Subscription,
        attempt: u32,
        step: u32,
        result: AttemptResult,
        probe: bool,
    ) -> Settled {
        let now_millis = self.clock.now_millis();
        let decision = decide(&AttemptFacts {
            event,
            subscription,
            attempt,
            schedule_step: step,
            outcome: &result.outcome,
            retry_delay: subscription
                .policy
                .retry_schedule_or(&self.config.retry)
                .delay(step, result.retry_after),
            now_millis,
            health_window_secs: self.config.health_window_secs,
        });
        let record = attempt_record(
            event,
            &subscription.id,
            attempt,
            now_millis,
            Step::Attempted(&result),
            decision.next,
        );
        let failure_run = self
            .failure_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(&subscription.id, &result.outcome, now_millis);
        let breaker = after_attempt(&BreakerFacts {
            subscription,
            outcome: &result.outcome,
            retry_after: result.retry_after,
            probe,
            failure_run,
            now_millis,
        });
        if decision.health.is_some() || breaker.is_some() {
            self.apply_health(subscription, decision.health.clone(), breaker)
                .await;
        }
        let queued = match &decision.follow_up {
            None => Ok(()),
            Some(FollowUp::Retry {
                task,
                send_delay_secs,
            }) => {
                let lane = lane::lane(subscription, failure_run, now_millis);
                self.queue
                    .send_delivery_on(lane, task, *send_delay_secs)
                    .await
            }
            Some(FollowUp::DeadLetter(task)) => {
                let parked = self.queue.dead_letter_delivery(task).await;
                if parked.is_ok() {
                    warn!(event_id = %event.id, subscription_id = %subscription.id, attempt, "retries spent; delivery dead-lettered");
                }
                parked
            }
        };
        self.settled(event, record, queued, true)
    }

    /// The end of one subscription's step: when its follow-up (a retry, hand-off or dead
    /// letter) could not be queued, the record says the event will be retried instead; an
    /// attempt's record (`counted`) goes to the tally.
    fn settled(
        &self,
        event: &EventEnvelope,
        mut record: AttemptRecord,
        queued: Result<(), QueueError>,
        counted: bool,
    ) -> Settled {
        let handed_off = match queued {
            Ok(()) => true,
            Err(e) => {
                warn!(event_id = %event.id, subscription_id = %record.subscription_id, next = record.next.as_str(), error = %e, "could not queue the follow-up; the event will be retried");
                record.next = NextStep::FanoutRetry;
                false
            }
        };
        if let (true, Some(tally)) = (counted, &self.tally) {
            tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record_attempt(&event.source, event.received_at, &record);
        }
        Settled { record, handed_off }
    }

    /// A delivery whose stored body is gone: nothing can be sent, now or later, so it is
    /// dead-lettered at once with a `payload_expired` record (not retried until the DLQ).
    async fn payload_expired(&self, task: &DeliveryTask) -> Settled {
        let event = &task.event;
        let record = attempt_record(
            event,
            &task.subscription_id,
            task.attempt,
            self.clock.now_millis(),
            Step::NotSent(AttemptOutcome::PayloadExpired),
            NextStep::DeadLettered,
        );
        // Parked as the attempt a redrive makes next, as a spent schedule parks it.
        let parked = DeliveryTask {
            attempt: task.attempt + 1,
            schedule_step: 0,
            not_before: 0,
            ..task.clone()
        };
        let queued = self.queue.dead_letter_delivery(&parked).await;
        self.settled(event, record, queued, true)
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

    async fn subscriptions_of(&self, source: &str) -> Result<Arc<Vec<Subscription>>, StoreError> {
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

    async fn subscription(&self, id: &str) -> Result<Option<Arc<Subscription>>, StoreError> {
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
