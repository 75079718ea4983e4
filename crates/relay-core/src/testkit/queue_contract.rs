//! The rules every `QueueConsumer` adapter keeps (see its doc comment), written once. Each check
//! takes a fresh, empty set of queues; `queue_contract_tests!` turns them into one
//! `#[tokio::test]` per check, with the same names for every adapter (memory, SQLite, SQS).
//!
//! Time passes through the fixture: adapters on a pinned clock move it, SQS sleeps. Visibility
//! timeouts are 1-2 s and every wait is bounded.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::model::{
    BodyEncoding, DeliveryTask, EventEnvelope, QueueMessage, ReceivedMessage,
};
use crate::ports::{Queue, QueueConsumer, QueueDepth, QueueName, Settle};

/// A fresh set of the five queues, producer and consumer side, and a way to let time pass.
#[async_trait]
pub trait QueueFixture: Send + Sync {
    fn consumer(&self) -> &dyn QueueConsumer;
    fn producer(&self) -> &dyn Queue;
    /// The events queue's maximum receive count.
    fn events_max_receives(&self) -> u32;
    /// Lets `by` pass for the queues (a pinned clock moves; otherwise it sleeps).
    async fn pass(&self, by: Duration);
}

/// Expands to one `#[tokio::test]` per check. `$fresh` is evaluated once per test to a future of
/// a fresh fixture (anything implementing `QueueFixture`).
#[macro_export]
macro_rules! queue_contract_tests {
    ($fresh:expr) => {
        $crate::queue_contract_tests!(@each $fresh;
            queue_received_message_carries_body_and_receipt,
            queue_received_message_hidden_until_its_visibility_passes,
            queue_receive_count_counts_every_receive,
            queue_dead_lettered_after_the_maximum_receives,
            queue_delayed_message_not_received_before_its_delay,
            queue_settle_delete_removes_for_good,
            queue_settle_leave_returns_after_the_visibility,
            queue_stale_receipt_is_not_an_error_and_the_latest_settles,
            queue_redrive_moves_all_and_counts_start_again,
            queue_redrive_of_a_main_queue_is_refused,
            queue_depths_count_visible_in_flight_and_delayed,
        );
    };
    (@each $fresh:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let fixture = $fresh.await;
                $crate::testkit::queue_contract::$check(&fixture).await;
            }
        )+
    };
}

const NO_WAIT: Duration = Duration::ZERO;
const VISIBILITY: Duration = Duration::from_secs(1);
/// Longer than `VISIBILITY`, with room for SQS's whole-second clock.
const PAST_VISIBILITY: Duration = Duration::from_millis(2100);

fn event(id: &str) -> EventEnvelope {
    EventEnvelope {
        id: id.to_owned(),
        source: "gh".to_owned(),
        event_type: "push".to_owned(),
        content_type: Some("application/json".to_owned()),
        received_at: 1_700_000_000_000,
        body: format!("{{\"id\":\"{id}\"}}"),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    }
}

fn task(id: &str) -> DeliveryTask {
    DeliveryTask {
        event: event(id),
        subscription_id: "sub_1".to_owned(),
        attempt: 2,
        schedule_step: 1,
        not_before: 0,
    }
}

/// The event id a message carries (events and deliveries alike).
fn carried_id(message: &ReceivedMessage) -> String {
    match serde_json::from_str::<QueueMessage>(&message.body) {
        Ok(QueueMessage::Event(event)) => event.id,
        Ok(QueueMessage::Delivery(task)) => task.event.id,
        Err(e) => panic!("a message the suite did not send: {e}: {}", message.body),
    }
}

async fn send_event(f: &dyn QueueFixture, id: &str) {
    f.producer().send_event(&event(id)).await.expect("send");
}

async fn receive(
    f: &dyn QueueFixture,
    queue: QueueName,
    max: usize,
    visibility: Duration,
) -> Vec<ReceivedMessage> {
    f.consumer()
        .receive(queue, max, NO_WAIT, visibility)
        .await
        .expect("receive")
}

/// Receives until `want` messages came or a few receives came back short (SQS may answer a
/// receive with fewer messages than are visible).
async fn receive_all(
    f: &dyn QueueFixture,
    queue: QueueName,
    want: usize,
    visibility: Duration,
) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    for _ in 0..(want + 3) {
        if all.len() >= want {
            break;
        }
        all.extend(receive(f, queue, want - all.len(), visibility).await);
    }
    all
}

async fn depth_of(f: &dyn QueueFixture, queue: QueueName) -> QueueDepth {
    f.consumer().depth(queue).await.expect("depth")
}

async fn redrive(f: &dyn QueueFixture, dlq: QueueName) -> u64 {
    f.consumer().redrive(dlq).await.expect("redrive")
}

async fn send_delivery(f: &dyn QueueFixture, id: &str, delay_secs: u32) {
    f.producer()
        .send_delivery(&task(id), delay_secs)
        .await
        .expect("send");
}

async fn settle(f: &dyn QueueFixture, queue: QueueName, receipt: &str, action: Settle) {
    f.consumer()
        .settle(queue, receipt, action)
        .await
        .unwrap_or_else(|e| panic!("settle {action:?}: {e}"));
}

pub async fn queue_received_message_carries_body_and_receipt(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    let first = receive(f, QueueName::Events, 10, Duration::ZERO).await;
    assert_eq!(first.len(), 1);
    assert_eq!(carried_id(&first[0]), "evt_a");
    assert!(!first[0].receipt.is_empty());
    let second = receive(f, QueueName::Events, 10, Duration::ZERO).await;
    assert_eq!(second.len(), 1);
    assert_ne!(
        first[0].receipt, second[0].receipt,
        "each receive hands out a new receipt"
    );
    assert_eq!(
        first[0].message_id, second[0].message_id,
        "the message id (where there is one) is the same on every receive"
    );
}

pub async fn queue_received_message_hidden_until_its_visibility_passes(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    assert_eq!(receive(f, QueueName::Events, 10, VISIBILITY).await.len(), 1);
    assert!(
        receive(f, QueueName::Events, 10, VISIBILITY)
            .await
            .is_empty(),
        "not handed out again within its visibility"
    );
    f.pass(PAST_VISIBILITY).await;
    let again = receive(f, QueueName::Events, 10, VISIBILITY).await;
    assert_eq!(
        again.len(),
        1,
        "handed out again once its visibility passed"
    );
    assert_eq!(carried_id(&again[0]), "evt_a");
}

pub async fn queue_receive_count_counts_every_receive(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    // A zero visibility leaves it visible, so the next receive takes it again at once.
    let counts: Vec<u32> = {
        let mut counts = Vec::new();
        for _ in 0..3 {
            let got = receive(f, QueueName::Events, 10, Duration::ZERO).await;
            assert_eq!(got.len(), 1);
            counts.push(got[0].receive_count);
        }
        counts
    };
    assert_eq!(counts, [1, 2, 3]);
}

pub async fn queue_dead_lettered_after_the_maximum_receives(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    let max = f.events_max_receives();
    for n in 1..=max {
        let got = receive(f, QueueName::Events, 10, Duration::ZERO).await;
        assert_eq!(got.len(), 1, "receive {n} of at most {max}");
        assert_eq!(got[0].receive_count, n);
    }
    assert!(
        receive(f, QueueName::Events, 10, Duration::ZERO)
            .await
            .is_empty(),
        "the receive after the maximum moves it to the DLQ instead"
    );
    let parked = receive_all(f, QueueName::EventsDlq, 1, VISIBILITY).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(carried_id(&parked[0]), "evt_a");
    let depth = depth_of(f, QueueName::Events).await;
    assert_eq!(depth.total(), 0);
}

pub async fn queue_delayed_message_not_received_before_its_delay(f: &dyn QueueFixture) {
    send_delivery(f, "evt_a", 2).await;
    assert!(
        receive(f, QueueName::Deliveries, 10, VISIBILITY)
            .await
            .is_empty()
    );
    let depth = depth_of(f, QueueName::Deliveries).await;
    assert_eq!((depth.visible, depth.delayed), (0, 1));
    f.pass(Duration::from_millis(3100)).await;
    let got = receive(f, QueueName::Deliveries, 10, VISIBILITY).await;
    assert_eq!(got.len(), 1, "received once its delay passed");
    assert_eq!(got[0].receive_count, 1, "a delay is not a receive");
}

pub async fn queue_settle_delete_removes_for_good(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    send_event(f, "evt_b").await;
    let got = receive_all(f, QueueName::Events, 2, VISIBILITY).await;
    assert_eq!(got.len(), 2);
    let deleted = got
        .iter()
        .find(|m| carried_id(m) == "evt_a")
        .expect("evt_a");
    settle(f, QueueName::Events, &deleted.receipt, Settle::Delete).await;
    f.pass(PAST_VISIBILITY).await;
    let again = receive_all(f, QueueName::Events, 2, VISIBILITY).await;
    let ids: Vec<String> = again.iter().map(carried_id).collect();
    assert_eq!(ids, ["evt_b"], "only the message not deleted comes back");
}

pub async fn queue_settle_leave_returns_after_the_visibility(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    let got = receive(f, QueueName::Events, 10, VISIBILITY).await;
    assert_eq!(got.len(), 1);
    settle(f, QueueName::Events, &got[0].receipt, Settle::Leave).await;
    assert!(
        receive(f, QueueName::Events, 10, VISIBILITY)
            .await
            .is_empty()
    );
    f.pass(PAST_VISIBILITY).await;
    assert_eq!(receive(f, QueueName::Events, 10, VISIBILITY).await.len(), 1);
}

pub async fn queue_stale_receipt_is_not_an_error_and_the_latest_settles(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    let first = receive(f, QueueName::Events, 10, Duration::ZERO).await;
    let second = receive(f, QueueName::Events, 10, Duration::ZERO).await;
    assert_eq!((first.len(), second.len()), (1, 1));
    let (stale, latest) = (&first[0].receipt, &second[0].receipt);
    // Stale: received again since. Not an error, whether or not it takes effect.
    settle(f, QueueName::Events, stale, Settle::Leave).await;
    settle(f, QueueName::Events, stale, Settle::Delete).await;
    // The latest receipt still settles the message.
    settle(f, QueueName::Events, latest, Settle::Delete).await;
    // Gone: stale too, and still not an error.
    settle(f, QueueName::Events, latest, Settle::Delete).await;
    settle(f, QueueName::Events, latest, Settle::Leave).await;
    f.pass(PAST_VISIBILITY).await;
    assert!(
        receive(f, QueueName::Events, 10, VISIBILITY)
            .await
            .is_empty(),
        "a deleted message is never handed out again"
    );
    let depth = depth_of(f, QueueName::Events).await;
    assert_eq!(depth.total(), 0);
}

pub async fn queue_redrive_moves_all_and_counts_start_again(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    send_event(f, "evt_b").await;
    let max = f.events_max_receives();
    for _ in 0..max {
        assert_eq!(
            receive_all(f, QueueName::Events, 2, Duration::ZERO)
                .await
                .len(),
            2
        );
    }
    assert!(
        receive(f, QueueName::Events, 10, Duration::ZERO)
            .await
            .is_empty()
    );
    assert_eq!(depth_of(f, QueueName::EventsDlq).await.total(), 2);
    let moved = redrive(f, QueueName::EventsDlq).await;
    assert_eq!(moved, 2);
    assert_eq!(depth_of(f, QueueName::EventsDlq).await.total(), 0);
    let back = receive_all(f, QueueName::Events, 2, VISIBILITY).await;
    let mut ids: Vec<String> = back.iter().map(carried_id).collect();
    ids.sort();
    assert_eq!(ids, ["evt_a", "evt_b"]);
    assert!(
        back.iter().all(|m| m.receive_count == 1),
        "receive counts start again: {back:?}"
    );

    // The deliveries DLQ, filled by the fanout's dead letters, redrives the same way.
    for id in ["evt_c", "evt_d", "evt_e"] {
        f.producer()
            .dead_letter_delivery(&task(id))
            .await
            .expect("dead letter");
    }
    let moved = redrive(f, QueueName::DeliveriesDlq).await;
    assert_eq!(moved, 3);
    assert_eq!(
        receive_all(f, QueueName::Deliveries, 3, VISIBILITY)
            .await
            .len(),
        3
    );
    assert_eq!(
        redrive(f, QueueName::DeliveriesDlq).await,
        0,
        "nothing left to move"
    );
}

pub async fn queue_redrive_of_a_main_queue_is_refused(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    assert!(f.consumer().redrive(QueueName::Events).await.is_err());
    assert!(f.consumer().redrive(QueueName::Deliveries).await.is_err());
    assert_eq!(
        depth_of(f, QueueName::Events).await.visible,
        1,
        "left where it was"
    );
}

pub async fn queue_depths_count_visible_in_flight_and_delayed(f: &dyn QueueFixture) {
    send_event(f, "evt_a").await;
    send_event(f, "evt_b").await;
    send_event(f, "evt_c").await;
    assert_eq!(
        receive(f, QueueName::Events, 1, Duration::from_secs(30))
            .await
            .len(),
        1
    );
    send_delivery(f, "evt_d", 60).await;
    let events = depth_of(f, QueueName::Events).await;
    assert_eq!(
        (events.visible, events.in_flight, events.delayed),
        (2, 1, 0)
    );
    let deliveries = depth_of(f, QueueName::Deliveries).await;
    assert_eq!(
        (deliveries.visible, deliveries.in_flight, deliveries.delayed),
        (0, 0, 1)
    );
    let dlq = depth_of(f, QueueName::DeliveriesDlq).await;
    assert_eq!(dlq.total(), 0);
}

/// The suite on the memory adapter, on a clock the fixture moves.
#[cfg(test)]
mod memory {
    use std::sync::Arc;

    use super::*;
    use crate::ports::clock::FixedClock;
    use crate::testkit::MemoryQueue;

    struct MemoryFixture {
        queue: MemoryQueue,
        clock: Arc<FixedClock>,
    }

    #[async_trait]
    impl QueueFixture for MemoryFixture {
        fn consumer(&self) -> &dyn QueueConsumer {
            &self.queue
        }
        fn producer(&self) -> &dyn Queue {
            &self.queue
        }
        fn events_max_receives(&self) -> u32 {
            3
        }
        async fn pass(&self, by: Duration) {
            use crate::ports::clock::Clock;
            let now = self.clock.now_millis();
            self.clock
                .set_millis(now + i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 2));
        }
    }

    async fn fresh() -> MemoryFixture {
        let clock = FixedClock::at_secs(1_700_000_000);
        MemoryFixture {
            queue: MemoryQueue::with_max_receives(clock.clone(), 3, 4),
            clock,
        }
    }

    crate::queue_contract_tests!(fresh());
}
