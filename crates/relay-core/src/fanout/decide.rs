//! What follows one delivery attempt, as a pure function of its inputs: the fanout applies the
//! decision through the ports (`Fanout::settle`), so every rule here is tested without I/O.

use std::time::Duration;

use crate::domain::model::{
    AttemptOutcome, AttemptRecord, DeliveryTask, EventEnvelope, NextStep, Subscription,
};
use crate::domain::retry::send_delay_secs;
use crate::outbound::delivery::Outcome;

/// One attempt's facts, as `decide` needs them.
pub struct AttemptFacts<'a> {
    pub event: &'a EventEnvelope,
    pub subscription: &'a Subscription,
    /// The number of the attempt just made.
    pub attempt: u32,
    /// Its index into the retry schedule.
    pub schedule_step: u32,
    pub outcome: &'a Outcome,
    /// The schedule's delay after this step, with jitter and the subscriber's Retry-After
    /// applied; None when the schedule is spent.
    pub retry_delay: Option<Duration>,
    pub now_millis: i64,
    /// A subscription failing without a single success for this long is disabled.
    pub health_window_secs: i64,
}

/// A change to the stored subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthChange {
    /// A run of failures starts now (seconds since the epoch).
    StartFailing(i64),
    /// A success ends the run of failures.
    Recovered,
    /// No more deliveries, for this reason.
    Disable(String),
    /// The destination guard refused the delivery (seconds since the epoch, the guard's reason);
    /// `relay status` lists the subscription until a delivery succeeds.
    Refused(i64, String),
}

/// What must be queued so the delivery goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// The next attempt, sent with this delay (at most SQS's maximum; `task.not_before` holds the
    /// real due time, and an early wake-up hops: see `hop_delay`).
    Retry {
        task: DeliveryTask,
        send_delay_secs: u32,
    },
    /// The schedule is spent: park it in the deliveries DLQ. A redrive gives one immediate
    /// attempt, then the schedule again, with the attempt number running on.
    DeadLetter(DeliveryTask),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The next step once the follow-up (if any) is queued; `FanoutRetry` replaces it when the
    /// follow-up cannot be queued.
    pub next: NextStep,
    pub health: Option<HealthChange>,
    pub follow_up: Option<FollowUp>,
}

/// Decides what follows an attempt. 2xx is done (and ends a run of failures); 410 disables the
/// subscription; a refused destination or an invalid request is dropped; any other status, a
/// timeout or a connection error is retried on the schedule, then dead-lettered; a subscription
/// failing for the whole health window is disabled instead.
pub fn decide(facts: &AttemptFacts<'_>) -> Decision {
    let now_secs = facts.now_millis.div_euclid(1000);
    let outcome = facts.outcome;
    let failing_since = facts.subscription.failing_since;
    match outcome {
        Outcome::Delivered { .. } => Decision {
            next: NextStep::Done,
            health: (failing_since.is_some() || facts.subscription.refused.is_some())
                .then_some(HealthChange::Recovered),
            follow_up: None,
        },
        Outcome::Gone => Decision {
            next: NextStep::Disabled,
            health: Some(HealthChange::Disable(
                "the endpoint answered 410 Gone".to_owned(),
            )),
            follow_up: None,
        },
        // One write per run of refusals, not one per event.
        Outcome::Refused(reason) => Decision {
            next: NextStep::Dropped,
            health: facts
                .subscription
                .refused
                .is_none()
                .then(|| HealthChange::Refused(now_secs, reason.clone())),
            follow_up: None,
        },
        Outcome::Invalid(_) => Decision {
            next: NextStep::Dropped,
            health: None,
            follow_up: None,
        },
        Outcome::Status { .. } | Outcome::Timeout | Outcome::Connect(_) => {
            if let Some(since) = failing_since
                && now_secs - since >= facts.health_window_secs
            {
                let days = (now_secs - since) as f64 / 86_400.0;
                return Decision {
                    next: NextStep::Disabled,
                    health: Some(HealthChange::Disable(format!(
                        "failing continuously for {days:.1} days"
                    ))),
                    follow_up: None,
                };
            }
            let health = failing_since
                .is_none()
                .then_some(HealthChange::StartFailing(now_secs));
            let next_task = DeliveryTask {
                event: facts.event.clone(),
                subscription_id: facts.subscription.id.clone(),
                attempt: facts.attempt + 1,
                schedule_step: facts.schedule_step + 1,
                not_before: 0,
            };
            match facts.retry_delay {
                Some(delay) => {
                    let wait_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                    Decision {
                        next: NextStep::RetryScheduled,
                        health,
                        follow_up: Some(FollowUp::Retry {
                            task: DeliveryTask {
                                not_before: facts.now_millis + wait_ms,
                                ..next_task
                            },
                            send_delay_secs: send_delay_secs(wait_ms),
                        }),
                    }
                }
                None => Decision {
                    next: NextStep::DeadLettered,
                    health,
                    follow_up: Some(FollowUp::DeadLetter(DeliveryTask {
                        schedule_step: 0,
                        ..next_task
                    })),
                },
            }
        }
    }
}

/// A delivery message received at `now_millis`, before its task is due, is sent again with this
/// delay (the rest of the wait, at most SQS's maximum) and the received one deleted: each hop is
/// a new delayed message carrying the same task, so a wait of hours never holds a message in
/// flight (a standard queue takes about 120,000 in flight, delayed ones without limit). None
/// when the task is due: attempt it.
pub fn hop_delay(task: &DeliveryTask, now_millis: i64) -> Option<u32> {
    (now_millis < task.not_before).then(|| send_delay_secs(task.not_before - now_millis))
}

/// A hop of a message received before: its first hop may be queued already (the delete of the
/// received message was lost), and that copy runs the attempt at `not_before`. This copy is due
/// `spacing` later (at least one whole attempt and its settling), so it runs after the first
/// one's record is written and `superseding_record` drops it. Costs a late attempt only when the
/// first hop was never queued. Returns the task to send and its delay.
pub fn respaced_hop(
    mut task: DeliveryTask,
    spacing: Duration,
    now_millis: i64,
) -> (DeliveryTask, u32) {
    let spacing_ms = i64::try_from(spacing.as_millis()).unwrap_or(i64::MAX / 2);
    task.not_before = task.not_before.saturating_add(spacing_ms);
    let delay = send_delay_secs(task.not_before.saturating_sub(now_millis));
    (task, delay)
}

/// The record in an event's attempt log showing that `task` was handled already, so running it
/// would repeat a delivery: a record of the same subscription with a later attempt number (the
/// chain moved on: it retried, succeeded, or a replay ran), or with the same number and a real
/// outcome. A `deferred` record of the same number is the hand-off that queued this task, not an
/// attempt. None: the attempt has not been made.
pub fn superseding_record<'a>(
    log: &'a [AttemptRecord],
    task: &DeliveryTask,
) -> Option<&'a AttemptRecord> {
    log.iter()
        .filter(|r| r.subscription_id == task.subscription_id)
        .find(|r| {
            r.attempt > task.attempt
                || (r.attempt == task.attempt && r.outcome != AttemptOutcome::Deferred)
        })
}
