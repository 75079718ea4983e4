#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use relay_core::providers::{HmacOptions, SignatureEncoding};
use relay_core::{
    BodyEncoding, DeliveryTask, EventEnvelope, FixedClock, QueueConsumer, QueueError, QueueName,
    ReceivedMessage, Source,
};
use relay_local::{LocalBackend, LocalOptions};

pub const T0: i64 = 1_700_000_000;

/// A backend whose clock stays at `T0` until the test moves it.
pub fn pinned(dir: &Path) -> (LocalBackend, Arc<FixedClock>) {
    let clock = FixedClock::at_secs(T0);
    let options = LocalOptions {
        events_max_receive_count: 3,
        deliveries_max_receive_count: 4,
        clock: clock.clone(),
        ..LocalOptions::default()
    };
    (LocalBackend::open(dir, options).unwrap(), clock)
}

pub fn event(id: &str, received_at: i64) -> EventEnvelope {
    EventEnvelope {
        id: id.into(),
        source: "gh".into(),
        event_type: "push".into(),
        content_type: Some("application/json".into()),
        received_at,
        body: format!("{{\"id\":\"{id}\"}}"),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    }
}

pub fn task(id: &str, attempt: u32) -> DeliveryTask {
    DeliveryTask {
        event: event(id, 1),
        subscription_id: "sub_1".into(),
        attempt,
        schedule_step: attempt.saturating_sub(1),
        not_before: 0,
    }
}

pub fn source(name: &str) -> Source {
    Source {
        name: name.into(),
        provider: HmacOptions {
            header: "x-sig".into(),
            algorithm: serde_json::from_str("\"sha256\"").unwrap(),
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".into(),
            type_header: None,
            id_header: Some("x-id".into()),
            ..HmacOptions::default()
        }
        .into(),
        secrets: vec!["s1".into(), "s2".into()],
        tolerance_secs: 300,
        created_at: T0,
        reconcile: None,
    }
}

/// The contract suite's fixtures, shared rather than restated (not every test binary uses both).
#[allow(unused_imports)]
pub use relay_core::testkit::contract::{attempt, subscription};

/// What is visible now on `queue`, through the queue port (no wait).
pub async fn receive_now(
    backend: &LocalBackend,
    queue: QueueName,
    max: usize,
    visibility: Duration,
) -> Result<Vec<ReceivedMessage>, QueueError> {
    QueueConsumer::receive(backend, queue, max, Duration::ZERO, visibility).await
}

/// `(visible, in flight or delayed)` message counts of `queue`, through the queue port.
pub async fn depth_pair(
    backend: &LocalBackend,
    queue: QueueName,
) -> Result<(u64, u64), QueueError> {
    let depth = backend.depth(queue).await?;
    Ok((depth.visible, depth.in_flight + depth.delayed))
}
