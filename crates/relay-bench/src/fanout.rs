//! Fanout wall time: N events × M subscriptions in one batch, the subscriber answering after a
//! fixed delay. Ideal is one delay: every delivery in flight at once.

use std::time::{Duration, Instant};

use relay_core::Disposition;
use relay_core::domain::model::{
    BodyEncoding, EventEnvelope, ProviderConfig, QueueMessage, ReceivedMessage, SigningSecret,
    Source, Subscription,
};
use relay_core::fanout::FanoutConfig;
use relay_core::outbound::delivery::DeliveryConfig;
use relay_local::{LocalBackend, LocalOptions, LocalSettings};

use crate::quantile;
use crate::sink::Sink;
use relay_core::ports::Catalog;

pub async fn run(
    events: usize,
    subscriptions: usize,
    delay_ms: u64,
    runs: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let backend = LocalBackend::open(dir.path(), LocalOptions::default())?;
    let sink = Sink::start(Duration::from_millis(delay_ms)).await?;
    let provider = ProviderConfig::named("github")
        .ok_or_else(|| anyhow::anyhow!("no github provider registered"))?;
    backend
        .put_source(&Source {
            name: "bench".into(),
            provider,
            secrets: vec!["s".into()],
            tolerance_secs: 300,
            created_at: 0,
            reconcile: None,
        })
        .await?;
    for i in 0..subscriptions {
        backend
            .put_subscription(&Subscription {
                id: format!("sub_{i}"),
                source: "bench".into(),
                url: format!("http://{}/hook/{i}", sink.address),
                events: vec!["*".into()],
                secrets: vec![SigningSecret {
                    secret: relay_core::domain::ids::new_signing_secret(),
                    expires_at: None,
                }],
                enabled: true,
                disabled_reason: None,
                failing_since: None,
                refused: None,
                headers: vec![],
                created_at: 0,
                filter: None,
                policy: Default::default(),
                paused_until: None,
                pause_streak: 0,
                revision: 0,
            })
            .await?;
    }
    let settings = LocalSettings {
        fanout: FanoutConfig {
            cache_ttl: Duration::from_secs(60),
            ..FanoutConfig::default()
        },
        delivery: DeliveryConfig {
            timeout: Duration::from_secs(15),
            allow_private: true,
        },
        ..LocalSettings::default()
    };
    let relay = relay_local::wire(&backend, settings, relay_core::ports::clock::system())?;
    let fanout = relay.fanout;
    let body = "x".repeat(1024);
    let mut walls = Vec::new();
    // One warm-up run opens the connections, as a warm Lambda has them.
    for run in 0..=runs {
        let batch: Vec<ReceivedMessage> = (0..events)
            .map(|i| {
                let event = EventEnvelope {
                    id: relay_core::domain::ids::new_event_id(),
                    source: "bench".into(),
                    event_type: "push".into(),
                    content_type: Some("application/json".into()),
                    received_at: 0,
                    body: body.clone(),
                    body_encoding: BodyEncoding::Utf8,
                    reconciled: false,
                    stored_body: None,
                };
                ReceivedMessage {
                    receipt: format!("r{i}"),
                    message_id: Some(format!("m{i}")),
                    body: serde_json::to_string(&QueueMessage::Event(event)).unwrap_or_default(),
                    receive_count: 1,
                }
            })
            .collect();
        let started = Instant::now();
        let verdicts = fanout.handle_batch(batch, None).await;
        let wall = started.elapsed();
        let deleted = verdicts
            .iter()
            .filter(|(_, d)| *d == Disposition::Delete)
            .count();
        anyhow::ensure!(
            deleted == events,
            "only {deleted} of {events} events delivered"
        );
        if run > 0 {
            walls.push(wall.as_secs_f64() * 1000.0);
        }
    }
    walls.sort_by(f64::total_cmp);
    let delivered: u32 = sink.arrivals().values().map(|(_, n)| n).sum();
    println!(
        "| fanout: {events} events × {subscriptions} subscriptions, subscriber answers after {delay_ms} ms | value |"
    );
    println!("|---|---|");
    println!("| runs (after 1 warm-up) | {runs} |");
    println!("| wall time, median | {:.1} ms |", quantile(&walls, 0.5));
    println!("| wall time, worst | {:.1} ms |", quantile(&walls, 1.0));
    println!("| deliveries received by the sink | {delivered} |");
    Ok(())
}
