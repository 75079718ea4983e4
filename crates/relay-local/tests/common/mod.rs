#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use relay_core::{
    AttemptRecord, BodyEncoding, DeliveryTask, EventEnvelope, FixedClock, HmacOptions,
    ProviderConfig, SignatureEncoding, SigningSecret, Source, Subscription,
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
        provider: ProviderConfig::Hmac(HmacOptions {
            header: "x-sig".into(),
            algorithm: serde_json::from_str("\"sha256\"").unwrap(),
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".into(),
            type_header: None,
            id_header: Some("x-id".into()),
            ..HmacOptions::default()
        }),
        secrets: vec!["s1".into(), "s2".into()],
        tolerance_secs: 300,
        created_at: T0,
    }
}

pub fn subscription(id: &str, source: &str) -> Subscription {
    Subscription {
        id: id.into(),
        source: source.into(),
        url: format!("https://example.com/{id}"),
        events: vec!["push".into(), "issues.*".into()],
        secrets: vec![SigningSecret {
            secret: "whsec_abc".into(),
            expires_at: None,
        }],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        headers: vec![("x-k".into(), "v".into())],
        created_at: T0,
        revision: 0,
    }
}

pub fn attempt(event_id: &str, sub: &str, n: u32, at: i64) -> AttemptRecord {
    AttemptRecord {
        event_id: event_id.into(),
        subscription_id: sub.into(),
        attempt: n,
        at,
        status: Some(500),
        outcome: relay_core::AttemptOutcome::HttpStatus,
        latency_ms: 12,
        response_excerpt: "oops".into(),
        next: relay_core::NextStep::RetryScheduled,
    }
}
