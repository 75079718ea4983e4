//! The fanout's policy for one message, as pure functions of what was read: which subscriptions
//! a round on the events queue attempts or hands off, whether a task from the deliveries queue
//! is attempted, the attempt record of every step, and which write stores a round's outcomes.
//! `Fanout` reads the inputs, applies the plan through the ports and settles.

use std::collections::HashSet;

use crate::domain::filter::EventInput;
use crate::domain::model::{
    AttemptOutcome, AttemptRecord, DeliveryTask, EventEnvelope, Subscription,
};
use crate::outbound::delivery::{AttemptResult, Outcome};

use super::ArchiveMode;
use super::decide::superseding_record;
use super::targets::{delivers_to, next_attempt};

/// What a round does for one matched subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundStep {
    /// Attempt it now, from the events queue.
    Deliver,
    /// It is failing already: its first attempt goes to the deliveries queue, so the round
    /// never waits for a subscriber that may hang.
    HandOff,
}

/// One subscription's part in a round, with the attempt number it gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned<'a> {
    pub subscription: &'a Subscription,
    pub attempt: u32,
    pub step: RoundStep,
}

/// Plans a round of `event` over its source's `subscriptions`: each enabled subscription whose
/// patterns and filter match (the body parsed once for all of them), skipping those whose outcome the attempt log `past` already settled (a
/// retried or redriven event). Attempt numbers run on past earlier tries (whose follow-up could
/// not be queued), so `x-relay-attempt` never repeats. Empty: nobody to deliver to.
pub fn plan_round<'a>(
    event: &EventEnvelope,
    subscriptions: &'a [Subscription],
    past: &[AttemptRecord],
) -> Vec<Planned<'a>> {
    let done: HashSet<&str> = past
        .iter()
        .filter(|a| a.settles_fanout())
        .map(|a| a.subscription_id.as_str())
        .collect();
    let input = EventInput::new(event);
    subscriptions
        .iter()
        .filter(|s| delivers_to(s, &input))
        .filter(|s| !done.contains(s.id.as_str()))
        .map(|subscription| Planned {
            subscription,
            attempt: next_attempt(past, &subscription.id),
            step: if subscription.failing_since.is_some() {
                RoundStep::HandOff
            } else {
                RoundStep::Deliver
            },
        })
        .collect()
}

/// What a due task from the deliveries queue comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskPlan<'a> {
    /// Attempt it for this subscription.
    Attempt(&'a Subscription),
    /// The attempt log shows it was handled already (`decide::superseding_record`): a message
    /// whose delete was lost came back, or a hop was sent twice. Drop the message.
    Duplicate(&'a AttemptRecord),
    /// The subscription was removed or disabled meanwhile: record why and drop it.
    Drop(AttemptOutcome),
}

/// Plans a due `task` from its event's attempt log and the lookup of its subscription as
/// stored now. A duplicate is dropped even when the lookup failed; otherwise its error is the
/// plan's (retry later).
pub fn plan_task<'a, E>(
    task: &DeliveryTask,
    log: &'a [AttemptRecord],
    subscription: Result<Option<&'a Subscription>, E>,
) -> Result<TaskPlan<'a>, E> {
    if let Some(record) = superseding_record(log, task) {
        return Ok(TaskPlan::Duplicate(record));
    }
    Ok(match subscription? {
        Some(sub) if sub.enabled => TaskPlan::Attempt(sub),
        Some(_) => TaskPlan::Drop(AttemptOutcome::SubscriptionDisabled),
        None => TaskPlan::Drop(AttemptOutcome::SubscriptionRemoved),
    })
}

/// What a step of the attempt log records.
pub enum Step<'a> {
    /// An attempt made, with its result.
    Attempted(&'a AttemptResult),
    /// Nothing sent: handed to the deliveries queue, or dropped for this reason.
    NotSent(AttemptOutcome),
}

/// The attempt record of one step, made at `now_millis` (an attempt is dated when it started).
pub fn attempt_record(
    event: &EventEnvelope,
    subscription_id: &str,
    attempt: u32,
    now_millis: i64,
    step: Step<'_>,
    next: crate::domain::model::NextStep,
) -> AttemptRecord {
    let (at, status, outcome, latency_ms, response_excerpt) = match step {
        Step::Attempted(result) => (
            now_millis - result.latency.as_millis() as i64,
            result.outcome.status(),
            result.outcome.kind(),
            result.latency.as_millis() as u64,
            match &result.outcome {
                Outcome::Refused(reason) | Outcome::Invalid(reason) | Outcome::Connect(reason) => {
                    reason.clone()
                }
                _ => result.excerpt.clone(),
            },
        ),
        Step::NotSent(outcome) => (now_millis, None, outcome, 0, String::new()),
    };
    AttemptRecord {
        event_id: event.id.clone(),
        subscription_id: subscription_id.to_owned(),
        attempt,
        at,
        status,
        outcome,
        latency_ms,
        response_excerpt,
        next,
    }
}

/// What a round on the events queue has stored so far. Its outcomes are stored one at a time,
/// each as soon as it is known: the first one stored writes the event item with it (for one
/// subscription, the event's only write), later ones are records of their own.
#[derive(Debug, Default)]
pub struct RoundLog {
    event_stored: bool,
    /// Outcomes not stored yet: successes, while the archive keeps only failed events.
    held: Vec<AttemptRecord>,
}

/// The write that stores a round's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum LogWrite {
    /// None (yet): nothing is archived, or only failed events are and none failed so far.
    Nothing,
    /// The event with these records: the earlier rounds', those held back and the new one.
    Event(Vec<AttemptRecord>),
    /// The event is stored: one more record.
    Record(AttemptRecord),
}

impl RoundLog {
    /// The write that stores `record`, given the earlier rounds' log `past`. After an `Event`
    /// write succeeds, call `event_written`; until then the records stay held for the next.
    pub fn write_for(
        &mut self,
        record: AttemptRecord,
        past: &[AttemptRecord],
        mode: ArchiveMode,
    ) -> LogWrite {
        if mode == ArchiveMode::Off {
            return LogWrite::Nothing;
        }
        if self.event_stored {
            return LogWrite::Record(record);
        }
        self.held.push(record);
        if past.is_empty() && !mode.keeps(&self.held) {
            return LogWrite::Nothing;
        }
        LogWrite::Event(past.iter().chain(&self.held).cloned().collect())
    }

    pub fn event_written(&mut self) {
        self.event_stored = true;
        self.held.clear();
    }
}
