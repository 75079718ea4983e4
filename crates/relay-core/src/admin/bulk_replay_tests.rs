//! The bulk replay over the memory store, the recording queue and the real fanout: which pairs
//! match, their attempt numbers, refusals, the confirmation bound, and that neither a waiting
//! retry nor a second run after a crash delivers a pair twice.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::domain::ids::event_id_at;
use crate::domain::model::{
    AttemptOutcome, AttemptRecord, Disposition, EventEnvelope, NextStep, QueueMessage,
    ReceivedMessage,
};
use crate::domain::search::StatusFilter;
use crate::fanout::{Fanout, FanoutConfig};
use crate::outbound::delivery::Outcome;
use crate::ports::Catalog;
use crate::ports::clock::FixedClock;
use crate::testkit::contract::{attempt, event, source, subscription};
use crate::testkit::{MemoryStore, RecordingQueue, ScriptedDeliverer};

const NOW: i64 = 1_700_000_000;
const NOW_MS: i64 = NOW * 1000;
const MINUTE: i64 = 60_000;

fn no_progress() -> impl FnMut(usize) + Send {
    |_| {}
}

/// The failed pairs of source gh in the last hour.
fn source_failed() -> BulkReplay {
    request(
        BulkTarget::Source("gh".into()),
        60,
        Some(StatusFilter::Failed),
    )
}

/// The plan of `request` over `store`, which must succeed.
async fn plan(store: &MemoryStore, request: &BulkReplay) -> BulkPlan {
    plan_bulk_replay(store, store, None, request, &mut no_progress())
        .await
        .unwrap_or_else(|e| panic!("planning {request:?}: {e}"))
}

/// Source gh with subscriptions s1 (push, issues.*), s2 (push only), s3 disabled, and source
/// other with s5.
async fn store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::with_sources([source("gh"), source("other")]));
    let subs = [
        subscription("s1", "gh"),
        Subscription {
            events: vec!["push".into()],
            ..subscription("s2", "gh")
        },
        Subscription {
            enabled: false,
            disabled_reason: Some("410 Gone".into()),
            ..subscription("s3", "gh")
        },
        subscription("s5", "other"),
    ];
    for sub in subs {
        store.put_subscription(&sub).await.unwrap();
    }
    store
}

/// An event of gh `minutes_ago` before NOW with a relay-minted id.
fn event_at(minutes_ago: i64, event_type: &str) -> EventEnvelope {
    let at = NOW_MS - minutes_ago * MINUTE;
    EventEnvelope {
        event_type: event_type.into(),
        ..event(&event_id_at(at), at)
    }
}

fn failed(event: &EventEnvelope, sub: &str, number: u32, next: NextStep) -> AttemptRecord {
    AttemptRecord {
        next,
        ..attempt(&event.id, sub, number, event.received_at + 5)
    }
}

fn delivered(event: &EventEnvelope, sub: &str, number: u32) -> AttemptRecord {
    AttemptRecord {
        status: Some(200),
        outcome: AttemptOutcome::Ok,
        next: NextStep::Done,
        ..attempt(&event.id, sub, number, event.received_at + 5)
    }
}

fn request(target: BulkTarget, since_minutes: i64, status: Option<StatusFilter>) -> BulkReplay {
    BulkReplay {
        target,
        since_millis: NOW_MS - since_minutes * MINUTE,
        until_millis: None,
        status,
        types: Vec::new(),
        now_millis: NOW_MS,
    }
}

fn pairs(plan: &BulkPlan) -> Vec<(String, &str, u32)> {
    plan.pairs
        .iter()
        .map(|p| (p.event_id.clone(), p.subscription_id.as_str(), p.attempt))
        .collect()
}

/// Five events: e[0] 50 min ago (push), e[1] 40 (push), e[2] 30 (issues.opened), e[3] 20
/// (push), e[4] 10 (push); s1 failed e[0] (a retry waiting), dead-lettered e[1], delivered
/// e[3]; s2 delivered e[0] and failed e[1] and e[4].
async fn store_with_history() -> (Arc<MemoryStore>, Vec<EventEnvelope>) {
    let store = store().await;
    let e: Vec<EventEnvelope> = [
        (50, "push"),
        (40, "push"),
        (30, "issues.opened"),
        (20, "push"),
        (10, "push"),
    ]
    .into_iter()
    .map(|(ago, t)| event_at(ago, t))
    .collect();
    let log = [
        failed(&e[0], "s1", 1, NextStep::RetryScheduled),
        delivered(&e[0], "s2", 1),
        failed(&e[1], "s1", 1, NextStep::RetryScheduled),
        failed(&e[1], "s1", 2, NextStep::DeadLettered),
        failed(&e[1], "s2", 1, NextStep::RetryScheduled),
        delivered(&e[3], "s1", 1),
        failed(&e[4], "s2", 1, NextStep::RetryScheduled),
    ];
    for event in &e {
        store.put_event(event, NOW + 86_400).await.unwrap();
    }
    store.put_attempts(&log, NOW + 86_400).await.unwrap();
    (store, e)
}

#[tokio::test]
async fn a_subscriptions_pairs_by_state_numbered_on_from_its_log() {
    let (store, e) = store_with_history().await;
    let s1 = BulkTarget::Subscription("s1".into());
    let by_status = |status| {
        let store = store.clone();
        let s1 = s1.clone();
        async move { plan(store.as_ref(), &request(s1, 60, status)).await }
    };
    // Failed takes dead too; oldest first; the next attempt numbers.
    let failed_plan = by_status(Some(StatusFilter::Failed)).await;
    assert_eq!(
        pairs(&failed_plan),
        [(e[0].id.clone(), "s1", 2), (e[1].id.clone(), "s1", 3)]
    );
    assert_eq!(failed_plan.pairs[1].state, DeliveryState::Dead);
    assert_eq!(
        pairs(&by_status(Some(StatusFilter::Dead)).await),
        [(e[1].id.clone(), "s1", 3)]
    );
    // Any: every event s1 takes (e[2] is issues.opened, which s1 takes; pending).
    let any = by_status(None).await;
    assert_eq!(any.pairs.len(), 5);
    assert_eq!(any.first_event_ids(2), [e[0].id.as_str(), e[1].id.as_str()]);
    // The time range: since 45 minutes, until 15 minutes ago.
    let ranged = plan(
        store.as_ref(),
        &BulkReplay {
            until_millis: Some(NOW_MS - 15 * MINUTE),
            ..request(s1.clone(), 45, None)
        },
    )
    .await;
    let ids: Vec<String> = ranged.pairs.iter().map(|p| p.event_id.clone()).collect();
    assert_eq!(ids, [e[1].id.clone(), e[2].id.clone(), e[3].id.clone()]);
    // A type pattern.
    let typed = plan(
        store.as_ref(),
        &BulkReplay {
            types: vec!["issues.*".into()],
            ..request(s1.clone(), 60, None)
        },
    )
    .await;
    assert_eq!(pairs(&typed), [(e[2].id.clone(), "s1", 1)]);
}

#[tokio::test]
async fn a_source_replays_each_enabled_subscription_and_names_the_disabled() {
    let (store, e) = store_with_history().await;
    let mut examined = Vec::new();
    let plan = plan_bulk_replay(
        store.as_ref(),
        store.as_ref(),
        None,
        &request(
            BulkTarget::Source("gh".into()),
            60,
            Some(StatusFilter::Failed),
        ),
        &mut |n| examined.push(n),
    )
    .await
    .unwrap();
    assert_eq!(
        pairs(&plan),
        [
            (e[0].id.clone(), "s1", 2),
            (e[1].id.clone(), "s1", 3),
            (e[1].id.clone(), "s2", 2),
            (e[4].id.clone(), "s2", 2),
        ]
    );
    assert_eq!(plan.skipped.len(), 1);
    assert_eq!(plan.skipped[0].subscription_id, "s3");
    assert!(
        plan.skipped[0]
            .reason
            .contains("relay subscriptions enable s3")
    );
    assert!(!examined.is_empty());
    // Queued: one delivery per pair, due at once, each event read once and sent whole.
    let queue = RecordingQueue::default();
    let outcome = queue_bulk_replay(store.as_ref(), &queue, &plan, &mut no_progress())
        .await
        .unwrap();
    assert_eq!((outcome.matched, outcome.enqueued), (4, 4));
    let sent: Vec<(String, String, u32, u32)> = queue
        .scheduled()
        .into_iter()
        .map(|(t, delay)| (t.event.id.clone(), t.subscription_id, t.attempt, delay))
        .collect();
    assert_eq!(
        sent,
        [
            (e[0].id.clone(), "s1".into(), 2, 0),
            (e[1].id.clone(), "s1".into(), 3, 0),
            (e[1].id.clone(), "s2".into(), 2, 0),
            (e[4].id.clone(), "s2".into(), 2, 0),
        ]
    );
    for (task, _) in queue.scheduled() {
        let stored = store.get_event(&task.event.id).await.unwrap();
        assert_eq!(Some(task.event), stored);
    }
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let (store, _) = store_with_history().await;
    let refused = |target, until: Option<i64>| {
        let store = store.clone();
        async move {
            plan_bulk_replay(
                store.as_ref(),
                store.as_ref(),
                None,
                &BulkReplay {
                    until_millis: until,
                    ..request(target, 60, None)
                },
                &mut no_progress(),
            )
            .await
            .unwrap_err()
        }
    };
    match refused(BulkTarget::Subscription("s3".into()), None).await {
        AdminError::Conflict(message) => {
            assert!(message.contains("s3 is disabled (410 Gone)"), "{message}");
            assert!(
                message.contains("relay subscriptions enable s3"),
                "{message}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        refused(BulkTarget::Subscription("nope".into()), None).await,
        AdminError::NotFound(Missing::Subscription(_))
    ));
    assert!(matches!(
        refused(BulkTarget::Source("nobody".into()), None).await,
        AdminError::NotFound(Missing::Source(_))
    ));
    match refused(BulkTarget::Source("gh".into()), Some(NOW_MS - 90 * MINUTE)).await {
        AdminError::Invalid { field, reason } => {
            assert_eq!(field, "until");
            assert!(reason.contains("--until is not after --since"), "{reason}");
        }
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn more_than_ten_thousand_pairs_need_confirmation() {
    let store = store().await;
    let first = NOW_MS - 20 * MINUTE;
    for n in 0..=CONFIRM_ABOVE as i64 {
        let at = first + n;
        store
            .put_event(&event(&event_id_at(at), at), NOW + 86_400)
            .await
            .unwrap();
    }
    let plan = plan(
        store.as_ref(),
        &request(BulkTarget::Subscription("s2".into()), 30, None),
    )
    .await;
    assert_eq!(plan.pairs.len(), CONFIRM_ABOVE + 1);
    assert!(plan.needs_confirmation());
    assert_eq!(plan.first_event_ids(20).len(), 20);
    let exactly = BulkPlan {
        pairs: plan.pairs[..CONFIRM_ABOVE].to_vec(),
        skipped: Vec::new(),
    };
    assert!(!exactly.needs_confirmation());
}

/// A fanout over `store` and `queue` at `now` (seconds) with the given answers (2xx once spent).
fn fanout(
    store: &Arc<MemoryStore>,
    queue: &Arc<RecordingQueue>,
    now: i64,
    answers: Vec<Outcome>,
) -> (Fanout, Arc<ScriptedDeliverer>) {
    let deliverer = Arc::new(ScriptedDeliverer::new(
        Duration::from_secs(5),
        answers.into_iter().map(ScriptedDeliverer::answer),
    ));
    let fanout = Fanout::with_deliverer(
        store.clone(),
        queue.clone(),
        deliverer.clone(),
        FixedClock::at_secs(now),
        FanoutConfig {
            cache_ttl: Duration::ZERO,
            ..FanoutConfig::default()
        },
    );
    (fanout, deliverer)
}

fn message_of(body: &QueueMessage, receipt: &str) -> ReceivedMessage {
    ReceivedMessage {
        receipt: receipt.into(),
        message_id: None,
        body: serde_json::to_string(body).unwrap(),
        receive_count: 1,
    }
}

#[tokio::test]
async fn a_waiting_retry_and_a_second_run_do_not_deliver_a_pair_twice() {
    let store = store().await;
    let queue = Arc::new(RecordingQueue::default());
    let evt = event_at(30, "push");
    // The fanout's first round: s1 and s2 both answer 503, so each gets a retry waiting.
    let (first, _) = fanout(
        &store,
        &queue,
        NOW,
        vec![
            Outcome::Status { status: 503 },
            Outcome::Status { status: 503 },
        ],
    );
    let round = first
        .handle_message(&message_of(&QueueMessage::Event(evt.clone()), "m-0"), None)
        .await;
    assert_eq!(round, Disposition::Delete);
    let waiting: Vec<DeliveryTask> = queue.scheduled().into_iter().map(|(t, _)| t).collect();
    assert_eq!(waiting.len(), 2);
    assert!(waiting.iter().all(|t| t.attempt == 2));

    // The bulk replay of the source's failed pairs; the run stops after queuing s1's.
    let planned = plan(store.as_ref(), &source_failed()).await;
    assert_eq!(planned.pairs.len(), 2);
    let replays = Arc::new(RecordingQueue::default());
    let crashed = BulkPlan {
        pairs: planned.pairs[..1].to_vec(),
        skipped: Vec::new(),
    };
    queue_bulk_replay(
        store.as_ref(),
        replays.as_ref(),
        &crashed,
        &mut no_progress(),
    )
    .await
    .unwrap();
    // An hour on, every retry is due; s1's replayed delivery succeeds.
    let (later, deliverer) = fanout(&store, &queue, NOW + 3600, vec![]);
    let deliver = |task: &DeliveryTask, receipt: &str| {
        let message = message_of(&QueueMessage::Delivery(task.clone()), receipt);
        let later = &later;
        async move { later.handle_message(&message, None).await }
    };
    let replayed = replays.scheduled()[0].0.clone();
    assert_eq!(
        (replayed.subscription_id.as_str(), replayed.attempt),
        ("s1", 2)
    );
    assert_eq!(deliver(&replayed, "m-1").await, Disposition::Delete);
    // Run again: s1's pair is delivered now, so only s2's remains.
    let again = plan(store.as_ref(), &source_failed()).await;
    let left: Vec<&str> = again
        .pairs
        .iter()
        .map(|p| p.subscription_id.as_str())
        .collect();
    assert_eq!(left, ["s2"]);
    // The retries that were waiting come due: s1's finds its pair delivered and is dropped;
    // s2's is attempted (the replay's copy of it is then the duplicate).
    for (n, task) in waiting.iter().enumerate() {
        assert_eq!(deliver(task, &format!("w-{n}")).await, Disposition::Delete);
    }
    let seen: Vec<(String, u32)> = deliverer
        .seen()
        .into_iter()
        .map(|a| (a.subscription_id, a.attempt))
        .collect();
    assert_eq!(seen, [("s1".to_owned(), 2), ("s2".to_owned(), 2)]);
    queue_bulk_replay(store.as_ref(), replays.as_ref(), &again, &mut no_progress())
        .await
        .unwrap();
    let s2_copy = replays.scheduled()[1].0.clone();
    assert_eq!(
        (s2_copy.subscription_id.as_str(), s2_copy.attempt),
        ("s2", 2)
    );
    assert_eq!(deliver(&s2_copy, "m-2").await, Disposition::Delete);
    assert_eq!(deliverer.seen().len(), 2, "no pair delivered twice");
    let log = store.event_attempts(&evt.id).await.unwrap();
    let delivered_pairs = log
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Ok)
        .count();
    assert_eq!(delivered_pairs, 2);
}

#[tokio::test]
async fn an_event_gone_before_queuing_is_skipped_and_a_down_queue_fails() {
    let (store, e) = store_with_history().await;
    let plan = BulkPlan {
        pairs: vec![PlannedPair {
            event_id: "evt_gone".into(),
            subscription_id: "s1".into(),
            attempt: 1,
            state: DeliveryState::Failed,
        }],
        skipped: Vec::new(),
    };
    let queue = RecordingQueue::default();
    let outcome = queue_bulk_replay(store.as_ref(), &queue, &plan, &mut no_progress())
        .await
        .unwrap();
    assert_eq!((outcome.matched, outcome.enqueued), (1, 0));
    assert_eq!(outcome.skipped[0].event_id.as_deref(), Some("evt_gone"));
    assert!(outcome.skipped[0].reason.contains("no longer stored"));
    queue.fail_sends(true);
    let real = BulkPlan {
        pairs: vec![PlannedPair {
            event_id: e[0].id.clone(),
            ..plan.pairs[0].clone()
        }],
        skipped: Vec::new(),
    };
    let error = queue_bulk_replay(store.as_ref(), &queue, &real, &mut no_progress())
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::Queue(_)), "{error:?}");
}

#[tokio::test]
async fn a_filtered_subscription_replays_only_the_events_its_filter_matches() {
    let store = store().await;
    let filter = crate::domain::filter::Filter::parse(r#"{"body":{"action":"opened"}}"#).unwrap();
    let s2 = store.get_subscription("s2").await.unwrap().unwrap();
    store
        .put_subscription(&Subscription {
            filter: Some(filter),
            ..s2
        })
        .await
        .unwrap();
    let with_body = |ago: i64, body: &str| EventEnvelope {
        body: body.into(),
        ..event_at(ago, "push")
    };
    let e = [
        with_body(30, r#"{"action":"opened"}"#),
        with_body(20, r#"{"action":"closed"}"#),
        with_body(10, "action=opened"),
    ];
    for event in &e {
        store.put_event(event, NOW + 86_400).await.unwrap();
    }
    let s2_plan = plan(
        &store,
        &request(BulkTarget::Subscription("s2".into()), 60, None),
    )
    .await;
    assert_eq!(pairs(&s2_plan), [(e[0].id.clone(), "s2", 1)]);
    // s1 has no filter: every event it takes by type.
    let s1_plan = plan(
        &store,
        &request(BulkTarget::Subscription("s1".into()), 60, None),
    )
    .await;
    assert_eq!(pairs(&s1_plan).len(), 3);
}
