//! The queue adapters and the wiring against a moto server (`MOTO_ENDPOINT=http://127.0.0.1:5000`);
//! each test makes its own table and queues, so tests run in parallel against one server.
//! Without `MOTO_ENDPOINT` the moto tests print a note and pass. The timeout test needs no
//! server. The store's rules are checked by the contract suite (`tests/contract.rs`).

mod common;

use std::time::{Duration, Instant};

use common::{
    OPERATION_TIMEOUT, fresh_queues, fresh_table, moto_endpoint_or_skip, sdk_config, unique,
};
use relay_aws::provision::QueueSet;
use relay_aws::{AwsAdapters, AwsSettings, RedriveMethod, SqsAdmin, adapters_from_sdk_config};
use relay_core::model::{DeliveryTask, EventEnvelope, QueueMessage};
use relay_core::ports::Catalog;
use relay_core::ports::{Queue, StoreError};

struct Stack {
    adapters: AwsAdapters,
    queues: QueueSet,
}

/// A fresh table and queue set on moto, or `None` (with a note) when no server is configured.
async fn stack(test: &str) -> Option<Stack> {
    let endpoint = moto_endpoint_or_skip(test)?;
    let sdk = sdk_config(&endpoint, OPERATION_TIMEOUT).await;
    let table = fresh_table(&sdk, "relay-test").await;
    let queues = fresh_queues(&sdk, "relay-test").await;
    let settings = queues.settings(table);
    Some(Stack {
        adapters: adapters_from_sdk_config(&sdk, &settings),
        queues,
    })
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
    let Some(stack) = stack("queue_round_trips").await else {
        return;
    };
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
    assert_eq!(admin.queue_depth(&q.events).await.unwrap().total(), 0);

    // A delayed delivery stays out of sight until its delay has passed.
    queue.send_delivery(&task(evt.clone(), 2), 2).await.unwrap();
    assert!(
        admin
            .receive(&q.deliveries, 10, 0, 30)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(admin.queue_depth(&q.deliveries).await.unwrap().total(), 1);
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
    let Some(stack) = stack("redrive_moves_everything_back").await else {
        return;
    };
    let admin = &stack.adapters.admin;
    let q = &stack.queues;
    let bodies: Vec<String> = (0..13).map(|i| format!("{{\"n\":{i}}}")).collect();
    for body in &bodies {
        admin
            .send_raw(&q.events_dlq, body.clone(), 0)
            .await
            .unwrap();
    }
    let mut reports = Vec::new();
    let moved = admin
        .redrive(&q.events_dlq, &q.events, |p| reports.push(*p))
        .await
        .unwrap();
    assert_eq!(moved, 13);
    assert_eq!(reports.last().map(|p| p.moved), Some(13));
    assert!(
        reports
            .iter()
            .all(|p| p.method == RedriveMethod::Copy || p.method == RedriveMethod::MoveTask)
    );
    assert_eq!(admin.queue_depth(&q.events_dlq).await.unwrap().total(), 0);

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
    assert_eq!(
        admin
            .redrive(&q.events_dlq, &q.events, |_| {})
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn missing_queue_urls_fail_clearly() {
    let Some(endpoint) = moto_endpoint_or_skip("missing_queue_urls_fail_clearly") else {
        return;
    };
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
    if std::env::var("MOTO_ENDPOINT").is_err() || !configured {
        eprintln!(
            "skipping standard_endpoint_variables_are_honoured: needs MOTO_ENDPOINT, \
             AWS_ENDPOINT_URL, AWS_REGION and credentials"
        );
        return;
    }
    let sdk = relay_aws::load_sdk_config(Duration::from_secs(3)).await;
    let adapters = adapters_from_sdk_config(&sdk, &AwsSettings::new(unique("absent")));
    // Reaching DynamoDB (moto) shows up as its "no such table" answer, not a connection error.
    let err = adapters.store.list_sources().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("ResourceNotFoundException")),
        "{err}"
    );
}
