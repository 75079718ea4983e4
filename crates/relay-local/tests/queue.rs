mod common;

use std::time::Duration;

use common::{T0, event, pinned, task};
use relay_core::{Queue, QueueMessage};
use relay_local::{LocalBackend, LocalOptions, LocalQueueName as Q};

const VIS: Duration = Duration::from_secs(30);

fn decode(body: &str) -> QueueMessage {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn send_receive_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = pinned(dir.path());
    queue.send_event(&event("evt_1", 1)).await.unwrap();
    queue.send_event(&event("evt_2", 2)).await.unwrap();
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (2, 0));

    let got = queue.receive(Q::Events, 10, VIS).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(decode(&got[0].body), QueueMessage::Event(event("evt_1", 1)));
    assert_eq!(decode(&got[1].body), QueueMessage::Event(event("evt_2", 2)));
    assert!(got.iter().all(|m| m.receive_count == 1));
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (0, 2));
    // Hidden while in flight.
    assert!(queue.receive(Q::Events, 10, VIS).await.unwrap().is_empty());

    assert!(queue.delete(Q::Events, &got[0].receipt).await.unwrap());
    assert!(!queue.delete(Q::Events, &got[0].receipt).await.unwrap());
    // A handle only works on its own queue.
    assert!(!queue.delete(Q::Deliveries, &got[1].receipt).await.unwrap());
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (0, 1));
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
    let first = queue.receive(Q::Events, 3, VIS).await.unwrap();
    let rest = queue.receive(Q::Events, 3, VIS).await.unwrap();
    let ids: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|m| match decode(&m.body) {
            QueueMessage::Event(e) => e.id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, ["evt_0", "evt_1", "evt_2", "evt_3", "evt_4"]);
    assert!(queue.receive(Q::Events, 0, VIS).await.unwrap().is_empty());
}

#[tokio::test]
async fn visibility_timeout_and_stale_handles() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, clock) = pinned(dir.path());
    queue.send_event(&event("evt_1", 1)).await.unwrap();
    let first = queue.receive(Q::Events, 1, VIS).await.unwrap();
    assert_eq!(first.len(), 1);

    clock.set_secs(T0 + 29);
    assert!(queue.receive(Q::Events, 1, VIS).await.unwrap().is_empty());
    clock.set_secs(T0 + 30);
    let second = queue.receive(Q::Events, 1, VIS).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(first[0].receipt, second[0].receipt);

    // The first consumer's handle went stale with the second receive.
    assert!(!queue.delete(Q::Events, &first[0].receipt).await.unwrap());
    assert!(
        !queue
            .change_visibility(Q::Events, &first[0].receipt, 0)
            .await
            .unwrap()
    );
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (0, 1));
    assert!(queue.delete(Q::Events, &second[0].receipt).await.unwrap());
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn too_many_receives_move_to_the_dlq() {
    let dir = tempfile::tempdir().unwrap();
    // pinned(): events_max_receive_count = 3.
    let (queue, clock) = pinned(dir.path());
    queue.send_event(&event("evt_1", 1)).await.unwrap();
    queue.send_event(&event("evt_2", 2)).await.unwrap();
    let mut now = T0;
    for round in 1..=3 {
        let got = queue.receive(Q::Events, 1, VIS).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, round);
        assert_eq!(decode(&got[0].body), QueueMessage::Event(event("evt_1", 1)));
        // evt_2 is handled at once each round, so only evt_1 keeps failing.
        if round == 1 {
            let other = queue.receive(Q::Events, 1, VIS).await.unwrap();
            assert!(queue.delete(Q::Events, &other[0].receipt).await.unwrap());
        }
        now += 30;
        clock.set_secs(now);
    }
    // The fourth receive would exceed the limit: the message goes to the DLQ instead.
    assert!(queue.receive(Q::Events, 10, VIS).await.unwrap().is_empty());
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (0, 0));
    assert_eq!(queue.depth(Q::EventsDlq).await.unwrap(), (1, 0));
    let dead = queue.receive(Q::EventsDlq, 10, VIS).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        decode(&dead[0].body),
        QueueMessage::Event(event("evt_1", 1))
    );
    assert_eq!(dead[0].receive_count, 4);
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
        assert_eq!(queue.receive(Q::Deliveries, 1, VIS).await.unwrap().len(), 1);
        clock.set_secs(T0 + 30 * i);
    }
    for i in 0..3 {
        queue
            .send_delivery(&task(&format!("evt_{i}"), 1), 0)
            .await
            .unwrap();
    }
    let got = queue.receive(Q::Deliveries, 3, VIS).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(queue.depth(Q::DeliveriesDlq).await.unwrap(), (1, 0));
}

#[tokio::test]
async fn delayed_deliveries_and_the_delivery_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, clock) = pinned(dir.path());
    queue.send_delivery(&task("evt_1", 2), 60).await.unwrap();
    assert_eq!(queue.depth(Q::Deliveries).await.unwrap(), (0, 1));
    assert!(
        queue
            .receive(Q::Deliveries, 10, VIS)
            .await
            .unwrap()
            .is_empty()
    );
    clock.set_secs(T0 + 60);
    let got = queue.receive(Q::Deliveries, 10, VIS).await.unwrap();
    assert_eq!(
        decode(&got[0].body),
        QueueMessage::Delivery(task("evt_1", 2))
    );

    // Over the SQS limit: refused rather than silently accepted.
    assert!(queue.send_delivery(&task("evt_2", 2), 901).await.is_err());

    queue.dead_letter_delivery(&task("evt_3", 8)).await.unwrap();
    assert_eq!(queue.depth(Q::DeliveriesDlq).await.unwrap(), (1, 0));
    let dead = queue.receive(Q::DeliveriesDlq, 10, VIS).await.unwrap();
    assert_eq!(
        decode(&dead[0].body),
        QueueMessage::Delivery(task("evt_3", 8))
    );
}

#[tokio::test]
async fn change_visibility_hides_and_reveals() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, clock) = pinned(dir.path());
    queue.send_event(&event("evt_1", 1)).await.unwrap();
    let got = queue.receive(Q::Events, 1, VIS).await.unwrap();
    let handle = &got[0].receipt;

    // An early wake-up hides itself for longer than the receive's visibility.
    assert!(
        queue
            .change_visibility(Q::Events, handle, 3600)
            .await
            .unwrap()
    );
    clock.set_secs(T0 + 3599);
    assert!(queue.receive(Q::Events, 1, VIS).await.unwrap().is_empty());
    clock.set_secs(T0 + 3600);
    assert_eq!(queue.receive(Q::Events, 1, VIS).await.unwrap().len(), 1);
    assert!(!queue.change_visibility(Q::Events, handle, 0).await.unwrap());

    assert!(
        queue
            .change_visibility(Q::Events, handle, 12 * 3600 + 1)
            .await
            .is_err()
    );

    // Zero makes the message visible at once.
    queue.send_event(&event("evt_2", 2)).await.unwrap();
    let got = queue.receive(Q::Events, 1, VIS).await.unwrap();
    assert!(
        queue
            .change_visibility(Q::Events, &got[0].receipt, 0)
            .await
            .unwrap()
    );
    assert_eq!(queue.receive(Q::Events, 1, VIS).await.unwrap().len(), 1);
}

#[tokio::test]
async fn redrive_moves_everything_back_with_fresh_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = pinned(dir.path());
    for i in 0..3 {
        queue
            .dead_letter_delivery(&task(&format!("evt_{i}"), 8))
            .await
            .unwrap();
    }
    let peeked = queue.receive(Q::DeliveriesDlq, 1, VIS).await.unwrap();
    assert_eq!(
        queue
            .redrive(Q::DeliveriesDlq, Q::Deliveries)
            .await
            .unwrap(),
        3
    );
    assert_eq!(queue.depth(Q::DeliveriesDlq).await.unwrap(), (0, 0));
    // Even the one in flight in the DLQ moved, and is visible now.
    assert_eq!(queue.depth(Q::Deliveries).await.unwrap(), (3, 0));
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

    let back = queue.receive(Q::Deliveries, 10, VIS).await.unwrap();
    assert_eq!(back.len(), 3);
    assert!(back.iter().all(|m| m.receive_count == 1));
    assert_eq!(
        queue
            .redrive(Q::DeliveriesDlq, Q::Deliveries)
            .await
            .unwrap(),
        0
    );
    assert!(queue.redrive(Q::Events, Q::Events).await.is_err());
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
    let got = queue.receive(Q::Events, 10, VIS).await.unwrap();
    let mut handles: Vec<String> = got.iter().take(3).map(|m| m.receipt.clone()).collect();
    handles.push("999999:1".into());
    assert_eq!(queue.delete_many(Q::Events, &handles).await.unwrap(), 3);
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (0, 1));
    assert_eq!(queue.delete_many::<&str>(Q::Events, &[]).await.unwrap(), 0);
    // A malformed handle is a caller bug, reported as such before anything is deleted.
    assert!(
        queue
            .delete_many(Q::Events, &[got[3].receipt.as_str(), "garbage"])
            .await
            .is_err()
    );
    assert_eq!(queue.depth(Q::Events).await.unwrap(), (0, 1));
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
        queue
            .receive(Q::Deliveries, 1, VIS)
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
    assert_eq!(queue.receive(Q::Deliveries, 1, VIS).await.unwrap().len(), 1);
}
