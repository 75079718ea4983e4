//! Which subscriptions an event goes to and which attempt number comes next: one rule for the
//! fanout and for replay, so a replay reaches the subscriptions the fanout would and
//! `x-relay-attempt` never repeats.

use crate::domain::filter::EventInput;
use crate::domain::model::{AttemptRecord, Subscription};
use crate::domain::patterns::matches_any;

/// True when the fanout delivers the event to `subscription`: it is enabled and takes the event.
pub fn delivers_to(subscription: &Subscription, event: &EventInput<'_>) -> bool {
    subscription.enabled && takes(subscription, event)
}

/// True when `subscription` takes the event, enabled or not: one of its event patterns matches
/// the type (`takes_type`) and its content filter, when it has one, matches the body and headers.
pub fn takes(subscription: &Subscription, event: &EventInput<'_>) -> bool {
    takes_type(subscription, event.event_type())
        && subscription
            .filter
            .as_ref()
            .is_none_or(|filter| filter.matches(event))
}

/// The type half of `takes`, for a search that sees event types and not bodies.
pub fn takes_type(subscription: &Subscription, event_type: &str) -> bool {
    matches_any(&subscription.events, event_type)
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
