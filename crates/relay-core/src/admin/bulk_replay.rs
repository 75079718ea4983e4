//! Bulk re-delivery after an outage: every (event, subscription) pair of one subscription, or
//! of each subscription of a source, received in a time range and in a delivery state, queued
//! again as one delivery each. Nothing is delivered inline: the fanout attempts them with the
//! subscription as stored then (URL, secret, headers).
//!
//! Each delivery takes the pair's next attempt number (`fanout::targets::next_attempt`), so the
//! fanout's attempt-log check (`fanout::decide::superseding_record`) keeps a pair from being
//! delivered twice: a retry that was waiting for the pair, or a copy queued by an earlier run
//! that stopped midway, finds the attempt logged and is dropped. A run again after a crash
//! re-plans from the log, so pairs delivered since no longer match `failed`.

use futures::stream::{self, StreamExt};

use crate::domain::filter::EventInput;
use crate::domain::model::{DeliveryTask, Subscription};
use crate::domain::search::{DeliveryFilter, DeliveryState, StatusFilter};
use crate::fanout::targets::{next_attempt, takes_type};
use crate::ports::{BodyStore, Catalog, EventArchive, EventQuery, EventSummary, Queue};

use super::events::{chosen, filterable_event, refuse_disabled};
use super::subscriptions::get_subscription;
use super::{AdminError, Missing};

/// Above this many pairs the caller must confirm (`relay replay --yes`).
pub const CONFIRM_ABOVE: usize = 10_000;
/// How many events a search reads per page.
const SEARCH_PAGE: usize = 500;
/// Events fetched and queued at once.
const QUEUE_CONCURRENCY: usize = 8;

/// Whose deliveries to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkTarget {
    Subscription(String),
    /// Each enabled subscription of the source.
    Source(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkReplay {
    pub target: BulkTarget,
    /// Events received at or after this instant (milliseconds since the epoch).
    pub since_millis: i64,
    /// Events received before this instant, when set.
    pub until_millis: Option<i64>,
    /// The pairs' state; `None` replays every pair.
    pub status: Option<StatusFilter>,
    /// Event-type patterns (empty: every type the subscription takes).
    pub types: Vec<String>,
    /// The caller's clock (milliseconds).
    pub now_millis: i64,
}

/// One delivery a bulk replay queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPair {
    pub event_id: String,
    pub subscription_id: String,
    pub attempt: u32,
    /// The pair's state when planned.
    pub state: DeliveryState,
}

/// What a bulk replay leaves out, and why (a disabled subscription, an event gone meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub subscription_id: String,
    pub event_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BulkPlan {
    /// Oldest event first, then by subscription id.
    pub pairs: Vec<PlannedPair>,
    pub skipped: Vec<Skipped>,
}

impl BulkPlan {
    /// True when the plan is over `CONFIRM_ABOVE` pairs.
    pub fn needs_confirmation(&self) -> bool {
        self.pairs.len() > CONFIRM_ABOVE
    }

    /// The ids of the first `n` distinct events in the plan.
    pub fn first_event_ids(&self, n: usize) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::with_capacity(n);
        for pair in &self.pairs {
            if ids.len() == n {
                break;
            }
            if ids.last() != Some(&pair.event_id.as_str()) {
                ids.push(&pair.event_id);
            }
        }
        ids
    }
}

/// What was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOutcome {
    pub matched: usize,
    pub enqueued: usize,
    pub skipped: Vec<Skipped>,
}

/// Finds the pairs to replay; stored bodies are read from `bodies` for content filters.
/// `progress` is told how many events were examined so far.
pub async fn plan_bulk_replay(
    catalog: &dyn Catalog,
    archive: &dyn EventArchive,
    bodies: Option<&dyn BodyStore>,
    request: &BulkReplay,
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<BulkPlan, AdminError> {
    if request
        .until_millis
        .is_some_and(|until| until <= request.since_millis)
    {
        return Err(AdminError::invalid(
            "until",
            "--until is not after --since: the range holds no event",
        ));
    }
    let mut plan = BulkPlan::default();
    let subscriptions = match &request.target {
        BulkTarget::Subscription(id) => {
            let sub = get_subscription(catalog, id).await?;
            refuse_disabled(&sub)?;
            vec![sub]
        }
        BulkTarget::Source(name) => {
            if catalog.get_source(name).await?.is_none() {
                return Err(AdminError::NotFound(Missing::Source(name.clone())));
            }
            let (enabled, disabled): (Vec<Subscription>, Vec<Subscription>) = catalog
                .source_subscriptions(name)
                .await?
                .into_iter()
                .partition(|s| s.enabled);
            plan.skipped.extend(disabled.iter().map(|sub| Skipped {
                subscription_id: sub.id.clone(),
                event_id: None,
                reason: format!(
                    "disabled; enable it first with relay subscriptions enable {}",
                    sub.id
                ),
            }));
            enabled
        }
    };
    let mut examined = 0;
    for sub in &subscriptions {
        let mut query = EventQuery {
            source: Some(sub.source.clone()),
            types: request.types.clone(),
            since_millis: Some(request.since_millis),
            until_millis: request.until_millis,
            delivery: Some(DeliveryFilter {
                subscription_id: sub.id.clone(),
                patterns: sub.events.clone(),
                status: request.status,
            }),
            ..EventQuery::newest(SEARCH_PAGE, request.now_millis)
        };
        loop {
            let page = archive.list_events(&query).await?;
            examined += page.events.len();
            progress(examined);
            // Delivered with the subscription's current patterns and filter only.
            let taken = taken_events(archive, bodies, sub, &page.events).await?;
            plan.pairs.extend(taken.into_iter().map(|e| PlannedPair {
                event_id: e.id.clone(),
                subscription_id: sub.id.clone(),
                attempt: next_attempt(&e.attempts, &sub.id),
                state: e.delivery.unwrap_or(DeliveryState::Pending),
            }));
            match page.next {
                Some(cursor) => query.before = Some(cursor),
                None => break,
            }
        }
    }
    // Ids are time-ordered: oldest event first, the way they arrived.
    plan.pairs
        .sort_by(|a, b| (&a.event_id, &a.subscription_id).cmp(&(&b.event_id, &b.subscription_id)));
    Ok(plan)
}

/// The events of a search page that `sub` takes as stored now (`fanout::targets::takes`): by
/// type from the summaries, and, when it has a content filter, by reading each event it takes
/// by type (the search sees no bodies), its body read back when stored (`filterable_event`).
/// An event gone meanwhile is left out.
async fn taken_events<'e>(
    archive: &dyn EventArchive,
    bodies: Option<&dyn BodyStore>,
    sub: &Subscription,
    events: &'e [EventSummary],
) -> Result<Vec<&'e EventSummary>, AdminError> {
    let by_type = events.iter().filter(|e| takes_type(sub, &e.event_type));
    if sub.filter.is_none() {
        return Ok(by_type.collect());
    }
    let mut reads = stream::iter(by_type)
        .map(|summary| async move { (summary, archive.get_event(&summary.id).await) })
        .buffered(QUEUE_CONCURRENCY);
    let mut taken = Vec::new();
    while let Some((summary, read)) = reads.next().await {
        let Some(event) = read? else { continue };
        let filterable = filterable_event(bodies, &event).await?;
        let input = filterable.as_deref().map(|e| EventInput::new(e));
        if chosen(sub, &event.event_type, input.as_ref()) {
            taken.push(summary);
        }
    }
    Ok(taken)
}

/// Queues the plan's deliveries, each event read once. Stops at the first delivery that cannot
/// be queued (running the same replay again is safe: see the module's note). `progress` is told
/// how many pairs were handled so far.
pub async fn queue_bulk_replay(
    archive: &dyn EventArchive,
    queue: &dyn Queue,
    plan: &BulkPlan,
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<BulkOutcome, AdminError> {
    let groups = plan.pairs.chunk_by(|a, b| a.event_id == b.event_id);
    let mut sends = stream::iter(groups)
        .map(|pairs| queue_event_pairs(archive, queue, pairs))
        .buffered(QUEUE_CONCURRENCY);
    let mut outcome = BulkOutcome {
        matched: plan.pairs.len(),
        enqueued: 0,
        skipped: plan.skipped.clone(),
    };
    let mut handled = 0;
    while let Some(result) = sends.next().await {
        let (pairs, queued) = result?;
        handled += pairs.len();
        match queued {
            Some(n) => outcome.enqueued += n,
            None => outcome.skipped.extend(pairs.iter().map(|pair| Skipped {
                subscription_id: pair.subscription_id.clone(),
                event_id: Some(pair.event_id.clone()),
                reason:
                    "the event is no longer stored (events are kept for a limited time)".to_owned(),
            })),
        }
        progress(handled);
    }
    Ok(outcome)
}

/// Reads one event and queues its pairs; `None` when the event is gone.
async fn queue_event_pairs<'p>(
    archive: &dyn EventArchive,
    queue: &dyn Queue,
    pairs: &'p [PlannedPair],
) -> Result<(&'p [PlannedPair], Option<usize>), AdminError> {
    let Some(first) = pairs.first() else {
        return Ok((pairs, Some(0)));
    };
    let Some(event) = archive.get_event(&first.event_id).await? else {
        return Ok((pairs, None));
    };
    let mut task = DeliveryTask {
        event,
        subscription_id: String::new(),
        attempt: 0,
        schedule_step: 0,
        not_before: 0,
    };
    for pair in pairs {
        task.subscription_id.clone_from(&pair.subscription_id);
        task.attempt = pair.attempt;
        queue.send_delivery(&task, 0).await?;
    }
    Ok((pairs, Some(pairs.len())))
}

#[cfg(test)]
#[path = "bulk_replay_tests.rs"]
mod tests;
