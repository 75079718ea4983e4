//! The fanout's decisions (`decide`, pure) and their application through the memory ports with a
//! scripted deliverer: every outcome class, Retry-After, a spent schedule, the health window,
//! attempt numbering across retries and redrives, a follow-up that cannot be queued, and long
//! waits crossed by hops (early wake-ups sent on as new delayed messages), and the round's plan
//! (`plan`, pure): whom a round attempts, whether a task runs, and the round's log writes.

use std::sync::Arc;
use std::time::Duration;

use super::decide::{
    AttemptFacts, Decision, FollowUp, HealthChange, decide, hop_delay, respaced_hop,
    superseding_record,
};
use super::plan::{
    LogWrite, RoundLog, RoundStep, Step, TaskPlan, attempt_record, plan_round, plan_task,
};
use super::{ArchiveMode, Fanout, FanoutConfig};
use crate::domain::metrics::{Metric, Tally};
use crate::domain::model::{
    AttemptOutcome, AttemptRecord, BodyEncoding, DeliveryTask, Disposition, EventEnvelope,
    NextStep, ProviderConfig, QueueMessage, ReceivedMessage, RefusedDeliveries, Source,
    Subscription,
};
use crate::domain::retry::RetrySchedule;
use crate::outbound::delivery::{AttemptResult, Outcome};
use crate::ports::clock::{Clock, FixedClock};
use crate::ports::{Catalog, DeliveryLane, EventArchive};
use crate::testkit::{MemoryStore, RecordingQueue, ScriptedDeliverer};

const NOW: i64 = 1_700_000_000;
const NOW_MS: i64 = NOW * 1000;
const DAY: i64 = 86_400;
const WINDOW: i64 = 5 * DAY;

fn event() -> EventEnvelope {
    EventEnvelope {
        id: "evt_1".into(),
        source: "gh".into(),
        event_type: "push".into(),
        content_type: Some("application/json".into()),
        received_at: NOW_MS,
        body: "{}".into(),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    }
}

fn subscription(id: &str) -> Subscription {
    crate::testkit::contract::subscription(id, "gh")
}

fn decided(sub: &Subscription, outcome: Outcome, retry_delay: Option<Duration>) -> Decision {
    decide(&AttemptFacts {
        event: &event(),
        subscription: sub,
        attempt: 3,
        schedule_step: 2,
        outcome: &outcome,
        retry_delay,
        now_millis: NOW_MS,
        health_window_secs: WINDOW,
    })
}

/// A delivery of `evt_1` to `subscription_id` as the deliveries queue carries it.
fn task(subscription_id: &str, attempt: u32, schedule_step: u32, not_before: i64) -> DeliveryTask {
    DeliveryTask {
        event: event(),
        subscription_id: subscription_id.into(),
        attempt,
        schedule_step,
        not_before,
    }
}

fn retried_in(decision: &Decision) -> (DeliveryTask, u32) {
    match &decision.follow_up {
        Some(FollowUp::Retry {
            task,
            send_delay_secs,
        }) => (task.clone(), *send_delay_secs),
        other => panic!("expected a retry, got {other:?}"),
    }
}

// ------------------------------------------------------------------ decide: outcome classes

#[test]
fn delivered_is_done_and_ends_a_run_of_failures() {
    let healthy = decided(&subscription("s"), Outcome::Delivered { status: 204 }, None);
    assert_eq!(
        (healthy.next, healthy.health, healthy.follow_up),
        (NextStep::Done, None, None)
    );
    let recovering = Subscription {
        failing_since: Some(NOW - 60),
        ..subscription("s")
    };
    let decision = decided(&recovering, Outcome::Delivered { status: 200 }, None);
    assert_eq!(decision.health, Some(HealthChange::Recovered));
}

#[test]
fn server_errors_schedule_the_next_attempt() {
    let decision = decided(
        &subscription("s"),
        Outcome::Status { status: 503 },
        Some(Duration::from_secs(300)),
    );
    assert_eq!(decision.next, NextStep::RetryScheduled);
    assert_eq!(decision.health, Some(HealthChange::StartFailing(NOW)));
    let (task, send_delay) = retried_in(&decision);
    assert_eq!((task.attempt, task.schedule_step), (4, 3));
    assert_eq!(task.not_before, NOW_MS + 300_000);
    assert_eq!(task.subscription_id, "s");
    assert_eq!(send_delay, 300);
}

#[test]
fn redirects_and_other_client_errors_are_retried() {
    for status in [301, 302, 400, 404, 429] {
        let decision = decided(
            &subscription("s"),
            Outcome::Status { status },
            Some(Duration::from_secs(5)),
        );
        assert_eq!(decision.next, NextStep::RetryScheduled, "{status}");
    }
}

#[test]
fn timeouts_and_connection_errors_are_retried() {
    for outcome in [Outcome::Timeout, Outcome::Connect("refused".into())] {
        let decision = decided(&subscription("s"), outcome, Some(Duration::from_secs(5)));
        assert_eq!(decision.next, NextStep::RetryScheduled);
        assert!(matches!(decision.follow_up, Some(FollowUp::Retry { .. })));
    }
}

#[test]
fn gone_disables_without_retrying() {
    let decision = decided(
        &subscription("s"),
        Outcome::Gone,
        Some(Duration::from_secs(5)),
    );
    assert_eq!(decision.next, NextStep::Disabled);
    assert_eq!(
        decision.health,
        Some(HealthChange::Disable(
            "the endpoint answered 410 Gone".into()
        ))
    );
    assert_eq!(decision.follow_up, None);
}

#[test]
fn refused_destinations_and_invalid_requests_are_dropped() {
    let reason = "10.0.0.1 is a private address";
    let first_refusal = decided(
        &subscription("s"),
        Outcome::Refused(reason.into()),
        Some(Duration::from_secs(5)),
    );
    assert_eq!(
        (
            first_refusal.next,
            first_refusal.health,
            first_refusal.follow_up
        ),
        (
            NextStep::Dropped,
            Some(HealthChange::Refused(NOW, reason.into())),
            None
        )
    );
    let already_refused = Subscription {
        refused: Some(RefusedDeliveries {
            since: NOW - 60,
            reason: reason.into(),
        }),
        ..subscription("s")
    };
    for (sub, outcome) in [
        (&already_refused, Outcome::Refused(reason.into())),
        (&subscription("s"), Outcome::Invalid("invalid URL".into())),
    ] {
        let decision = decided(sub, outcome, Some(Duration::from_secs(5)));
        assert_eq!(
            (decision.next, decision.health, decision.follow_up),
            (NextStep::Dropped, None, None),
            "one write per run of refusals; an invalid request changes no health"
        );
    }
    let delivered = decided(&already_refused, Outcome::Delivered { status: 200 }, None);
    assert_eq!(delivered.health, Some(HealthChange::Recovered));
}

#[test]
fn a_spent_schedule_dead_letters_with_the_schedule_reset() {
    let decision = decided(&subscription("s"), Outcome::Status { status: 500 }, None);
    assert_eq!(decision.next, NextStep::DeadLettered);
    match decision.follow_up {
        // A redrive gives one immediate attempt (step 0), numbered after this one.
        Some(FollowUp::DeadLetter(task)) => {
            assert_eq!((task.attempt, task.schedule_step), (4, 0));
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
}

#[test]
fn long_delays_are_sent_at_the_queue_maximum_and_held_by_not_before() {
    let decision = decided(
        &subscription("s"),
        Outcome::Timeout,
        Some(Duration::from_secs(2 * 3600)),
    );
    let (task, send_delay) = retried_in(&decision);
    assert_eq!(send_delay, 900);
    assert_eq!(task.not_before, NOW_MS + 2 * 3600 * 1000);
}

#[test]
fn a_jittered_delay_is_sent_rounded_up_so_the_message_never_wakes_early() {
    let decision = decided(
        &subscription("s"),
        Outcome::Timeout,
        Some(Duration::from_millis(4_370)),
    );
    let (task, send_delay) = retried_in(&decision);
    assert_eq!(task.not_before, NOW_MS + 4_370);
    assert_eq!(send_delay, 5);
    assert_eq!(hop_delay(&task, NOW_MS + 5_000), None);
}

#[test]
fn a_task_hops_only_before_it_is_due_and_for_at_most_the_queue_maximum() {
    let due_at = |not_before| task("s", 2, 1, not_before);
    assert_eq!(hop_delay(&due_at(0), NOW_MS), None);
    assert_eq!(hop_delay(&due_at(NOW_MS), NOW_MS), None);
    assert_eq!(hop_delay(&due_at(NOW_MS - 1), NOW_MS), None);
    assert_eq!(hop_delay(&due_at(NOW_MS + 1), NOW_MS), Some(1));
    assert_eq!(hop_delay(&due_at(NOW_MS + 299_001), NOW_MS), Some(300));
    assert_eq!(hop_delay(&due_at(NOW_MS + 900_000), NOW_MS), Some(900));
    assert_eq!(hop_delay(&due_at(NOW_MS + 7_200_000), NOW_MS), Some(900));
}

#[test]
fn the_health_window_disables_instead_of_retrying() {
    let within = Subscription {
        failing_since: Some(NOW - WINDOW + 1),
        ..subscription("s")
    };
    let decision = decided(&within, Outcome::Timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        (decision.next, decision.health.clone()),
        (NextStep::RetryScheduled, None)
    );

    let spent = Subscription {
        failing_since: Some(NOW - WINDOW),
        ..subscription("s")
    };
    let decision = decided(&spent, Outcome::Timeout, Some(Duration::from_secs(5)));
    assert_eq!(decision.next, NextStep::Disabled);
    assert_eq!(
        decision.health,
        Some(HealthChange::Disable(
            "failing continuously for 5.0 days".into()
        ))
    );
    assert_eq!(decision.follow_up, None);
    // A 410 or a success inside a long run is not a failure of the window.
    let decision = decided(&spent, Outcome::Delivered { status: 200 }, None);
    assert_eq!(decision.next, NextStep::Done);
}

// ------------------------------------------------------------------ applied through the ports

struct Rig {
    clock: Arc<FixedClock>,
    store: Arc<MemoryStore>,
    queue: Arc<RecordingQueue>,
    deliverer: Arc<ScriptedDeliverer>,
    fanout: Fanout,
}

/// The fanout over subscriptions `subscriptions` of source `gh`, its deliverer answering
/// `outcomes` in turn.
async fn rig(subscriptions: &[&str], outcomes: impl IntoIterator<Item = Outcome>) -> Rig {
    rig_scripted(subscriptions, outcomes.into_iter().map(answer).collect()).await
}

async fn rig_scripted(subscriptions: &[&str], script: Vec<AttemptResult>) -> Rig {
    let store = Arc::new(MemoryStore::with_sources([Source {
        name: "gh".into(),
        provider: ProviderConfig::named("github").unwrap(),
        secrets: vec!["github-webhook-secret".into()],
        tolerance_secs: 300,
        created_at: 0,
        reconcile: None,
    }]));
    for id in subscriptions {
        store.put_subscription(&subscription(id)).await.unwrap();
    }
    let queue = Arc::new(RecordingQueue::default());
    let deliverer = Arc::new(ScriptedDeliverer::new(Duration::from_secs(15), script));
    let clock = FixedClock::at_secs(NOW);
    let fanout = Fanout::with_deliverer(
        store.clone(),
        queue.clone(),
        deliverer.clone(),
        clock.clone(),
        FanoutConfig {
            retry: RetrySchedule::parse("5s,5m").unwrap().with_jitter(0.0),
            cache_ttl: Duration::ZERO,
            first_attempt_timeout: Some(Duration::from_secs(2)),
            ..FanoutConfig::default()
        },
    );
    Rig {
        clock,
        store,
        queue,
        deliverer,
        fanout,
    }
}

fn message(body: &QueueMessage) -> ReceivedMessage {
    received(body, 1)
}

/// `body` as handed out for the `receive_count`th time.
fn received(body: &QueueMessage, receive_count: u32) -> ReceivedMessage {
    ReceivedMessage {
        receipt: format!("r-{receive_count}"),
        message_id: Some("m-1".into()),
        body: serde_json::to_string(body).unwrap(),
        receive_count,
    }
}

async fn handle_event_with(fanout: &Fanout) -> Disposition {
    fanout
        .handle_message(&message(&QueueMessage::Event(event())), None)
        .await
}

impl Rig {
    /// `evt_1` as it arrives from the events queue.
    async fn handle_event(&self) -> Disposition {
        handle_event_with(&self.fanout).await
    }

    async fn handle_delivery(&self, task: DeliveryTask) -> Disposition {
        self.handle_delivery_received(task, 1).await
    }

    /// A delivery message handed out for the `receive_count`th time (an earlier handling's
    /// delete was lost, or it failed).
    async fn handle_delivery_received(
        &self,
        task: DeliveryTask,
        receive_count: u32,
    ) -> Disposition {
        self.fanout
            .handle_message(
                &received(&QueueMessage::Delivery(task), receive_count),
                None,
            )
            .await
    }

    /// The subscription and attempt of each delivery scheduled so far.
    fn scheduled_attempts(&self) -> Vec<(String, u32)> {
        self.queue
            .scheduled()
            .into_iter()
            .map(|(task, _)| (task.subscription_id, task.attempt))
            .collect()
    }
}

fn answer(outcome: Outcome) -> AttemptResult {
    ScriptedDeliverer::answer(outcome)
}

async fn log(rig: &Rig) -> Vec<(String, u32, AttemptOutcome, NextStep)> {
    rig.store
        .event_attempts("evt_1")
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.subscription_id, a.attempt, a.outcome, a.next))
        .collect()
}

/// The attempt log ordered by subscription, for fanouts whose subscriptions run concurrently.
async fn log_by_subscription(rig: &Rig) -> Vec<(String, u32, AttemptOutcome, NextStep)> {
    let mut logged = log(rig).await;
    logged.sort_by(|a, b| a.0.cmp(&b.0));
    logged
}

#[tokio::test]
async fn an_event_delivers_to_each_subscription_and_retries_only_the_failing_one() {
    let rig = rig(
        &["a", "b"],
        [
            Outcome::Delivered { status: 200 },
            Outcome::Status { status: 500 },
        ],
    )
    .await;
    let disposition = rig.handle_event().await;
    assert_eq!(disposition, Disposition::Delete);
    let mut outcomes: Vec<_> = log(&rig).await.into_iter().map(|l| (l.2, l.3)).collect();
    outcomes.sort_by_key(|o| o.1.as_str());
    assert_eq!(
        outcomes,
        [
            (AttemptOutcome::Ok, NextStep::Done),
            (AttemptOutcome::HttpStatus, NextStep::RetryScheduled)
        ]
    );
    let scheduled = rig.queue.scheduled();
    assert_eq!(scheduled.len(), 1);
    assert_eq!((scheduled[0].0.attempt, scheduled[0].1), (2, 5));
    // The first attempt ran with the first-attempt timeout.
    assert!(
        rig.deliverer
            .seen()
            .iter()
            .all(|s| s.timeout == Duration::from_secs(2))
    );
    // The failure started the subscription's run of failures in the store.
    let failing: Vec<_> = rig
        .store
        .list_subscriptions()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.failing_since == Some(NOW))
        .collect();
    assert_eq!(failing.len(), 1);
}

#[tokio::test]
async fn retry_after_sets_the_next_attempt_time() {
    let mut busy = answer(Outcome::Status { status: 503 });
    busy.retry_after = Some(Duration::from_secs(3600));
    let rig = rig_scripted(&["a"], vec![busy]).await;
    rig.handle_event().await;
    let (task, send_delay) = rig.queue.scheduled()[0].clone();
    assert_eq!(task.not_before, NOW_MS + 3_600_000);
    assert_eq!(send_delay, 900);
}

#[tokio::test]
async fn a_follow_up_that_cannot_be_queued_retries_the_event_with_the_attempt_number_running_on() {
    // b times out while the queue is down: its retry cannot be queued, so the event stays.
    let rig = rig(
        &["a", "b"],
        [Outcome::Delivered { status: 200 }, Outcome::Timeout],
    )
    .await;
    rig.queue.fail_sends(true);
    let disposition = rig.handle_event().await;
    assert_eq!(disposition, Disposition::Retry);
    let first = log(&rig).await;
    assert_eq!(
        first,
        [
            ("a".to_owned(), 1, AttemptOutcome::Ok, NextStep::Done),
            (
                "b".to_owned(),
                1,
                AttemptOutcome::Timeout,
                NextStep::FanoutRetry
            )
        ]
    );

    // The event comes back: only the unsettled subscription is served, as attempt 2 — and since
    // its timeout marked it failing, from the deliveries queue rather than inline.
    rig.queue.fail_sends(false);
    let disposition = rig.handle_event().await;
    assert_eq!(disposition, Disposition::Delete);
    let seen: Vec<_> = rig
        .deliverer
        .seen()
        .into_iter()
        .map(|s| (s.subscription_id, s.attempt))
        .collect();
    assert_eq!(seen, [("a".to_owned(), 1), ("b".to_owned(), 1)]);
    assert_eq!(rig.scheduled_attempts(), [("b".to_owned(), 2)]);
}

#[tokio::test]
async fn a_redriven_delivery_gets_its_attempt_then_the_schedule_again() {
    let rig = rig(&["a"], [Outcome::Status { status: 502 }]).await;
    // As parked by a spent schedule: attempt 5, step 0.
    let disposition = rig.handle_delivery(task("a", 5, 0, 0)).await;
    assert_eq!(disposition, Disposition::Delete);
    assert_eq!(rig.deliverer.seen()[0].attempt, 5);
    // Not the first attempt: the full delivery timeout.
    assert_eq!(rig.deliverer.seen()[0].timeout, Duration::from_secs(15));
    let (task, send_delay) = rig.queue.scheduled()[0].clone();
    assert_eq!((task.attempt, task.schedule_step, send_delay), (6, 1, 5));
    assert_eq!(
        log(&rig).await,
        [(
            "a".to_owned(),
            5,
            AttemptOutcome::HttpStatus,
            NextStep::RetryScheduled
        )]
    );
}

#[tokio::test]
async fn a_spent_schedule_parks_the_delivery() {
    let rig = rig(&["a"], [Outcome::Timeout]).await;
    // The last step of the rig's two-step schedule.
    rig.handle_delivery(task("a", 3, 2, 0)).await;
    let parked = rig.queue.parked();
    assert_eq!((parked[0].attempt, parked[0].schedule_step), (4, 0));
    assert_eq!(log(&rig).await[0].3, NextStep::DeadLettered);
}

#[tokio::test]
async fn gone_disables_the_stored_subscription() {
    let rig = rig(&["a"], [Outcome::Gone]).await;
    rig.handle_event().await;
    let stored = rig.store.get_subscription("a").await.unwrap().unwrap();
    assert!(!stored.enabled);
    assert_eq!(
        stored.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );
    assert!(rig.queue.scheduled().is_empty());
    // Its pending retries are dropped without an attempt.
    rig.handle_delivery(task("a", 2, 1, 0)).await;
    assert_eq!(rig.deliverer.seen().len(), 1);
    assert!(log(&rig).await.contains(&(
        "a".to_owned(),
        2,
        AttemptOutcome::SubscriptionDisabled,
        NextStep::Dropped
    )));
}

fn early_task(not_before: i64) -> DeliveryTask {
    task("a", 2, 1, not_before)
}

#[tokio::test]
async fn an_early_wake_up_hops_as_a_new_message_and_counts_no_attempt() {
    let rig = rig(&["a"], []).await;
    for (not_before, expected_delay) in [(NOW_MS + 7_200_000, 900), (NOW_MS + 299_500, 300)] {
        let early = early_task(not_before);
        let disposition = rig.handle_delivery(early.clone()).await;
        assert_eq!(
            disposition,
            Disposition::Delete,
            "the woken message is deleted"
        );
        let sent = rig.queue.scheduled().pop().expect("one new message");
        // The same task: attempt, step, not-before and event (so the same webhook-id).
        assert_eq!(sent, (early, expected_delay));
        assert_eq!(sent.0.event.id, "evt_1");
    }
    assert_eq!(rig.queue.scheduled().len(), 2);
    assert!(
        rig.deliverer.seen().is_empty(),
        "no delivery before its time"
    );
    assert!(log(&rig).await.is_empty(), "no attempt logged");
}

#[tokio::test]
async fn a_hop_that_cannot_be_queued_leaves_the_message() {
    let rig = rig(&["a"], []).await;
    rig.queue.fail_sends(true);
    let disposition = rig.handle_delivery(early_task(NOW_MS + 7_200_000)).await;
    assert_eq!(disposition, Disposition::Retry, "never deleted unsent");
    assert!(rig.queue.scheduled().is_empty());
    assert!(rig.deliverer.seen().is_empty());
    assert!(log(&rig).await.is_empty());
}

#[tokio::test]
async fn every_attempt_is_counted_in_the_tally() {
    let rig = rig(
        &["a", "b"],
        [
            Outcome::Delivered { status: 200 },
            Outcome::Status { status: 500 },
        ],
    )
    .await;
    let tally = Arc::new(std::sync::Mutex::new(Tally::new()));
    let fanout = rig.fanout.with_tally(tally.clone());
    let disposition = handle_event_with(&fanout).await;
    assert_eq!(disposition, Disposition::Delete);
    let tally = tally.lock().unwrap();
    assert_eq!(tally.count(Metric::Delivered, "gh", ""), 1);
    assert_eq!(tally.count(Metric::Failed, "gh", "http_status"), 1);
    assert_eq!(tally.count(Metric::RetriesScheduled, "gh", ""), 1);
    assert_eq!(
        tally
            .histogram(Metric::DeliveryLatency, "gh")
            .map(|h| h.count),
        Some(2)
    );
}

#[tokio::test]
async fn a_two_hour_wait_is_crossed_in_eight_messages_then_attempted_once() {
    let rig = rig(&["a"], [Outcome::Delivered { status: 200 }]).await;
    // As the fanout first sends it after a failure at NOW: the queue's maximum delay.
    let mut current = (early_task(NOW_MS + 7_200_000), 900);
    let mut messages = 1;
    loop {
        // The message wakes after its delay.
        let now = rig.clock.now_secs() + i64::from(current.1);
        rig.clock.set_secs(now);
        let sent_before = rig.queue.scheduled().len();
        let disposition = rig.handle_delivery(current.0.clone()).await;
        assert_eq!(disposition, Disposition::Delete);
        match rig.queue.scheduled().get(sent_before) {
            Some(next) => {
                assert_eq!(next.0, current.0, "each hop carries the same task");
                current = next.clone();
                messages += 1;
            }
            None => break,
        }
        assert!(messages <= 20, "never due");
    }
    assert_eq!(messages, 8);
    assert_eq!(rig.clock.now_millis(), NOW_MS + 7_200_000);
    let seen = rig.deliverer.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].attempt, 2);
    assert_eq!(
        log(&rig).await,
        [("a".to_owned(), 2, AttemptOutcome::Ok, NextStep::Done)]
    );
}

async fn mark_failing(rig: &Rig, id: &str, since: i64) {
    let mut sub = rig.store.get_subscription(id).await.unwrap().unwrap();
    sub.failing_since = Some(since);
    rig.store.put_subscription(&sub).await.unwrap();
}

#[tokio::test]
async fn a_failing_subscription_gets_its_first_attempt_from_the_deliveries_queue() {
    let rig = rig(
        &["healthy", "failing"],
        [
            Outcome::Delivered { status: 200 },
            Outcome::Delivered { status: 200 },
        ],
    )
    .await;
    mark_failing(&rig, "failing", NOW - 60).await;
    let disposition = rig.handle_event().await;
    assert_eq!(disposition, Disposition::Delete);
    // Only the healthy one was attempted inline; the failing one waits on no batch.
    let seen = rig.deliverer.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].subscription_id, "healthy");
    let scheduled = rig.queue.scheduled();
    assert_eq!(scheduled.len(), 1);
    let (task, delay) = &scheduled[0];
    assert_eq!(
        (
            task.subscription_id.as_str(),
            task.attempt,
            task.schedule_step,
            *delay
        ),
        ("failing", 1, 0, 0)
    );
    assert_eq!(task.not_before, NOW_MS);
    assert_eq!(
        log_by_subscription(&rig).await,
        [
            (
                "failing".to_owned(),
                1,
                AttemptOutcome::Deferred,
                NextStep::RetryScheduled
            ),
            ("healthy".to_owned(), 1, AttemptOutcome::Ok, NextStep::Done),
        ]
    );
    // The deliveries queue makes attempt 1, with the full timeout; its record replaces the
    // deferred one.
    let disposition = rig.handle_delivery(task.clone()).await;
    assert_eq!(disposition, Disposition::Delete);
    let seen = rig.deliverer.seen();
    assert_eq!(
        (seen[1].subscription_id.as_str(), seen[1].attempt),
        ("failing", 1)
    );
    assert_eq!(seen[1].timeout, Duration::from_secs(15));
    assert_eq!(
        log_by_subscription(&rig).await[0],
        ("failing".to_owned(), 1, AttemptOutcome::Ok, NextStep::Done)
    );
}

/// Each delivery scheduled so far: its subscription, attempt and lane.
fn scheduled_lanes(rig: &Rig) -> Vec<(String, u32, DeliveryLane)> {
    let lanes = rig.queue.lanes.lock().unwrap().clone();
    rig.queue
        .scheduled()
        .into_iter()
        .zip(lanes)
        .map(|((task, _), lane)| (task.subscription_id, task.attempt, lane))
        .collect()
}

#[tokio::test]
async fn a_subscription_that_keeps_failing_waits_on_the_failing_lane_until_it_delivers() {
    let failed = Outcome::Status { status: 500 };
    let rig = rig(
        &["flaky", "dead"],
        [
            failed.clone(),
            failed.clone(),
            failed.clone(),
            failed.clone(),
            failed.clone(),
            Outcome::Delivered { status: 200 },
            failed,
        ],
    )
    .await;
    use DeliveryLane::{Failing, Healthy};
    // Failing for two minutes: handed off to the failing lane. `flaky` fails once: its retry
    // stays on the healthy lane.
    mark_failing(&rig, "dead", NOW - 120).await;
    rig.handle_event().await;
    let mut lanes = scheduled_lanes(&rig);
    lanes.sort();
    assert_eq!(
        lanes,
        [("dead".into(), 1, Failing), ("flaky".into(), 2, Healthy)]
    );
    // Four more failures in a row: the fifth one's retry goes to the failing lane.
    for attempt in 2..=5 {
        rig.handle_delivery(task("flaky", attempt, 0, NOW_MS)).await;
    }
    let flaky: Vec<_> = scheduled_lanes(&rig)
        .into_iter()
        .filter(|(id, _, _)| id == "flaky")
        .map(|(_, attempt, lane)| (attempt, lane))
        .collect();
    assert_eq!(
        flaky,
        [
            (2, Healthy),
            (3, Healthy),
            (4, Healthy),
            (5, Healthy),
            (6, Failing)
        ]
    );
    // A delivery ends the run: the next failure's retry is back on the healthy lane.
    rig.handle_delivery(task("flaky", 6, 0, NOW_MS)).await;
    rig.handle_delivery(task("flaky", 7, 0, NOW_MS)).await;
    assert_eq!(
        scheduled_lanes(&rig).last(),
        Some(&("flaky".into(), 8, Healthy))
    );
    // A failing subscription's delivery that is not due yet hops on its lane.
    rig.handle_delivery(task("dead", 2, 0, NOW_MS + 3_600_000))
        .await;
    assert_eq!(
        scheduled_lanes(&rig).last(),
        Some(&("dead".into(), 2, Failing))
    );
}

#[tokio::test]
async fn a_hand_off_that_cannot_be_queued_retries_the_event_without_the_settled_sibling() {
    let rig = rig(
        &["healthy", "failing"],
        [Outcome::Delivered { status: 200 }],
    )
    .await;
    mark_failing(&rig, "failing", NOW - 60).await;
    rig.queue.fail_sends(true);
    let disposition = rig.handle_event().await;
    assert_eq!(disposition, Disposition::Retry, "never deleted unqueued");
    assert_eq!(
        log_by_subscription(&rig).await,
        [
            (
                "failing".to_owned(),
                1,
                AttemptOutcome::Deferred,
                NextStep::FanoutRetry
            ),
            ("healthy".to_owned(), 1, AttemptOutcome::Ok, NextStep::Done),
        ]
    );
    // The retried event hands off again (attempt 2 after the unsettled try) and skips the
    // delivered sibling.
    rig.queue.fail_sends(false);
    let disposition = rig.handle_event().await;
    assert_eq!(disposition, Disposition::Delete);
    assert_eq!(rig.deliverer.seen().len(), 1);
    assert_eq!(rig.scheduled_attempts(), [("failing".to_owned(), 2)]);
}

// ------------------------------------------------------------------ lost deletes

fn logged(subscription_id: &str, attempt: u32, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        event_id: "evt_1".into(),
        subscription_id: subscription_id.into(),
        attempt,
        at: NOW_MS,
        status: None,
        outcome,
        latency_ms: 0,
        response_excerpt: String::new(),
        next: NextStep::RetryScheduled,
    }
}

#[test]
fn a_task_is_superseded_by_its_own_attempt_or_a_later_one_of_its_subscription() {
    let log = [
        logged("a", 1, AttemptOutcome::HttpStatus),
        logged("a", 2, AttemptOutcome::Deferred),
        logged("b", 4, AttemptOutcome::Ok),
    ];
    let attempt_of = |sub: &str, attempt: u32| {
        superseding_record(&log, &task(sub, attempt, 0, 0)).map(|r| r.attempt)
    };
    assert_eq!(attempt_of("a", 1), Some(1), "made already");
    assert_eq!(attempt_of("a", 0), Some(1), "the chain moved on");
    // The hand-off that queued attempt 2 is no attempt; 3 (a retry or a replay) is new.
    assert_eq!(attempt_of("a", 2), None);
    assert_eq!(attempt_of("a", 3), None);
    assert_eq!(
        attempt_of("b", 3),
        Some(4),
        "another subscription's record counts for it only"
    );
    assert_eq!(attempt_of("b", 5), None, "a replay after a success runs");
    assert_eq!(attempt_of("c", 1), None);
}

#[test]
fn a_respaced_hop_keeps_the_task_and_is_due_one_spacing_later() {
    let early = early_task(NOW_MS + 600_000);
    let (sent, delay) = respaced_hop(early.clone(), Duration::from_secs(25), NOW_MS);
    assert_eq!(sent.not_before, NOW_MS + 625_000);
    assert_eq!(delay, 625);
    assert_eq!(
        DeliveryTask {
            not_before: early.not_before,
            ..sent
        },
        early
    );
}

#[tokio::test]
async fn a_delivery_received_again_after_its_success_is_not_delivered_again() {
    let rig = rig(&["a"], [Outcome::Delivered { status: 200 }]).await;
    assert_eq!(
        rig.handle_delivery(task("a", 2, 1, 0)).await,
        Disposition::Delete
    );
    // Its delete was applied but the answer lost, or it failed: the message comes back.
    let again = rig.handle_delivery_received(task("a", 2, 1, 0), 2).await;
    assert_eq!(again, Disposition::Delete, "dropped for good");
    assert_eq!(rig.deliverer.seen().len(), 1, "delivered once");
    assert_eq!(
        log(&rig).await,
        [("a".to_owned(), 2, AttemptOutcome::Ok, NextStep::Done)]
    );
}

#[tokio::test]
async fn a_failed_delivery_received_again_does_not_start_a_second_chain() {
    let rig = rig(&["a"], [Outcome::Status { status: 500 }]).await;
    rig.handle_delivery(task("a", 2, 1, 0)).await;
    assert_eq!(rig.scheduled_attempts(), [("a".to_owned(), 3)]);
    let again = rig.handle_delivery_received(task("a", 2, 1, 0), 2).await;
    assert_eq!(again, Disposition::Delete);
    assert_eq!(rig.deliverer.seen().len(), 1);
    assert_eq!(
        rig.scheduled_attempts(),
        [("a".to_owned(), 3)],
        "one next attempt"
    );
}

#[tokio::test]
async fn a_hop_whose_delete_was_lost_makes_its_attempt_once() {
    let rig = rig(&["a"], [Outcome::Delivered { status: 200 }]).await;
    let early = early_task(NOW_MS + 600_000);
    assert_eq!(
        rig.handle_delivery(early.clone()).await,
        Disposition::Delete
    );
    // The delete is lost: the same message comes back and hops again.
    rig.clock.set_secs(NOW + 360);
    let again = rig.handle_delivery_received(early.clone(), 2).await;
    assert_eq!(again, Disposition::Delete);
    let copies: Vec<DeliveryTask> = rig.queue.scheduled().into_iter().map(|(t, _)| t).collect();
    assert_eq!(copies.len(), 2, "two messages carry the task");
    assert_eq!(copies[0], early);
    // The second copy is due after the first one's attempt has settled.
    let spacing = copies[1].not_before - copies[0].not_before;
    assert_eq!(spacing, (15 + 2 * 5) * 1000);
    for copy in copies {
        rig.clock.set_secs(copy.not_before.div_euclid(1000));
        assert_eq!(rig.handle_delivery(copy).await, Disposition::Delete);
    }
    let seen = rig.deliverer.seen();
    assert_eq!(seen.len(), 1, "attempted once");
    assert_eq!(seen[0].attempt, 2);
    assert_eq!(
        rig.queue.scheduled().len(),
        2,
        "nothing sent after the success"
    );
    assert_eq!(
        log(&rig).await,
        [("a".to_owned(), 2, AttemptOutcome::Ok, NextStep::Done)]
    );
}

#[tokio::test]
async fn without_an_archive_a_delivery_received_again_is_attempted_again() {
    let mut rig = rig(
        &["a"],
        [
            Outcome::Delivered { status: 200 },
            Outcome::Delivered { status: 200 },
        ],
    )
    .await;
    rig.fanout.config.archive = ArchiveMode::Off;
    rig.handle_delivery(task("a", 2, 1, 0)).await;
    rig.handle_delivery_received(task("a", 2, 1, 0), 2).await;
    assert_eq!(rig.deliverer.seen().len(), 2, "nothing to tell it was made");
}

// The round's plan (`plan`, pure).

fn planned_record(subscription_id: &str, attempt: u32, outcome: AttemptOutcome) -> AttemptRecord {
    let next = match outcome {
        AttemptOutcome::Ok => NextStep::Done,
        _ => NextStep::FanoutRetry,
    };
    attempt_record(
        &event(),
        subscription_id,
        attempt,
        1_000,
        Step::NotSent(outcome),
        next,
    )
}

#[test]
fn a_round_skips_settled_and_unmatched_subscriptions_and_hands_off_failing_ones() {
    let mut failing = subscription("failing");
    failing.failing_since = Some(1);
    let mut disabled = subscription("disabled");
    disabled.enabled = false;
    let mut other_type = subscription("other");
    other_type.events = vec!["issues".into()];
    let subs = vec![
        subscription("fresh"),
        subscription("retried"),
        subscription("settled"),
        failing,
        disabled,
        other_type,
    ];
    // An earlier round: `settled` got it; `retried`'s follow-up could not be queued.
    let past = [
        planned_record("settled", 1, AttemptOutcome::Ok),
        planned_record("retried", 1, AttemptOutcome::Timeout),
    ];
    let planned: Vec<_> = plan_round(&event(), &subs, &past)
        .into_iter()
        .map(|p| (p.subscription.id.as_str(), p.attempt, p.step))
        .collect();
    assert_eq!(
        planned,
        [
            ("fresh", 1, RoundStep::Deliver),
            ("retried", 2, RoundStep::Deliver),
            ("failing", 1, RoundStep::HandOff),
        ]
    );
}

#[test]
fn a_task_is_dropped_as_a_duplicate_even_when_its_subscription_cannot_be_read() {
    let task = task("s", 2, 1, 0);
    let sub = subscription("s");
    let log = [planned_record("s", 2, AttemptOutcome::Ok)];
    assert_eq!(
        plan_task(&task, &log, Err::<Option<&Subscription>, _>("down")),
        Ok(TaskPlan::Duplicate(&log[0]))
    );
    assert_eq!(
        plan_task(&task, &[], Err::<Option<&Subscription>, _>("down")),
        Err("down")
    );
    assert_eq!(
        plan_task::<()>(&task, &[], Ok(Some(&sub))),
        Ok(TaskPlan::Attempt(&sub))
    );
    assert_eq!(
        plan_task::<()>(&task, &[], Ok(None)),
        Ok(TaskPlan::Drop(AttemptOutcome::SubscriptionRemoved))
    );
    let mut disabled = sub.clone();
    disabled.enabled = false;
    assert_eq!(
        plan_task::<()>(&task, &[], Ok(Some(&disabled))),
        Ok(TaskPlan::Drop(AttemptOutcome::SubscriptionDisabled))
    );
}

#[test]
fn a_round_writes_the_event_once_and_holds_successes_while_only_failures_are_kept() {
    let ok = planned_record("a", 1, AttemptOutcome::Ok);
    let failed = planned_record("b", 1, AttemptOutcome::Timeout);
    let late = planned_record("c", 1, AttemptOutcome::Ok);

    let mut log = RoundLog::default();
    let mode = ArchiveMode::Failures;
    assert_eq!(log.write_for(ok.clone(), &[], mode), LogWrite::Nothing);
    let both = LogWrite::Event(vec![ok.clone(), failed.clone()]);
    assert_eq!(log.write_for(failed.clone(), &[], mode), both);
    // The event write failed: the next outcome carries all of them.
    let all = LogWrite::Event(vec![ok.clone(), failed.clone(), late.clone()]);
    assert_eq!(log.write_for(late.clone(), &[], mode), all);
    log.event_written();
    assert_eq!(
        log.write_for(late.clone(), &[], mode),
        LogWrite::Record(late.clone())
    );

    // A stored event (an earlier round) is written with the first outcome, success or not.
    let mut log = RoundLog::default();
    let past = [failed.clone()];
    assert_eq!(
        log.write_for(ok.clone(), &past, mode),
        LogWrite::Event(vec![failed.clone(), ok.clone()])
    );
    let mut log = RoundLog::default();
    assert_eq!(
        log.write_for(ok, &past, ArchiveMode::Off),
        LogWrite::Nothing
    );
}

#[test]
fn a_round_takes_the_subscriptions_whose_patterns_and_filter_match() {
    use crate::domain::filter::Filter;
    let filtered = |id: &str, filter: &str| Subscription {
        filter: Some(Filter::parse(filter).unwrap()),
        ..subscription(id)
    };
    let subs = vec![
        subscription("plain"),
        filtered("opened", r#"{"body":{"action":"opened"}}"#),
        filtered("closed", r#"{"body":{"action":"closed"}}"#),
        filtered(
            "by-header",
            r#"{"headers":{"Content-Type":"application/json"}}"#,
        ),
        Subscription {
            events: vec!["issues.*".into()],
            ..filtered("other-type", r#"{"body":{"action":"opened"}}"#)
        },
    ];
    let opened = EventEnvelope {
        body: r#"{"action":"opened"}"#.into(),
        ..event()
    };
    let ids = |event: &EventEnvelope| -> Vec<String> {
        plan_round(event, &subs, &[])
            .into_iter()
            .map(|p| p.subscription.id.clone())
            .collect()
    };
    assert_eq!(ids(&opened), ["plain", "opened", "by-header"]);
    // A body that is not JSON: only the filters that do not read the body can match.
    let form = EventEnvelope {
        body: "action=opened".into(),
        ..event()
    };
    assert_eq!(ids(&form), ["plain", "by-header"]);
}

// ------------------------------------------------------------------ delivery policy

/// Gives stored subscription `id` this policy.
async fn set_policy(rig: &Rig, id: &str, policy: crate::domain::model::DeliveryPolicy) {
    crate::ports::subscriptions::modify_subscription(rig.store.as_ref(), id, |sub| {
        sub.policy = policy.clone();
        true
    })
    .await
    .unwrap()
    .unwrap();
}

/// `evt_1` under another id, as a second event of the same source.
fn another_event(id: &str) -> EventEnvelope {
    EventEnvelope {
        id: id.into(),
        ..event()
    }
}

#[tokio::test]
async fn a_subscription_retries_on_its_own_schedule_then_dead_letters() {
    let rig = rig(
        &["own", "relay"],
        [
            Outcome::Status { status: 500 },
            Outcome::Status { status: 500 },
            Outcome::Status { status: 500 },
        ],
    )
    .await;
    set_policy(
        &rig,
        "own",
        crate::domain::model::DeliveryPolicy {
            retry_schedule: Some("40s".into()),
            ..Default::default()
        },
    )
    .await;
    // One delivery task each, failing at step 0: 40 s (own) against 5 s (the relay's).
    rig.handle_delivery(task("own", 1, 0, 0)).await;
    rig.handle_delivery(task("relay", 1, 0, 0)).await;
    let delays: Vec<(String, u32)> = rig
        .queue
        .scheduled()
        .into_iter()
        .map(|(t, delay)| (t.subscription_id, delay))
        .collect();
    assert_eq!(delays, [("own".to_owned(), 40), ("relay".to_owned(), 5)]);
    // Its schedule has one step: the second failure is dead-lettered; the relay's would retry.
    rig.handle_delivery(task("own", 2, 1, 0)).await;
    assert_eq!(
        rig.queue
            .parked()
            .iter()
            .map(|t| (t.subscription_id.as_str(), t.attempt))
            .collect::<Vec<_>>(),
        [("own", 3)]
    );
}

#[tokio::test]
async fn a_subscription_timeout_replaces_the_relays_within_the_first_attempt_cap() {
    let rig = rig(&["short", "long", "relay"], []).await;
    set_policy(
        &rig,
        "short",
        crate::domain::model::DeliveryPolicy {
            timeout_secs: Some(1),
            ..Default::default()
        },
    )
    .await;
    set_policy(
        &rig,
        "long",
        crate::domain::model::DeliveryPolicy {
            timeout_secs: Some(60),
            ..Default::default()
        },
    )
    .await;
    for id in ["short", "long", "relay"] {
        rig.handle_delivery(task(id, 2, 1, 0)).await;
    }
    // From the events queue the first-attempt cap (2 s) still applies when lower.
    rig.fanout
        .handle_message(&message(&QueueMessage::Event(another_event("evt_2"))), None)
        .await;
    let mut seen: Vec<(String, u32, u64)> = rig
        .deliverer
        .seen()
        .into_iter()
        .map(|s| (s.subscription_id, s.attempt, s.timeout.as_secs()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("long".to_owned(), 1, 2),
            ("long".to_owned(), 2, 60),
            ("relay".to_owned(), 1, 2),
            ("relay".to_owned(), 2, 15),
            ("short".to_owned(), 1, 1),
            ("short".to_owned(), 2, 1),
        ]
    );
}

#[tokio::test]
async fn a_delivery_over_its_rate_is_deferred_without_a_failed_attempt() {
    let rig = rig(&["paced"], []).await;
    // One delivery every 100 s: the second event's turn is far beyond the in-batch wait.
    set_policy(
        &rig,
        "paced",
        crate::domain::model::DeliveryPolicy {
            rate: Some(0.01),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rig.handle_event().await, Disposition::Delete);
    let second = another_event("evt_2");
    let disposition = rig
        .fanout
        .handle_message(&message(&QueueMessage::Event(second.clone())), None)
        .await;
    assert_eq!(disposition, Disposition::Delete);
    // One attempt made; the other event waits on the deliveries queue for its turn.
    assert_eq!(rig.deliverer.seen().len(), 1);
    let [(deferred, delay)] = rig.queue.scheduled().try_into().unwrap();
    assert_eq!(
        (
            deferred.event.id.as_str(),
            deferred.attempt,
            deferred.schedule_step
        ),
        ("evt_2", 1, 0)
    );
    assert_eq!(deferred.not_before, NOW_MS + 100_000);
    assert_eq!(delay, 100);
    let logged = rig.store.event_attempts("evt_2").await.unwrap();
    assert_eq!(
        logged
            .iter()
            .map(|a| (a.attempt, a.outcome, a.next))
            .collect::<Vec<_>>(),
        [(1, AttemptOutcome::Deferred, NextStep::RetryScheduled)]
    );
    // Not a failure: the subscription's health is untouched.
    let stored = rig.store.get_subscription("paced").await.unwrap().unwrap();
    assert_eq!(stored.failing_since, None);

    // Due before its turn on the deliveries queue: sent on again, nothing attempted or logged.
    rig.clock.set_millis(NOW_MS + 100_000 - 50_000);
    let early = DeliveryTask {
        not_before: NOW_MS,
        ..deferred.clone()
    };
    assert_eq!(rig.handle_delivery(early).await, Disposition::Delete);
    assert_eq!(rig.deliverer.seen().len(), 1);
    let scheduled = rig.queue.scheduled();
    let (again, _) = scheduled.last().unwrap();
    assert!(again.not_before >= NOW_MS + 100_000, "{again:?}");
    assert_eq!(rig.store.event_attempts("evt_2").await.unwrap().len(), 1);

    // At its turn it is attempted, as attempt 1.
    rig.clock.set_millis(again.not_before);
    assert_eq!(
        rig.handle_delivery(again.clone()).await,
        Disposition::Delete
    );
    let seen = rig.deliverer.seen();
    assert_eq!((seen.len(), seen[1].attempt), (2, 1));
}

// ------------------------------------------------------------------ breaker

#[tokio::test]
async fn a_429_with_retry_after_pauses_until_one_probe_delivers() {
    let rig = rig_scripted(
        &["b"],
        vec![AttemptResult {
            retry_after: Some(Duration::from_secs(30)),
            ..answer(Outcome::Status { status: 429 })
        }],
    )
    .await;
    rig.handle_event().await;
    let stored = rig.store.get_subscription("b").await.unwrap().unwrap();
    assert_eq!(
        (stored.paused_until, stored.pause_streak),
        (Some(NOW_MS + 30_000), 1)
    );
    // The retry waits for the Retry-After too.
    let [(retry, _)] = rig.queue.scheduled().try_into().unwrap();
    assert_eq!(retry.not_before, NOW_MS + 30_000);

    // Another delivery due during the pause: sent on to the pause's end, not attempted.
    rig.clock.set_millis(NOW_MS + 10_000);
    let other = DeliveryTask {
        event: another_event("evt_2"),
        ..task("b", 1, 0, 0)
    };
    assert_eq!(rig.handle_delivery(other).await, Disposition::Delete);
    assert_eq!(rig.deliverer.seen().len(), 1);
    let (waiting, _) = rig.queue.scheduled().last().cloned().unwrap();
    assert_eq!(
        (waiting.event.id.as_str(), waiting.not_before),
        ("evt_2", NOW_MS + 30_000)
    );
    assert!(rig.store.event_attempts("evt_2").await.unwrap().is_empty());

    // The pause is over: the retry claims the probe and delivers; the pause is cleared.
    rig.clock.set_millis(NOW_MS + 30_000);
    assert_eq!(rig.handle_delivery(retry).await, Disposition::Delete);
    assert_eq!(rig.deliverer.seen().len(), 2);
    let stored = rig.store.get_subscription("b").await.unwrap().unwrap();
    assert_eq!(
        (
            stored.paused_until,
            stored.pause_streak,
            stored.failing_since
        ),
        (None, 0, None)
    );
    // The delivery that waited goes through as attempt 1.
    assert_eq!(rig.handle_delivery(waiting).await, Disposition::Delete);
    let seen = rig.deliverer.seen();
    assert_eq!((seen.len(), seen[2].attempt), (3, 1));
}

#[tokio::test]
async fn a_probe_claimed_elsewhere_holds_the_delivery_back_and_a_failed_probe_reopens() {
    let rig = rig(&["b"], [Outcome::Timeout]).await;
    crate::ports::subscriptions::modify_subscription(rig.store.as_ref(), "b", |sub| {
        sub.paused_until = Some(NOW_MS - 1);
        sub.pause_streak = 1;
        true
    })
    .await
    .unwrap();
    // Another fanout claimed the probe first: its lease holds this delivery back.
    crate::ports::subscriptions::modify_subscription(rig.store.as_ref(), "b", |sub| {
        crate::fanout::breaker::claim_probe(sub, NOW_MS - 1, NOW_MS + 20_000)
    })
    .await
    .unwrap();
    assert_eq!(
        rig.handle_delivery(task("b", 2, 1, 0)).await,
        Disposition::Delete
    );
    assert!(rig.deliverer.seen().is_empty());
    let (held, _) = rig.queue.scheduled().last().cloned().unwrap();
    assert_eq!(held.not_before, NOW_MS + 20_000);

    // At the lease's end this one probes; it times out: paused again, twice as long.
    rig.clock.set_millis(NOW_MS + 20_000);
    rig.handle_delivery(held).await;
    assert_eq!(rig.deliverer.seen().len(), 1);
    let stored = rig.store.get_subscription("b").await.unwrap().unwrap();
    assert_eq!(
        (stored.paused_until, stored.pause_streak),
        (Some(NOW_MS + 20_000 + 60_000), 2)
    );
}

#[tokio::test]
async fn a_run_of_failures_pauses_the_subscription() {
    let failures = crate::fanout::breaker::FAILURE_RUN;
    let rig = rig(
        &["b"],
        (0..failures).map(|_| Outcome::Status { status: 500 }),
    )
    .await;
    // The run's failures spread over its span; the last one trips it.
    let span_ms = crate::fanout::breaker::FAILURE_RUN_SPAN.as_millis() as i64;
    for n in 1..=failures {
        let at = NOW_MS + span_ms * i64::from(n - 1) / i64::from(failures - 1);
        rig.clock.set_millis(at);
        let event_id = format!("evt_{n}");
        let delivery = DeliveryTask {
            event: another_event(&event_id),
            ..task("b", 2, 0, 0)
        };
        rig.handle_delivery(delivery).await;
        let stored = rig.store.get_subscription("b").await.unwrap().unwrap();
        let expected = (n == failures).then_some(at + 30_000);
        assert_eq!(stored.paused_until, expected, "after failure {n}");
    }
}
