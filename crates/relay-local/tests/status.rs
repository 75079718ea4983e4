//! What `relay status` reads from the SQLite backend: the age of each queue's oldest message,
//! and the accepted / delivered / failed counts of a time window.

mod common;

use std::time::Duration;

use common::{T0, event, pinned, task};
use relay_core::domain::model::{AttemptOutcome, AttemptRecord, NextStep};
use relay_core::{ActivityCounts, EventArchive, Queue, QueueConsumer, QueueName, RecentActivity};

fn record(event_id: &str, sub: &str, at: i64, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        event_id: event_id.into(),
        subscription_id: sub.into(),
        attempt: 1,
        at,
        status: None,
        outcome,
        latency_ms: 5,
        response_excerpt: String::new(),
        next: NextStep::Done,
    }
}

#[tokio::test]
async fn oldest_age_is_that_of_the_earliest_message_still_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, clock) = pinned(dir.path());
    let depth = |q| {
        let queue = queue.clone();
        async move { QueueConsumer::depth(&queue, q).await.unwrap() }
    };
    assert_eq!(depth(QueueName::Events).await.oldest_age_secs, None);

    queue.send_event(&event("evt_1", 1)).await.unwrap();
    clock.set_secs(T0 + 40);
    queue.send_event(&event("evt_2", 2)).await.unwrap();
    queue.send_delivery(&task("evt_2", 2), 600).await.unwrap();
    clock.set_secs(T0 + 100);

    assert_eq!(depth(QueueName::Events).await.oldest_age_secs, Some(100));
    // Delayed messages count too: they are on the queue.
    assert_eq!(depth(QueueName::Deliveries).await.oldest_age_secs, Some(60));

    // Once the oldest is gone, the next one is the oldest.
    let got = QueueConsumer::receive(
        &queue,
        QueueName::Events,
        1,
        Duration::ZERO,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    queue
        .settle(
            QueueName::Events,
            &got[0].receipt,
            relay_core::Settle::Delete,
        )
        .await
        .unwrap();
    assert_eq!(depth(QueueName::Events).await.oldest_age_secs, Some(60));
}

#[tokio::test]
async fn activity_counts_events_and_attempts_of_the_window_as_the_metrics_do() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = pinned(dir.path());
    let since = T0 * 1000;
    let until = since + 3_600_000;
    let expires = T0 + 86_400;
    for (id, received_at) in [
        ("evt_before", since - 1),
        ("evt_first", since),
        ("evt_last", until - 1),
        ("evt_after", until),
    ] {
        store
            .put_event(&event(id, received_at), expires)
            .await
            .unwrap();
    }
    let attempts = [
        record("evt_first", "sub_a", since, AttemptOutcome::Ok),
        record("evt_first", "sub_b", since + 10, AttemptOutcome::HttpStatus),
        record("evt_first", "sub_c", since + 20, AttemptOutcome::Gone),
        record("evt_last", "sub_a", until - 1, AttemptOutcome::Ok),
        // Nothing was sent for these three: not attempts.
        record("evt_last", "sub_b", until - 1, AttemptOutcome::Deferred),
        record(
            "evt_last",
            "sub_c",
            until - 1,
            AttemptOutcome::SubscriptionDisabled,
        ),
        record(
            "evt_last",
            "sub_d",
            until - 1,
            AttemptOutcome::SubscriptionRemoved,
        ),
        // Outside the window.
        record("evt_before", "sub_a", since - 1, AttemptOutcome::Timeout),
        record("evt_after", "sub_a", until, AttemptOutcome::Ok),
    ];
    store.put_attempts(&attempts, expires).await.unwrap();

    let counts = store.activity(since, until).await.unwrap();
    assert_eq!(
        counts,
        ActivityCounts {
            accepted: 2,
            delivered: 2,
            failed: 2,
        }
    );
    assert_eq!(
        store.activity(until, until + 1).await.unwrap(),
        ActivityCounts {
            accepted: 1,
            delivered: 1,
            failed: 0,
        }
    );
}
