//! Receiver core cost per 1 KiB event (verify + parse + build the queue message, queue
//! in-process) beside one raw HMAC-SHA256 over the same bytes, and a subscription's content
//! filter per event: the first filter of an event pays for parsing the body, the others of the
//! same event do not.
//!
//! `cargo bench -p relay-core --bench core`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use relay_core::domain::filter::{EventInput, Filter};
use relay_core::domain::model::{
    BodyEncoding, DeliveryTask, EventEnvelope, ProviderConfig, QueueMessageRef, Source,
};
use relay_core::ports::{DeliveryLane, Queue, QueueError};
use relay_core::providers::InboundRequest;
use relay_core::receive::{Receiver, ReceiverConfig};
use relay_core::signing::hmac_sha256;
use relay_core::testkit::MemoryStore;

const SECRET: &str = "bench-secret";

/// Builds the queue message exactly as an adapter would send it, then drops it.
struct SerializingQueue;

#[async_trait]
impl Queue for SerializingQueue {
    async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError> {
        let message = QueueMessageRef::Event(event)
            .to_json()
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        black_box(message);
        Ok(())
    }
    async fn send_delivery_on(
        &self,
        _: DeliveryLane,
        _: &DeliveryTask,
        _: u32,
    ) -> Result<(), QueueError> {
        Ok(())
    }
    async fn dead_letter_delivery(&self, _: &DeliveryTask) -> Result<(), QueueError> {
        Ok(())
    }
}

/// A realistic 1 KiB GitHub `issues` payload.
fn body_1k() -> Vec<u8> {
    let mut body =
        String::from(r#"{"action":"opened","issue":{"number":1347,"title":"Found a bug","body":""#);
    while body.len() < 1024 - 80 {
        body.push_str("lorem ipsum dolor sit amet ");
    }
    body.push_str(r#"","user":{"login":"octocat","id":1}},"repository":{"id":1296269}}"#);
    body.into_bytes()
}

fn request(body: &Bytes) -> InboundRequest {
    let signature = format!(
        "sha256={}",
        hex::encode(hmac_sha256(SECRET.as_bytes(), &[body]))
    );
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("x-github-event", HeaderValue::from_static("issues"));
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&signature).unwrap_or(HeaderValue::from_static("")),
    );
    InboundRequest {
        method: Method::POST,
        path: "/github".into(),
        query: None,
        headers,
        body: body.clone(),
    }
}

fn bench(c: &mut Criterion) {
    let body = Bytes::from(body_1k());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let source = Source {
        name: "github".into(),
        provider: ProviderConfig::named("github").unwrap(),
        secrets: vec![SECRET.into()],
        tolerance_secs: 300,
        created_at: 0,
        reconcile: None,
    };
    let receiver = Receiver::new(
        Arc::new(MemoryStore::with_sources([source])),
        Arc::new(SerializingQueue),
        relay_core::ports::clock::system(),
        ReceiverConfig {
            cache_ttl: Duration::from_secs(3600),
            ..ReceiverConfig::default()
        },
    );
    let prepared = request(&body);

    let mut group = c.benchmark_group("receive_1KiB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("raw_hmac_sha256", |b| {
        b.iter(|| black_box(hmac_sha256(SECRET.as_bytes(), &[black_box(&body)])))
    });
    // The request is built by the adapter (Lambda or dev server), outside the core's cost.
    group.bench_function("receiver_core", |b| {
        b.iter_batched(
            || prepared.clone(),
            |request| {
                let reply = runtime
                    .block_on(receiver.handle(black_box(request)))
                    .reply();
                assert_eq!(reply.status, 202);
                black_box(reply)
            },
            BatchSize::SmallInput,
        )
    });
    let event = EventEnvelope {
        id: "evt_bench".into(),
        source: "github".into(),
        event_type: "issues".into(),
        content_type: Some("application/json".into()),
        received_at: 0,
        body: String::from_utf8_lossy(&body).into_owned(),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    };
    // Three clauses, all matching (so every one is evaluated).
    let filter = Filter::parse(
        r#"{"body":{"action":{"$in":["opened","reopened"]},"issue":{"number":{"$gt":1000},"user":{"login":{"$startsWith":"octo"}}}}}"#,
    )
    .unwrap_or_else(|e| panic!("bench filter: {e}"));
    group.bench_function("filter_3_clauses_with_body_parse", |b| {
        b.iter(|| {
            let input = EventInput::new(black_box(&event));
            assert!(filter.matches(&input));
        })
    });
    let parsed = EventInput::new(&event);
    group.bench_function("filter_3_clauses_body_parsed", |b| {
        b.iter(|| assert!(filter.matches(black_box(&parsed))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
