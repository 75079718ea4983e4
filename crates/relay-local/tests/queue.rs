//! What only the SQLite queue does; the rules every queue keeps are the contract suite's
//! (`queue_contract.rs`).

mod common;

use std::time::Duration;

use common::{T0, depth_pair, event, pinned, receive_now, task};
use relay_core::{Queue, QueueConsumer, QueueMessage};
use relay_local::{LocalBackend, LocalOptions, LocalQueueName as Q};

const VIS: Duration = Duration::from_secs(30);

fn decode(body: &str) -> QueueMessage {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn delete_answers_whether_it_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = pinned(dir.path());
    queue.send_event(&event("evt_1", 1)).await.unwrap();
    queue.send_event(&event("evt_2", 2)).await.unwrap();
    let got = receive_now(&queue, Q::Events, 10, VIS).await.unwrap();
    assert_eq!(got.len(), 2);

    assert!(queue.delete(Q::Events, &got[0].receipt).await.unwrap());
    assert!(!queue.delete(Q::Events, &got[0].receipt).await.unwrap());
    // A handle only works on its own queue.
    assert!(!queue.delete(Q::Deliveries, &got[1].receipt).await.unwrap());
    assert_eq!(depth_pair(&queue, Q::Events).await.unwrap(), (0, 1));
    assert!(queue.delete(Q::Events, "not-a-handle").await.is_err());
}

#[tokio::test]
async fn receive_respects_max_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = pinned(dir.path());
    for i in 0..5 {
        queue
            .send_event(&event(&format!("evt_{i}"), i))
            .await
            .unwrap();
    }
    let first = receive_now(&queue, Q::Events, 3, VIS).await.unwrap();
    let rest = receive_now(&queue, Q::Events, 3, VIS).await.unwrap();
    let ids: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|m| match decode(&m.body) {
            QueueMessage::Event(e) => e.id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, ["evt_0", "evt_1", "evt_2", "evt_3", "evt_4"]);
    assert!(
        receive_now(&queue, Q::Events, 0, VIS)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn receive_fills_up_past_dead_lettered_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, clock) = pinned(dir.path());
    // Deliveries allow 4 receives in pinned().
    queue
        .send_delivery(&task("evt_poison", 1), 0)
        .await
        .unwrap();
    for i in 1..=4 {
        assert_eq!(
            receive_now(&queue, Q::Deliveries, 1, VIS)
                .await
                .unwrap()
                .len(),
            1
        );
        clock.set_secs(T0 + 30 * i);
    }
    for i in 0..3 {
        queue
            .send_delivery(&task(&format!("evt_{i}"), 1), 0)
            .await
            .unwrap();
    }
    let got = receive_now(&queue, Q::Deliveries, 3, VIS).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(depth_pair(&queue, Q::DeliveriesDlq).await.unwrap(), (1, 0));
}

#[tokio::test]
async fn a_delay_over_the_queue_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = pinned(dir.path());
    queue.send_delivery(&task("evt_1", 2), 900).await.unwrap();
    // Over the SQS limit: refused rather than silently accepted.
    assert!(queue.send_delivery(&task("evt_2", 2), 901).await.is_err());
    assert_eq!(depth_pair(&queue, Q::Deliveries).await.unwrap(), (0, 1));
}

#[tokio::test]
async fn redrive_moves_messages_in_flight_too() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = pinned(dir.path());
    for i in 0..3 {
        queue
            .dead_letter_delivery(&task(&format!("evt_{i}"), 8))
            .await
            .unwrap();
    }
    let peeked = receive_now(&queue, Q::DeliveriesDlq, 1, VIS).await.unwrap();
    assert_eq!(queue.redrive(Q::DeliveriesDlq).await.unwrap(), 3);
    assert_eq!(depth_pair(&queue, Q::DeliveriesDlq).await.unwrap(), (0, 0));
    // Even the one in flight in the DLQ moved, and is visible now.
    assert_eq!(depth_pair(&queue, Q::Deliveries).await.unwrap(), (3, 0));
    assert!(
        !queue
            .delete(Q::DeliveriesDlq, &peeked[0].receipt)
            .await
            .unwrap()
    );
    assert!(
        !queue
            .delete(Q::Deliveries, &peeked[0].receipt)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn delete_many_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = pinned(dir.path());
    for i in 0..4 {
        queue
            .send_event(&event(&format!("evt_{i}"), i))
            .await
            .unwrap();
    }
    let got = receive_now(&queue, Q::Events, 10, VIS).await.unwrap();
    let mut handles: Vec<String> = got.iter().take(3).map(|m| m.receipt.clone()).collect();
    handles.push("999999:1".into());
    assert_eq!(queue.delete_many(Q::Events, &handles).await.unwrap(), 3);
    assert_eq!(depth_pair(&queue, Q::Events).await.unwrap(), (0, 1));
    assert_eq!(queue.delete_many::<&str>(Q::Events, &[]).await.unwrap(), 0);
    // A malformed handle is a caller bug, reported as such before anything is deleted.
    assert!(
        queue
            .delete_many(Q::Events, &[got[3].receipt.as_str(), "garbage"])
            .await
            .is_err()
    );
    assert_eq!(depth_pair(&queue, Q::Events).await.unwrap(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_wakes_on_a_local_send() {
    let dir = tempfile::tempdir().unwrap();
    let queue = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move {
            queue
                .wait_for_messages(Q::Events, Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.send_event(&event("evt_1", 1)).await.unwrap();
    assert!(waiter.await.unwrap().unwrap());
    // A visible message answers at once.
    assert!(
        queue
            .wait_for_messages(Q::Events, Duration::ZERO)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn wait_times_out_on_an_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let queue = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    assert!(
        !queue
            .wait_for_messages(Q::Deliveries, Duration::from_millis(200))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn wait_wakes_when_a_delayed_message_comes_due() {
    let dir = tempfile::tempdir().unwrap();
    let queue = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    queue.send_delivery(&task("evt_1", 2), 1).await.unwrap();
    assert!(
        receive_now(&queue, Q::Deliveries, 1, VIS)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        queue
            .wait_for_messages(Q::Deliveries, Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        receive_now(&queue, Q::Deliveries, 1, VIS)
            .await
            .unwrap()
            .len(),
        1
    );
}
