//! The queue adapters and the wiring against a moto server (`MOTO_ENDPOINT=http://127.0.0.1:5000`);
//! each test makes its own table and queues, so tests run in parallel against one server.
//! Without `MOTO_ENDPOINT` the moto tests fail saying so. The timeout test needs no server. The store's rules are checked by the contract suite (`tests/contract.rs`).

mod common;

use std::time::{Duration, Instant};

use common::{OPERATION_TIMEOUT, fresh_queues, fresh_table, moto_endpoint, sdk_config, unique};
use relay_aws::provision::QueueSet;
use relay_aws::{AwsAdapters, AwsSettings, RedriveMethod, SqsAdmin, adapters_from_sdk_config};
use relay_core::domain::model::{DeliveryTask, EventEnvelope, QueueMessage};
use relay_core::ports::Catalog;
use relay_core::ports::{Queue, QueueConsumer, QueueName, StoreError};

struct Stack {
    adapters: AwsAdapters,
    queues: QueueSet,
}

/// A fresh table and queue set on the moto of `MOTO_ENDPOINT` (the test fails without one).
async fn stack(test: &str) -> Stack {
    let endpoint = moto_endpoint(test);
    let sdk = sdk_config(&endpoint, OPERATION_TIMEOUT).await;
    let table = fresh_table(&sdk, "relay-test").await;
    let queues = fresh_queues(&sdk, "relay-test").await;
    let settings = queues.settings(table);
    Stack {
        adapters: adapters_from_sdk_config(&sdk, &settings),
        queues,
    }
}

fn event(id: &str, received_at: i64, body: &str) -> EventEnvelope {
    EventEnvelope {
        body: body.to_owned(),
        ..relay_core::testkit::contract::event(id, received_at)
    }
}

fn task(event: EventEnvelope, attempt: u32) -> DeliveryTask {
    DeliveryTask {
        event,
        subscription_id: "sub_1".into(),
        attempt,
        schedule_step: attempt.saturating_sub(1),
        not_before: 0,
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn queue_round_trips() {
    let stack = stack("queue_round_trips").await;
    let queue = &stack.adapters.queue;
    let admin: &SqsAdmin = &stack.adapters.admin;
    let q = &stack.queues;
    let evt = event("evt_q1", now_millis(), "{\"hello\":\"wörld\"}");

    queue.send_event(&evt).await.unwrap();
    let got = admin.receive(&q.events, 10, 1, 30).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].receive_count, 1);
    assert_eq!(
        serde_json::from_str::<QueueMessage>(&got[0].body).unwrap(),
        QueueMessage::Event(evt.clone())
    );
    assert_eq!(
        got[0].to_received().message_id,
        Some(got[0].message_id.clone())
    );
    // Hidden messages come back early when their visibility is cut, counted again.
    admin
        .change_visibility(&q.events, &got[0].receipt_handle, 0)
        .await
        .unwrap();
    let again = admin.receive(&q.events, 10, 1, 30).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    admin
        .delete(&q.events, &again[0].receipt_handle)
        .await
        .unwrap();
    assert_eq!(queue.depth(QueueName::Events).await.unwrap().total(), 0);

    // A delayed delivery stays out of sight until its delay has passed.
    queue.send_delivery(&task(evt.clone(), 2), 2).await.unwrap();
    assert!(
        admin
            .receive(&q.deliveries, 10, 0, 30)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(queue.depth(QueueName::Deliveries).await.unwrap().total(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = admin.receive(&q.deliveries, 10, 2, 30).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        serde_json::from_str::<QueueMessage>(&got[0].body).unwrap(),
        QueueMessage::Delivery(task(evt.clone(), 2))
    );
    admin
        .delete(&q.deliveries, &got[0].receipt_handle)
        .await
        .unwrap();
    // Delays beyond SQS's 15 minutes are clamped, not rejected.
    queue
        .send_delivery(&task(evt.clone(), 3), 5_000)
        .await
        .unwrap();

    queue
        .dead_letter_delivery(&task(evt.clone(), 8))
        .await
        .unwrap();
    let got = admin.receive(&q.deliveries_dlq, 10, 1, 30).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        serde_json::from_str::<QueueMessage>(&got[0].body).unwrap(),
        QueueMessage::Delivery(task(evt, 8))
    );
}

#[tokio::test]
async fn redrive_moves_everything_back() {
    let stack = stack("redrive_moves_everything_back").await;
    let queue = &stack.adapters.queue;
    let admin = &stack.adapters.admin;
    let q = &stack.queues;
    let bodies: Vec<String> = (0..13).map(|i| format!("{{\"n\":{i}}}")).collect();
    for body in &bodies {
        admin
            .send_raw(&q.events_dlq, body.clone(), 0)
            .await
            .unwrap();
    }
    let moved = queue.redrive(QueueName::EventsDlq).await.unwrap();
    assert_eq!(moved, 13);
    assert_eq!(queue.depth(QueueName::EventsDlq).await.unwrap().total(), 0);

    let mut received = Vec::new();
    while received.len() < bodies.len() {
        let batch = admin.receive(&q.events, 10, 1, 60).await.unwrap();
        if batch.is_empty() {
            break;
        }
        received.extend(batch.into_iter().map(|m| m.body));
    }
    received.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(received, expected);

    // Nothing to move is not an error.
    assert_eq!(queue.redrive(QueueName::EventsDlq).await.unwrap(), 0);
}

#[tokio::test]
async fn missing_queue_urls_fail_clearly() {
    let endpoint = moto_endpoint("missing_queue_urls_fail_clearly");
    let sdk = sdk_config(&endpoint, Duration::from_secs(3)).await;
    let adapters = adapters_from_sdk_config(&sdk, &AwsSettings::new("unused"));
    let err = adapters
        .queue
        .send_event(&event("evt_x", 0, ""))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RELAY_EVENTS_QUEUE_URL"), "{err}");
    let err = adapters
        .queue
        .dead_letter_delivery(&task(event("evt_x", 0, ""), 1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("RELAY_DELIVERIES_DLQ_URL"),
        "{err}"
    );
    // A table that does not exist is "unavailable", named by its error code.
    let err = adapters.store.get_source("a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("ResourceNotFoundException")),
        "{err}"
    );
}

/// An endpoint that accepts connections and never answers must fail within the operation
/// timeout, retry included, instead of hanging. The bound leaves a busy machine room (3 times
/// the budget); a client without the timeout would wait forever.
#[tokio::test]
async fn hung_endpoint_fails_within_the_operation_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let timeout = Duration::from_millis(1200);
    let sdk = sdk_config(&format!("http://{addr}"), timeout).await;
    let settings = AwsSettings {
        events_queue_url: Some(format!("http://{addr}/000000000000/q")),
        ..AwsSettings::new("t")
    };
    let adapters = adapters_from_sdk_config(&sdk, &settings);

    let started = Instant::now();
    let err = adapters.store.get_source("a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("timed out")),
        "{err}"
    );
    assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());

    let started = Instant::now();
    let err = adapters
        .queue
        .send_event(&event("evt_x", 0, ""))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());
    hold.abort();
}

/// `load_sdk_config` finds moto through `AWS_ENDPOINT_URL` (or the per-service variables) alone.
#[tokio::test]
async fn standard_endpoint_variables_are_honoured() {
    let configured = ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID"]
        .iter()
        .all(|v| std::env::var(v).is_ok());
    assert!(
        std::env::var("MOTO_ENDPOINT").is_ok() && configured,
        "standard_endpoint_variables_are_honoured needs MOTO_ENDPOINT, AWS_ENDPOINT_URL, \
         AWS_REGION and credentials (scripts/test sets them)"
    );
    let sdk = relay_aws::load_sdk_config(&relay_aws::Caller::Admin.policy()).await;
    let adapters = adapters_from_sdk_config(&sdk, &AwsSettings::new(unique("absent")));
    // Reaching DynamoDB (moto) shows up as its "no such table" answer, not a connection error.
    let err = adapters.store.list_sources().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("ResourceNotFoundException")),
        "{err}"
    );
}

/// Every body on `queue_url`, received (and left hidden) until two receives come back empty.
async fn drain_bodies(admin: &SqsAdmin, queue_url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let batch = admin.receive(queue_url, 10, 1, 120).await.unwrap();
        if batch.is_empty() {
            empty += 1;
        }
        bodies.extend(batch.into_iter().map(|m| m.body));
    }
    bodies.sort();
    bodies
}

/// Event messages as the receiver queues them, each a different event id.
fn event_bodies(prefix: &str, count: usize, body_bytes: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let evt = event(&format!("evt_{prefix}{i:03}"), 0, &"x".repeat(body_bytes));
            serde_json::to_string(&QueueMessage::Event(evt)).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn copy_redrive_moves_every_message_once_with_its_body() {
    let stack = stack("copy_redrive_moves_every_message_once_with_its_body").await;
    let admin = &stack.adapters.admin;
    let q = &stack.queues;
    let bodies = event_bodies("c", 25, 40);
    for body in &bodies {
        admin
            .send_raw(&q.events_dlq, body.clone(), 0)
            .await
            .unwrap();
    }
    let mut reports = Vec::new();
    let moved = admin
        .redrive_by_copy(&q.events_dlq, &q.events, |p| reports.push(*p))
        .await
        .unwrap();
    assert_eq!(moved, 25);
    assert!(reports.iter().all(|p| p.method == RedriveMethod::Copy));
    assert_eq!(reports.last().map(|p| p.moved), Some(25));
    let queue = &stack.adapters.queue;
    assert_eq!(queue.depth(QueueName::EventsDlq).await.unwrap().total(), 0);
    let mut expected = bodies.clone();
    expected.sort();
    // Each body exactly once: the same event ids, nothing lost, nothing doubled.
    assert_eq!(drain_bodies(admin, &q.events).await, expected);
}

#[tokio::test]
async fn a_copy_redrive_whose_sends_fail_leaves_the_unsent_in_the_dlq() {
    let stack = stack("a_copy_redrive_whose_sends_fail_leaves_the_unsent_in_the_dlq").await;
    let admin = &stack.adapters.admin;
    let q = &stack.queues;
    // A destination that refuses bodies over 1 KiB: the large messages' sends fail.
    let small_only = admin
        .client()
        .create_queue()
        .queue_name(unique("relay-test-small"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
            "1024",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let small = event_bodies("s", 20, 40);
    let large = event_bodies("l", 5, 2_000);
    for body in small.iter().chain(&large) {
        admin
            .send_raw(&q.events_dlq, body.clone(), 0)
            .await
            .unwrap();
    }
    let err = admin
        .redrive_by_copy(&q.events_dlq, &small_only, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SendMessage"), "{err}");

    // Every message is in exactly one of the two queues, and every unsent one is in the DLQ,
    // visible again for the next redrive.
    let arrived = drain_bodies(admin, &small_only).await;
    let left = drain_bodies(admin, &q.events_dlq).await;
    for body in &large {
        assert!(
            left.contains(body),
            "an unsent message is not back in the DLQ"
        );
    }
    let mut all: Vec<String> = arrived.iter().chain(&left).cloned().collect();
    all.sort();
    let mut expected: Vec<String> = small.iter().chain(&large).cloned().collect();
    expected.sort();
    assert_eq!(all, expected, "lost or doubled");
    assert!(arrived.iter().all(|b| small.contains(b)));
}

#[tokio::test]
async fn redrive_without_move_tasks_falls_back_to_copying() {
    let stack = stack("redrive_without_move_tasks_falls_back_to_copying").await;
    let admin = &stack.adapters.admin;
    let q = &stack.queues;
    let bodies = event_bodies("r", 25, 40);
    for body in &bodies {
        admin
            .send_raw(&q.deliveries_dlq, body.clone(), 0)
            .await
            .unwrap();
    }
    // Moto answers StartMessageMoveTask 500, so the port's redrive copies.
    let queue = &stack.adapters.queue;
    let moved = queue.redrive(QueueName::DeliveriesDlq).await.unwrap();
    assert_eq!(moved, 25);
    assert_eq!(
        queue.depth(QueueName::DeliveriesDlq).await.unwrap().total(),
        0
    );
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(drain_bodies(admin, &q.deliveries).await, expected);
}
