//! Events whose body is kept in the body store: read once per batch, checked against its hash,
//! delivered byte for byte (content filters included), and dead-lettered as `payload_expired`
//! when the body is gone.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Fanout, FanoutConfig};
use crate::domain::attempt::{Attempt, AttemptResult};
use crate::domain::filter::Filter;
use crate::domain::model::{
    AttemptOutcome, BodyEncoding, DeliveryTask, Disposition, EventEnvelope, NextStep,
    ProviderConfig, QueueMessage, ReceivedMessage, Source,
};
use crate::domain::retry::RetrySchedule;
use crate::outbound::delivery::Outcome;
use crate::ports::bodies::{claim_check, sha256_hex};
use crate::ports::clock::FixedClock;
use crate::ports::{BodyStore, BodyStoreError, Catalog, Deliverer, EventArchive};
use crate::testkit::{MemoryBodies, MemoryStore, RecordingQueue};

const NOW: i64 = 1_700_000_000;

/// A body over the inline limit: a JSON object whose `action` a filter can look at.
fn large_body() -> Bytes {
    let padding = "x".repeat(crate::ports::bodies::INLINE_BODY_MAX_BYTES + 10_000);
    Bytes::from(format!(r#"{{"action":"opened","padding":"{padding}"}}"#))
}

fn stored_event(id: &str, body: &[u8]) -> EventEnvelope {
    EventEnvelope {
        id: id.into(),
        source: "gh".into(),
        event_type: "push".into(),
        content_type: Some("application/json".into()),
        received_at: NOW * 1000,
        body: String::new(),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: Some(claim_check(id, body)),
    }
}

/// The memory body store, counting reads.
#[derive(Default)]
struct CountingBodies {
    inner: MemoryBodies,
    gets: AtomicUsize,
}

#[async_trait]
impl BodyStore for CountingBodies {
    async fn put(&self, key: &str, body: Bytes, sha256: &str) -> Result<(), BodyStoreError> {
        self.inner.put(key, body, sha256).await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BodyStoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), BodyStoreError> {
        self.inner.delete(key).await
    }
}

/// Answers 200 and keeps every body it was given, by subscription.
#[derive(Default)]
struct KeepingDeliverer {
    bodies: Mutex<Vec<(String, Bytes)>>,
}

#[async_trait]
impl Deliverer for KeepingDeliverer {
    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
    async fn deliver(&self, attempt: Attempt<'_>) -> AttemptResult {
        self.bodies
            .lock()
            .unwrap()
            .push((attempt.subscription.id.clone(), attempt.body.clone()));
        AttemptResult {
            outcome: Outcome::Delivered { status: 200 },
            latency: Duration::from_millis(1),
            excerpt: String::new(),
            retry_after: None,
        }
    }
}

struct Rig {
    store: Arc<MemoryStore>,
    queue: Arc<RecordingQueue>,
    bodies: Arc<CountingBodies>,
    deliverer: Arc<KeepingDeliverer>,
    fanout: Fanout,
}

/// Subscriptions `sub_a` (every push) and `sub_f` (pushes whose body says `"action":"opened"`).
async fn rig(with_store: bool) -> Rig {
    let store = Arc::new(MemoryStore::with_sources([Source {
        name: "gh".into(),
        provider: ProviderConfig::named("github").unwrap(),
        secrets: vec!["s".into()],
        tolerance_secs: 300,
        created_at: 0,
        reconcile: None,
    }]));
    store
        .put_subscription(&crate::testkit::contract::subscription("sub_a", "gh"))
        .await
        .unwrap();
    let mut filtered = crate::testkit::contract::subscription("sub_f", "gh");
    filtered.filter = Some(Filter::parse(r#"{"body":{"action":"opened"}}"#).unwrap());
    store.put_subscription(&filtered).await.unwrap();
    let queue = Arc::new(RecordingQueue::default());
    let bodies = Arc::new(CountingBodies::default());
    let deliverer = Arc::new(KeepingDeliverer::default());
    let fanout = Fanout::with_deliverer(
        store.clone(),
        queue.clone(),
        deliverer.clone(),
        FixedClock::at_secs(NOW),
        FanoutConfig {
            retry: RetrySchedule::parse("5s,5m").unwrap().with_jitter(0.0),
            cache_ttl: Duration::ZERO,
            ..FanoutConfig::default()
        },
    );
    let fanout = if with_store {
        fanout.with_bodies(bodies.clone())
    } else {
        fanout
    };
    Rig {
        store,
        queue,
        bodies,
        deliverer,
        fanout,
    }
}

fn message(body: &QueueMessage, receipt: &str) -> ReceivedMessage {
    ReceivedMessage {
        receipt: receipt.into(),
        message_id: Some(receipt.into()),
        body: serde_json::to_string(body).unwrap(),
        receive_count: 1,
    }
}

fn delivery(event: &EventEnvelope, subscription_id: &str, attempt: u32) -> QueueMessage {
    QueueMessage::Delivery(DeliveryTask {
        event: event.clone(),
        subscription_id: subscription_id.into(),
        attempt,
        schedule_step: 0,
        not_before: 0,
    })
}

#[tokio::test]
async fn a_stored_body_is_read_once_per_batch_and_delivered_byte_for_byte() {
    let rig = rig(true).await;
    let body = large_body();
    let event = stored_event("evt_big", &body);
    let stored = event.stored_body.clone().unwrap();
    rig.bodies
        .put(&stored.key, body.clone(), &stored.sha256)
        .await
        .unwrap();
    // The event, and a redriven delivery of the same event, in one batch.
    let batch = vec![
        message(&QueueMessage::Event(event.clone()), "r-event"),
        message(&delivery(&event, "sub_a", 7), "r-delivery"),
    ];
    let dispositions = rig.fanout.handle_batch(batch, None).await;
    assert!(
        dispositions.iter().all(|(_, d)| *d == Disposition::Delete),
        "{dispositions:?}"
    );
    assert_eq!(
        rig.bodies.gets.load(Ordering::SeqCst),
        1,
        "one read per batch"
    );
    let mut delivered = rig.deliverer.bodies.lock().unwrap().clone();
    delivered.sort_by(|a, b| a.0.cmp(&b.0));
    let to: Vec<&str> = delivered.iter().map(|(s, _)| s.as_str()).collect();
    // The filtered subscription looked into the stored body.
    assert_eq!(to, ["sub_a", "sub_a", "sub_f"]);
    for (sub, sent) in &delivered {
        assert_eq!(sha256_hex(sent), sha256_hex(&body), "{sub}");
        assert_eq!(sent, &body, "{sub}");
    }
    // Nothing queued carries the body itself; the archived event carries the claim check.
    assert!(rig.queue.scheduled().is_empty());
    let archived = rig.store.get_event("evt_big").await.unwrap();
    if let Some(archived) = archived {
        assert_eq!(archived.stored_body, Some(stored));
        assert!(archived.body.is_empty());
    }
}

#[tokio::test]
async fn a_gone_body_dead_letters_every_delivery_as_payload_expired() {
    let rig = rig(true).await;
    let event = stored_event("evt_gone", &large_body());
    let disposition = rig
        .fanout
        .handle_message(&message(&QueueMessage::Event(event.clone()), "r-1"), None)
        .await;
    assert_eq!(disposition, Disposition::Delete, "not retried forever");
    assert!(
        rig.deliverer.bodies.lock().unwrap().is_empty(),
        "nothing sent"
    );
    let mut parked: Vec<String> = rig
        .queue
        .parked()
        .into_iter()
        .map(|t| t.subscription_id)
        .collect();
    parked.sort();
    // Without the body no filter can be evaluated: every subscription taking the type is told.
    assert_eq!(parked, ["sub_a", "sub_f"]);
    // Parked as the attempt a redrive makes next.
    assert!(
        rig.queue
            .parked()
            .iter()
            .all(|t| t.attempt == 2 && t.schedule_step == 0)
    );
    let log = rig.store.event_attempts("evt_gone").await.unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    for record in &log {
        assert_eq!(record.outcome, AttemptOutcome::PayloadExpired);
        assert_eq!(record.next, NextStep::DeadLettered);
        assert_eq!(record.status, None);
    }
    assert_eq!(
        serde_json::to_value(AttemptOutcome::PayloadExpired).unwrap(),
        "payload_expired"
    );

    // A retry from the deliveries queue whose body is gone meanwhile: dead-lettered as well.
    let disposition = rig
        .fanout
        .handle_message(&message(&delivery(&event, "sub_a", 2), "r-2"), None)
        .await;
    assert_eq!(disposition, Disposition::Delete);
    assert_eq!(rig.queue.parked().len(), 3);
    assert_eq!(rig.queue.parked()[2].attempt, 3);
    let log = rig.store.event_attempts("evt_gone").await.unwrap();
    assert!(
        log.iter().any(|r| r.attempt == 2
            && r.subscription_id == "sub_a"
            && r.outcome == AttemptOutcome::PayloadExpired
            && r.next == NextStep::DeadLettered),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_body_that_does_not_match_its_hash_is_never_delivered() {
    let rig = rig(true).await;
    let event = stored_event("evt_bad", &large_body());
    let key = event.stored_body.clone().unwrap().key;
    rig.bodies
        .put(&key, Bytes::from_static(b"{\"action\":\"opened\"}"), "")
        .await
        .unwrap();
    for message in [
        message(&QueueMessage::Event(event.clone()), "r-1"),
        message(&delivery(&event, "sub_a", 2), "r-2"),
    ] {
        // Left for the DLQ, as an undecodable body is.
        assert_eq!(
            rig.fanout.handle_message(&message, None).await,
            Disposition::Retry
        );
    }
    assert!(rig.deliverer.bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_a_body_store_a_stored_body_is_retried_not_dropped() {
    let rig = rig(false).await;
    let event = stored_event("evt_nostore", &large_body());
    let disposition = rig
        .fanout
        .handle_message(&message(&QueueMessage::Event(event), "r-1"), None)
        .await;
    assert_eq!(disposition, Disposition::Retry);
    assert!(rig.queue.parked().is_empty());
    assert!(rig.deliverer.bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_replay_reads_the_stored_body_for_content_filters() {
    use crate::admin::events::plan_replay_with_bodies;
    let rig = rig(true).await;
    let mut closed = crate::testkit::contract::subscription("sub_x", "gh");
    closed.filter = Some(Filter::parse(r#"{"body":{"action":"closed"}}"#).unwrap());
    rig.store.put_subscription(&closed).await.unwrap();
    let body = large_body();
    let event = stored_event("evt_replay", &body);
    rig.store
        .record_event(&event, &[], NOW + 86_400)
        .await
        .unwrap();
    let stored = event.stored_body.clone().unwrap();
    rig.bodies
        .put(&stored.key, body.clone(), &stored.sha256)
        .await
        .unwrap();
    let planned = |bodies: Option<&'static str>| {
        let rig = &rig;
        async move {
            let store: Option<&dyn BodyStore> =
                bodies.map(|_| rig.bodies.as_ref() as &dyn BodyStore);
            let plan = plan_replay_with_bodies(
                rig.store.as_ref(),
                rig.store.as_ref(),
                store,
                "evt_replay",
                None,
            )
            .await;
            plan.map(|p| {
                let mut subs: Vec<String> =
                    p.tasks.into_iter().map(|t| t.subscription_id).collect();
                subs.sort();
                subs
            })
        }
    };
    // The filters look into the stored body: "opened" matches, "closed" does not.
    assert_eq!(planned(Some("bodies")).await.unwrap(), ["sub_a", "sub_f"]);
    // Without the body store the body cannot be read: an error, not a silent skip.
    assert!(planned(None).await.is_err());
    // The body gone: every subscription taking the type, as the fanout tells each of them.
    rig.bodies.delete(&stored.key).await.unwrap();
    assert_eq!(
        planned(Some("bodies")).await.unwrap(),
        ["sub_a", "sub_f", "sub_x"]
    );
}
