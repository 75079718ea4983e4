//! Which subscriptions an event goes to and which attempt number comes next: one rule for the
//! fanout and for replay, so a replay reaches the subscriptions the fanout would and
//! `x-relay-attempt` never repeats.

use crate::model::{AttemptRecord, Subscription};
use crate::patterns::matches_any;

/// True when the fanout delivers an event of `event_type` to `subscription`: it is enabled and
/// one of its event patterns matches.
pub fn delivers_to(subscription: &Subscription, event_type: &str) -> bool {
    subscription.enabled && matches_any(&subscription.events, event_type)
}

/// The number of the next attempt to `subscription_id`: one past the highest in the event's
/// attempt log (1 when there is none).
pub fn next_attempt(attempts: &[AttemptRecord], subscription_id: &str) -> u32 {
    attempts
        .iter()
        .filter(|a| a.subscription_id == subscription_id)
        .map(|a| a.attempt)
        .max()
        .unwrap_or(0)
        + 1
}
