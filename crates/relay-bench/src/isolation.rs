//! Whether a failing subscriber's backlog delays a healthy one, in `relay dev` on loopback.
//!
//! Subscription `dead` (its own source) answers 500 to everything after `failing_latency`; the
//! `backlog` events sent to it first are each retried on a 1 s × 8 schedule, so its retries
//! crowd the deliveries queue and hold the consumer's slots.
//! Then subscription `flaky` (another source) gets `healthy_events` events at `healthy_rate`/s;
//! it answers every other request with 500 (its failure runs never last) and delivers
//! otherwise, retrying on the same 1 s schedule. Measured: `flaky`'s first-attempt lag (accept
//! to first arrival) and the gap between each of its attempts and the next, against its
//! schedule. `--backlog 0` is the baseline.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::process::Command;

use crate::dev::{SECRET, free_port, run_ok, send, wait_healthy};
use crate::quantile;

/// Both subscriptions retry on this schedule (±20 % jitter; the queue delays in whole seconds).
const SCHEDULE: &str = "1s,1s,1s,1s,1s,1s,1s,1s";
/// The latest a 1 s step can come due: 1.2 s jittered, queued with a whole-second delay.
const LATEST_DUE_SECS: f64 = 2.0;

/// One request the sink answered.
#[derive(Clone)]
struct Arrival {
    webhook_id: String,
    at: Instant,
    delivered: bool,
}

#[derive(Default)]
struct Arrivals {
    /// Per path, each request in arrival order; `/flaky`'s count decides its answers.
    by_path: Mutex<HashMap<String, Vec<Arrival>>>,
    /// How long `/dead` takes to fail.
    failing_latency: Duration,
}

impl Arrivals {
    fn on(&self, path: &str) -> Vec<Arrival> {
        self.by_path
            .lock()
            .map(|m| m.get(path).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

async fn answer(State(arrivals): State<Arc<Arrivals>>, uri: Uri, headers: HeaderMap) -> StatusCode {
    let at = Instant::now();
    let path = uri.path().to_owned();
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let delivered = {
        let Ok(mut map) = arrivals.by_path.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR;
        };
        let list = map.entry(path.clone()).or_default();
        // Every other request to /flaky is delivered; everything else fails.
        let delivered = path == "/flaky" && list.len() % 2 == 1;
        list.push(Arrival {
            webhook_id,
            at,
            delivered,
        });
        delivered
    };
    if path == "/dead" {
        tokio::time::sleep(arrivals.failing_latency).await;
    }
    if delivered {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

pub async fn run(
    relay: &str,
    backlog: usize,
    healthy_events: usize,
    healthy_rate: u64,
    failing_latency: Duration,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("store");
    let arrivals = Arc::new(Arrivals {
        failing_latency,
        ..Arrivals::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&arrivals));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(relay);
        command.arg("--data-dir").arg(&data_dir).args(args);
        command
    };
    for (source, path) in [("dead", "/dead"), ("live", "/flaky")] {
        run_ok(cli(&[
            "sources",
            "add",
            source,
            "--provider",
            "github",
            "--secret",
            SECRET,
        ]))?;
        run_ok(cli(&[
            "subscriptions",
            "add",
            "--source",
            source,
            "--url",
            &format!("http://{sink}{path}"),
            "--retry-schedule",
            SCHEDULE,
        ]))?;
    }
    let port = free_port()?;
    let mut dev = Command::new(relay)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start relay dev")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .no_proxy()
        .build()?;
    wait_healthy(&client, port).await?;

    // The failing subscriber's backlog: closed loop, 32 senders.
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (client, next) = (client.clone(), Arc::clone(&next));
            let endpoint = format!("http://127.0.0.1:{port}/dead");
            tokio::spawn(async move {
                let mut accepted = 0usize;
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= backlog as u64 {
                        return accepted;
                    }
                    if send(&client, &endpoint, &format!("dead-{n}"))
                        .await
                        .is_some()
                    {
                        accepted += 1;
                    }
                }
            })
        })
        .collect();
    let mut backlog_accepted = 0;
    for sender in senders {
        backlog_accepted += sender.await?;
    }
    let backlog_secs = started.elapsed().as_secs_f64();

    // The healthy subscriber's stream, open loop at a fixed rate.
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t0 = Instant::now() + Duration::from_millis(50);
    let stream: Vec<_> = (0..healthy_events as u64)
        .map(|i| {
            let at = t0 + Duration::from_nanos(i * 1_000_000_000 / healthy_rate.max(1));
            let (client, accepted) = (client.clone(), Arc::clone(&accepted));
            let endpoint = format!("http://127.0.0.1:{port}/live");
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                if let Some(id) = send(&client, &endpoint, &format!("live-{i}")).await
                    && let Ok(mut map) = accepted.lock()
                {
                    map.insert(id, Instant::now());
                }
            })
        })
        .collect();
    for task in stream {
        task.await?;
    }
    let dead_during_stream = arrivals.on("/dead").len();
    let accepted = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    // Wait (bounded) until every healthy event is delivered.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let delivered = delivered_ids(&arrivals);
        if accepted.keys().all(|id| delivered.contains_key(id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead_total = arrivals.on("/dead").len();
    let _ = dev.kill().await;

    let flaky = arrivals.on("/flaky");
    let mut per_event: HashMap<&str, Vec<Instant>> = HashMap::new();
    for arrival in &flaky {
        per_event
            .entry(arrival.webhook_id.as_str())
            .or_default()
            .push(arrival.at);
    }
    let mut first_lag_ms: Vec<f64> = accepted
        .iter()
        .filter_map(|(id, at)| {
            let first = per_event.get(id.as_str())?.first()?;
            Some(first.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    first_lag_ms.sort_by(f64::total_cmp);
    let mut gaps: Vec<f64> = per_event
        .values()
        .flat_map(|times| times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()))
        .collect();
    gaps.sort_by(f64::total_cmp);
    let late: Vec<f64> = gaps
        .iter()
        .map(|g| (g - LATEST_DUE_SECS).max(0.0))
        .collect();
    let delivered = delivered_ids(&arrivals);
    let undelivered = accepted
        .keys()
        .filter(|id| !delivered.contains_key(*id))
        .count();

    println!("| relay dev, loopback | value |");
    println!("|---|---|");
    println!(
        "| failing subscriber: events accepted | {backlog_accepted} of {backlog} in {backlog_secs:.1} s |"
    );
    println!(
        "| failing subscriber: answers 500 after | {} ms |",
        failing_latency.as_millis()
    );
    println!("| failing subscriber: attempts by the stream's end | {dead_during_stream} |");
    println!("| failing subscriber: attempts by the run's end | {dead_total} |");
    println!(
        "| healthy subscriber: events | {} accepted of {healthy_events} at {healthy_rate}/s |",
        accepted.len()
    );
    println!(
        "| healthy: first attempt lag p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |",
        quantile(&first_lag_ms, 0.5),
        quantile(&first_lag_ms, 0.99),
        quantile(&first_lag_ms, 1.0)
    );
    println!(
        "| healthy: retries | {} (gap to the attempt before, schedule 1 s, due by {LATEST_DUE_SECS} s) |",
        gaps.len()
    );
    println!(
        "| healthy: retry gap p50 / p99 / max | {:.2} / {:.2} / {:.2} s |",
        quantile(&gaps, 0.5),
        quantile(&gaps, 0.99),
        quantile(&gaps, 1.0)
    );
    println!(
        "| healthy: retry lag beyond its schedule p50 / p99 / max | {:.2} / {:.2} / {:.2} s |",
        quantile(&late, 0.5),
        quantile(&late, 0.99),
        quantile(&late, 1.0)
    );
    println!("| healthy: not delivered within 180 s | {undelivered} |");
    Ok(())
}

/// Webhook-ids `/flaky` answered 200 to.
fn delivered_ids(arrivals: &Arrivals) -> HashMap<String, ()> {
    arrivals
        .on("/flaky")
        .into_iter()
        .filter(|a| a.delivered)
        .map(|a| (a.webhook_id, ()))
        .collect()
}
