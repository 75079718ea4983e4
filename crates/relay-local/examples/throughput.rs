//! Throughput probe for the SQLite backend, on a 2-worker runtime like a small `relay dev` host.
//!
//! cargo run --release -p relay-local --example throughput -- [cycle|pipeline|latency] [events] [producers]
//!
//! `cycle`: producers send events while consumers receive batches and delete them.
//! `latency`: sequential sends, one commit each.
//! `pipeline`: what `relay dev` does per event: dedup claim + confirm, send; then receive, read
//! the source's subscriptions, store the event, store its attempts, delete the message.
//! Set RELAY_PROBE_DIR to measure on a particular disk (default: a temporary directory).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use relay_core::ports::{Catalog, Claim, DedupLedger, EventArchive, Lease};
use relay_core::{AttemptRecord, BodyEncoding, EventEnvelope, Queue, QueueConsumer, QueueMessage};
use relay_local::{LocalBackend, LocalOptions, LocalQueueName};

const VIS: Duration = Duration::from_secs(30);

/// Consumer tasks, each receiving up to 10 messages at a time (env CONSUMERS, default 4).
fn consumers() -> usize {
    std::env::var("CONSUMERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

fn event(i: u64) -> EventEnvelope {
    EventEnvelope {
        id: format!("evt_{i:012}"),
        source: "gh".into(),
        event_type: "push".into(),
        content_type: Some("application/json".into()),
        received_at: i64::try_from(i).unwrap_or(0),
        // A typical small webhook body.
        body: format!(
            "{{\"ref\":\"refs/heads/main\",\"n\":{i},\"pad\":\"{}\"}}",
            "x".repeat(600)
        ),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("pipeline", String::as_str).to_owned();
    let total: u64 = args.get(2).map_or(Ok(20_000), |s| s.parse())?;
    let producers: u64 = args.get(3).map_or(Ok(64), |s| s.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(mode, total, producers))
}

async fn run(mode: String, total: u64, producers: u64) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::var_os("RELAY_PROBE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let backend = LocalBackend::open(&dir, LocalOptions::default())?;
    let pipeline = mode == "pipeline";
    if pipeline {
        let mut sub: relay_core::Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "source": "gh", "url": "http://127.0.0.1:9/hook",
            "events": ["*"], "secrets": [{"secret": "whsec_x"}]
        }))?;
        backend.put_subscription(&sub).await?;
        sub.id = "sub_2".into();
        backend.put_subscription(&sub).await?;
    }

    if mode == "latency" {
        // One caller at a time: every send is its own commit (no batching to hide behind).
        let mut took = Vec::new();
        for i in 0..total {
            let t = Instant::now();
            backend.send_event(&event(i)).await?;
            took.push(t.elapsed());
        }
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
        println!(
            "latency: {total} sequential sends: p50 {:?}, p99 {:?}, max {:?}",
            at(0.5),
            at(0.99),
            at(1.0)
        );
        return Ok(());
    }
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..producers {
        let (backend, next) = (backend.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), String>(());
                }
                let e = event(i);
                if pipeline {
                    // Half the providers send a delivery id.
                    if i % 2 == 0 {
                        let key = format!("d{i}");
                        backend
                            .claim_dedup(
                                Claim::new("gh", &key, &e.id),
                                Lease {
                                    now: 1,
                                    until: 1_000_000_000_000,
                                },
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                        backend.send_event(&e).await.map_err(|e| e.to_string())?;
                        backend
                            .confirm_dedup(Claim::new("gh", &key, &e.id), 1_000_000_000_000)
                            .await
                            .map_err(|e| e.to_string())?;
                        continue;
                    }
                }
                backend.send_event(&e).await.map_err(|e| e.to_string())?;
            }
        });
    }
    for _ in 0..consumers() {
        let (backend, done) = (backend.clone(), Arc::clone(&done));
        tasks.spawn(async move {
            while done.load(Ordering::Relaxed) < total {
                let wait = Duration::from_millis(200);
                let got = QueueConsumer::receive(&backend, LocalQueueName::Events, 10, wait, VIS)
                    .await
                    .map_err(|e| e.to_string())?;
                if got.is_empty() {
                    continue;
                }
                if !pipeline {
                    let handles: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
                    let n = backend
                        .delete_many(LocalQueueName::Events, &handles)
                        .await
                        .map_err(|e| e.to_string())?;
                    done.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                // Each message handled on its own, as the fanout does, concurrently.
                let mut handling = tokio::task::JoinSet::new();
                for m in got {
                    let backend = backend.clone();
                    handling.spawn(async move { handle(&backend, m).await });
                }
                while let Some(r) = handling.join_next().await {
                    r.map_err(|e| e.to_string())??;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{mode}: {total} events, {producers} producers, {} consumers: {secs:.2} s, {:.0} events/s",
        consumers(),
        total as f64 / secs
    );
    let stats = backend.writer_stats();
    println!(
        "writer: {} jobs in {} commits ({:.1} per commit), busy {:.0}% of the run",
        stats.jobs,
        stats.batches,
        stats.jobs as f64 / stats.batches.max(1) as f64,
        stats.busy.as_secs_f64() / secs * 100.0
    );
    Ok(())
}

async fn handle(backend: &LocalBackend, m: relay_core::ReceivedMessage) -> Result<(), String> {
    let QueueMessage::Event(e) = serde_json::from_str(&m.body).map_err(|e| e.to_string())? else {
        return Err("not an event".into());
    };
    let subs = backend
        .source_subscriptions(&e.source)
        .await
        .map_err(|e| e.to_string())?;
    backend
        .put_event(&e, 1_000_000_000_000)
        .await
        .map_err(|e| e.to_string())?;
    let attempts: Vec<AttemptRecord> = subs
        .iter()
        .map(|s| AttemptRecord {
            event_id: e.id.clone(),
            subscription_id: s.id.clone(),
            attempt: 1,
            at: e.received_at,
            status: Some(200),
            outcome: relay_core::AttemptOutcome::Ok,
            latency_ms: 3,
            response_excerpt: String::new(),
            next: relay_core::NextStep::Done,
        })
        .collect();
    backend
        .put_attempts(&attempts, 1_000_000_000_000)
        .await
        .map_err(|e| e.to_string())?;
    backend
        .delete(LocalQueueName::Events, &m.receipt)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
