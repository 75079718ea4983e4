//! Store contract checks of the event search: time ranges and one subscription's events by
//! delivery state (`EventQuery::since_millis`, `until_millis`, `delivery`). Events here carry
//! ids minted as the receiver mints them (`ids::event_id_at`), which a store may read by.

use crate::domain::ids::event_id_at;
use crate::domain::model::{AttemptOutcome, AttemptRecord, EventEnvelope, NextStep};
use crate::domain::search::{DeliveryFilter, DeliveryState, StatusFilter};
use crate::ports::{EventQuery, Store};

use super::contract::{
    LIST_NOW_MILLIS, all_pages, attempt, event_of, far_expiry, newest_first, page, put_events,
};

const MINUTE: i64 = 60_000;

/// Ten events a minute apart over two sources, ending a minute before "now".
fn timed_events() -> Vec<EventEnvelope> {
    (0..10)
        .map(|i| {
            let at = LIST_NOW_MILLIS - (10 - i) * MINUTE;
            let source = if i % 3 == 0 { "stripe" } else { "gh" };
            event_of(&event_id_at(at), source, "push", at)
        })
        .collect()
}

pub async fn events_filtered_by_time_range(store: &dyn Store) {
    let events = timed_events();
    put_events(store, &events).await;
    let at = |i: usize| events[i].received_at;
    let ranges: [(Option<i64>, Option<i64>, Option<&str>); 7] = [
        (Some(at(4)), None, None),
        (None, Some(at(4)), None),
        (Some(at(2)), Some(at(7)), None),
        (Some(at(2)), Some(at(7)), Some("gh")),
        // A bound between two events, and one a millisecond after an event.
        (Some(at(2) + 1), Some(at(7) - MINUTE / 2), None),
        (Some(at(9) + 1), None, None),
        (Some(at(5)), Some(at(5)), None),
    ];
    for (since, until, source) in ranges {
        let expected = newest_first(&events, |e| {
            since.is_none_or(|t| e.received_at >= t)
                && until.is_none_or(|t| e.received_at < t)
                && source.is_none_or(|s| e.source == s)
        });
        for size in [1, 3, 50] {
            let query = EventQuery {
                since_millis: since,
                until_millis: until,
                source: source.map(str::to_owned),
                ..EventQuery::newest(size, LIST_NOW_MILLIS)
            };
            let pages = all_pages(store, &query).await;
            assert_eq!(
                pages.concat(),
                expected,
                "since {since:?} until {until:?} {source:?} by {size}"
            );
        }
    }
    // `since` is inclusive and `until` exclusive, to the millisecond.
    let exact = EventQuery {
        since_millis: Some(at(3)),
        until_millis: Some(at(3) + 1),
        ..EventQuery::newest(50, LIST_NOW_MILLIS)
    };
    let found = page(store, &exact).await;
    assert_eq!(found.events.len(), 1);
    assert_eq!(found.events[0].id, events[3].id);
}

fn record(
    event: &EventEnvelope,
    sub: &str,
    number: u32,
    outcome: AttemptOutcome,
    next: NextStep,
) -> AttemptRecord {
    AttemptRecord {
        status: (outcome == AttemptOutcome::Ok).then_some(200),
        outcome,
        next,
        ..attempt(&event.id, sub, number, event.received_at + 10)
    }
}

/// Events of source gh with sub_a's (patterns `push`, `issues.*`) states known, stored as the
/// fanout stores them: first records with the event (`record_event`), later ones apart
/// (`put_attempts`). Returns the events and the state sub_a should have in each, `None` for
/// events that are not sub_a's.
async fn events_with_logs(store: &dyn Store) -> (Vec<EventEnvelope>, Vec<Option<DeliveryState>>) {
    use AttemptOutcome as O;
    use DeliveryState as S;
    use NextStep as N;
    let base = LIST_NOW_MILLIS - 30 * MINUTE;
    let types = [
        "push",
        "push",
        "issues.opened",
        "push",
        "push",
        "ping",
        "ping",
        "push",
        "push",
    ];
    let events: Vec<EventEnvelope> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = base + i as i64 * MINUTE;
            let source = if i == 8 { "stripe" } else { "gh" };
            event_of(&event_id_at(at), source, t, at)
        })
        .collect();
    let e = &events;
    // (event, records stored with it, later records, sub_a's state)
    let plan: Vec<(Vec<AttemptRecord>, Vec<AttemptRecord>, Option<S>)> = vec![
        (
            vec![record(&e[0], "sub_a", 1, O::Ok, N::Done)],
            vec![],
            Some(S::Delivered),
        ),
        (
            vec![record(&e[1], "sub_a", 1, O::HttpStatus, N::RetryScheduled)],
            vec![record(&e[1], "sub_a", 2, O::HttpStatus, N::DeadLettered)],
            Some(S::Dead),
        ),
        (
            vec![],
            vec![record(&e[2], "sub_a", 1, O::Timeout, N::RetryScheduled)],
            Some(S::Failed),
        ),
        (vec![], vec![], Some(S::Pending)),
        (
            vec![
                record(&e[4], "sub_a", 1, O::Connect, N::RetryScheduled),
                record(&e[4], "sub_b", 1, O::Ok, N::Done),
            ],
            vec![record(&e[4], "sub_a", 2, O::Ok, N::Done)],
            Some(S::Delivered),
        ),
        // A type sub_a does not take, never sent to it: not its event.
        (
            vec![record(&e[5], "sub_b", 1, O::Ok, N::Done)],
            vec![],
            None,
        ),
        // Sent to sub_a before its patterns changed: still its event.
        (
            vec![record(&e[6], "sub_a", 1, O::Ok, N::Done)],
            vec![],
            Some(S::Delivered),
        ),
        // Only another subscription's records: sub_a has not been tried.
        (
            vec![record(&e[7], "sub_b", 1, O::Ok, N::Done)],
            vec![],
            Some(S::Pending),
        ),
        // Another source.
        (vec![], vec![], None),
    ];
    let mut states = Vec::new();
    for (event, (first, later, state)) in events.iter().zip(plan) {
        store
            .record_event(event, &first, far_expiry())
            .await
            .unwrap_or_else(|err| panic!("recording {}: {err}", event.id));
        store
            .put_attempts(&later, far_expiry())
            .await
            .unwrap_or_else(|err| panic!("attempts of {}: {err}", event.id));
        states.push(state);
    }
    (events, states)
}

fn sub_a_query(status: Option<StatusFilter>, limit: usize) -> EventQuery {
    EventQuery {
        source: Some("gh".into()),
        delivery: Some(DeliveryFilter {
            subscription_id: "sub_a".into(),
            patterns: vec!["push".into(), "issues.*".into()],
            status,
        }),
        ..EventQuery::newest(limit, LIST_NOW_MILLIS)
    }
}

pub async fn events_filtered_by_delivery_state(store: &dyn Store) {
    let (events, states) = events_with_logs(store).await;
    // Every state: sub_a's events, each with its state and the whole attempt log.
    let listed = page(store, &sub_a_query(None, 50)).await;
    let expected: Vec<(String, Option<DeliveryState>)> = events
        .iter()
        .zip(&states)
        .rev()
        .filter(|(_, state)| state.is_some())
        .map(|(e, state)| (e.id.clone(), *state))
        .collect();
    let got: Vec<(String, Option<DeliveryState>)> = listed
        .events
        .iter()
        .map(|e| (e.id.clone(), e.delivery))
        .collect();
    assert_eq!(got, expected);
    for summary in &listed.events {
        let log = store.event_attempts(&summary.id).await.unwrap();
        assert_eq!(summary.attempts, log, "log of {}", summary.id);
    }
    // Each status, whole and a page of one at a time.
    for status in StatusFilter::ALL {
        let expected = newest_first(&events, |e| {
            let i = events.iter().position(|x| x.id == e.id).unwrap_or(0);
            states[i].is_some_and(|state| status.admits(state))
        });
        assert!(!expected.is_empty(), "{status:?} has events to find");
        for size in [1, 50] {
            let pages = all_pages(store, &sub_a_query(Some(status), size)).await;
            assert_eq!(pages.concat(), expected, "{status:?} by {size}");
        }
    }
}

pub async fn events_delivery_filter_pages_and_combines(store: &dyn Store) {
    let (events, _) = events_with_logs(store).await;
    // Failed (dead too) within a time range and a type pattern.
    let query = EventQuery {
        since_millis: Some(events[1].received_at),
        until_millis: Some(events[3].received_at),
        types: vec!["issues.*".into()],
        ..sub_a_query(Some(StatusFilter::Failed), 50)
    };
    let found = page(store, &query).await;
    let ids: Vec<&str> = found.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [events[2].id.as_str()]);
    assert_eq!(found.events[0].delivery, Some(DeliveryState::Failed));
    // Without a delivery filter a listing carries no state and no log.
    let plain = page(store, &EventQuery::newest(50, LIST_NOW_MILLIS)).await;
    assert_eq!(plain.events.len(), events.len());
    assert!(
        plain
            .events
            .iter()
            .all(|e| e.delivery.is_none() && e.attempts.is_empty())
    );
    // Another subscription sees its own states in the same events.
    let sub_b = EventQuery {
        delivery: Some(DeliveryFilter {
            subscription_id: "sub_b".into(),
            patterns: vec!["ping".into()],
            status: Some(StatusFilter::Delivered),
        }),
        ..EventQuery::newest(50, LIST_NOW_MILLIS)
    };
    let delivered: Vec<String> = page(store, &sub_b)
        .await
        .events
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        delivered,
        [&events[7].id, &events[5].id, &events[4].id].map(|id| id.clone())
    );
}
