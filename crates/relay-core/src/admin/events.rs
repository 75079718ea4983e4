//! Accepted events: list, show with the attempt log, and replay. Replay reaches the
//! subscriptions the fanout would and numbers its attempts as the fanout does
//! (`fanout::targets`), so `x-relay-attempt` runs on and never repeats.

use std::borrow::Cow;

use crate::domain::filter::EventInput;
use crate::domain::model::{AttemptRecord, DeliveryTask, EventEnvelope, Subscription};
use crate::domain::search::{DeliveryFilter, StatusFilter};
use crate::fanout::targets::{delivers_to, next_attempt, takes_type};
use crate::ports::bodies::{BodyReadError, read_body, with_inline_body};
use crate::ports::{BodyStore, Catalog, EventArchive, EventPage, EventQuery, Queue, StoreError};

use super::subscriptions::get_subscription;
use super::{AdminError, Missing};

/// An event with its attempt log (by attempt number, then subscription id).
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetail {
    pub event: EventEnvelope,
    pub attempts: Vec<AttemptRecord>,
}

/// The deliveries a replay queues, one per subscription, each due at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayPlan {
    pub tasks: Vec<DeliveryTask>,
}

/// One replayed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub subscription_id: String,
    pub attempt: u32,
}

/// One page of the archive, newest first, with the cursor of the next page.
pub async fn list_events(
    archive: &dyn EventArchive,
    query: &EventQuery,
) -> Result<EventPage, AdminError> {
    Ok(archive.list_events(query).await?)
}

/// `query` narrowed to one subscription's events (its source; the types it takes or was sent),
/// optionally in one state; each event found carries the subscription's state.
pub async fn subscription_query(
    catalog: &dyn Catalog,
    query: EventQuery,
    subscription_id: &str,
    status: Option<StatusFilter>,
) -> Result<EventQuery, AdminError> {
    let sub = get_subscription(catalog, subscription_id).await?;
    if query.source.as_ref().is_some_and(|s| *s != sub.source) {
        return Err(AdminError::invalid(
            "source",
            format!(
                "subscription {subscription_id} belongs to source {}, not {}",
                sub.source,
                query.source.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(EventQuery {
        source: Some(sub.source),
        delivery: Some(DeliveryFilter {
            subscription_id: sub.id,
            patterns: sub.events,
            status,
        }),
        ..query
    })
}

pub async fn show_event(archive: &dyn EventArchive, id: &str) -> Result<EventDetail, AdminError> {
    let event = archive
        .get_event(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(Missing::Event(id.to_owned())))?;
    let attempts = archive.event_attempts(id).await?;
    Ok(EventDetail { event, attempts })
}

/// The event as content filters see it: a stored body (an event over the inline limit) read
/// back from `bodies`, as the fanout reads it. `None` when the stored body is gone: no filter can
/// be evaluated, and the fanout tells every subscription taking the type that its payload
/// expired. Serves replay and bulk replay alike.
pub async fn filterable_event<'e>(
    bodies: Option<&dyn BodyStore>,
    event: &'e EventEnvelope,
) -> Result<Option<Cow<'e, EventEnvelope>>, AdminError> {
    if event.stored_body.is_none() {
        return Ok(Some(Cow::Borrowed(event)));
    }
    match read_body(bodies, event).await {
        Ok(body) => Ok(Some(Cow::Owned(with_inline_body(event, &body)))),
        Err(BodyReadError::Gone { .. }) => Ok(None),
        Err(e) => Err(AdminError::Store(StoreError::Unavailable(e.to_string()))),
    }
}

/// Whether a replay chooses `sub` for an event of `event_type` as filters see it
/// (`filterable_event`): enabled, its patterns and its filter; by its patterns alone when the
/// body is gone (`input` is `None`).
pub fn chosen(sub: &Subscription, event_type: &str, input: Option<&EventInput<'_>>) -> bool {
    match input {
        Some(input) => delivers_to(sub, input),
        None => sub.enabled && takes_type(sub, event_type),
    }
}

/// What replaying event `id` queues: to `only` (a subscription of the event's source, enabled
/// or not) or else to every subscription the fanout delivers the event to.
pub async fn plan_replay(
    catalog: &dyn Catalog,
    archive: &dyn EventArchive,
    id: &str,
    only: Option<&str>,
) -> Result<ReplayPlan, AdminError> {
    plan_replay_with_bodies(catalog, archive, None, id, only).await
}

/// `plan_replay`, reading a stored body (an event over the inline limit) from `bodies` so
/// content filters see it, as the fanout's do. A body gone: every subscription taking the
/// event's type is chosen, as the fanout tells each of them (`payload_expired`).
pub async fn plan_replay_with_bodies(
    catalog: &dyn Catalog,
    archive: &dyn EventArchive,
    bodies: Option<&dyn BodyStore>,
    id: &str,
    only: Option<&str>,
) -> Result<ReplayPlan, AdminError> {
    let EventDetail { event, attempts } = show_event(archive, id).await?;
    let targets = match only {
        Some(sub_id) => {
            let sub = get_subscription(catalog, sub_id).await?;
            if sub.source != event.source {
                return Err(AdminError::invalid(
                    "subscription",
                    format!(
                        "subscription {sub_id} belongs to source {}, not {}",
                        sub.source, event.source
                    ),
                ));
            }
            refuse_disabled(&sub)?;
            vec![sub]
        }
        None => {
            let subscriptions = catalog.source_subscriptions(&event.source).await?;
            let filterable = filterable_event(bodies, &event).await?;
            let input = filterable.as_deref().map(|e| EventInput::new(e));
            subscriptions
                .into_iter()
                .filter(|s| chosen(s, &event.event_type, input.as_ref()))
                .collect()
        }
    };
    let tasks = targets
        .iter()
        .map(|sub| DeliveryTask {
            event: event.clone(),
            subscription_id: sub.id.clone(),
            attempt: next_attempt(&attempts, &sub.id),
            schedule_step: 0,
            not_before: 0,
        })
        .collect();
    Ok(ReplayPlan { tasks })
}

/// A replay to a disabled subscription is refused: it would only be dropped when due.
pub(super) fn refuse_disabled(sub: &crate::domain::model::Subscription) -> Result<(), AdminError> {
    if sub.enabled {
        return Ok(());
    }
    let why = sub
        .disabled_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    Err(AdminError::Conflict(format!(
        "subscription {} is disabled{why}; enable it first with relay subscriptions enable {}",
        sub.id, sub.id
    )))
}

/// Queues a replay's deliveries, in order; stops at the first that cannot be queued.
pub async fn queue_replay(
    queue: &dyn Queue,
    plan: &ReplayPlan,
) -> Result<Vec<Replayed>, AdminError> {
    let mut queued = Vec::with_capacity(plan.tasks.len());
    for task in &plan.tasks {
        queue.send_delivery(task, 0).await?;
        queued.push(Replayed {
            subscription_id: task.subscription_id.clone(),
            attempt: task.attempt,
        });
    }
    Ok(queued)
}

/// Replays event `id`: `plan_replay`, then `queue_replay`.
pub async fn replay(
    catalog: &dyn Catalog,
    archive: &dyn EventArchive,
    queue: &dyn Queue,
    id: &str,
    only: Option<&str>,
) -> Result<Vec<Replayed>, AdminError> {
    let plan = plan_replay(catalog, archive, id, only).await?;
    queue_replay(queue, &plan).await
}
