//! `relay dev` end to end on loopback: a signed GitHub event per request (each with its own
//! delivery id, so deduplication is on the path), one subscriber, deliveries timed at arrival.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use relay_core::signing::hmac_sha256;
use tokio::process::{Child, Command};

use crate::quantile;
use crate::sink::Sink;

pub(crate) const SECRET: &str = "bench-secret-0123456789"; // at least 16 characters, as sources require

pub async fn run(
    relay: &str,
    saturation_secs: u64,
    concurrency: usize,
    rate: u64,
    rate_secs: u64,
) -> anyhow::Result<()> {
    // RELAY_BENCH_LOG=FILE keeps relay dev's info log (one line per event step) for a look at
    // where the time goes; logging costs throughput, so it is off by default.
    let log = std::env::var_os("RELAY_BENCH_LOG");
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("store");
    let sink = Sink::start(Duration::ZERO).await?;
    let port = free_port()?;
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(relay);
        command.arg("--data-dir").arg(&data_dir).args(args);
        command
    };
    run_ok(cli(&[
        "sources",
        "add",
        "bench",
        "--provider",
        "github",
        "--secret",
        SECRET,
    ]))?;
    let url = format!("http://{}/hook", sink.address);
    run_ok(cli(&[
        "subscriptions",
        "add",
        "--source",
        "bench",
        "--url",
        &url,
    ]))?;

    let mut dev: Child = Command::new(relay)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
        .stdout(Stdio::null())
        .stderr(match &log {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        })
        .kill_on_drop(true)
        .spawn()
        .context("cannot start relay dev")?;
    let pid = dev.id().context("relay dev has no pid")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .no_proxy()
        .build()?;
    let endpoint = format!("http://127.0.0.1:{port}/bench");
    wait_healthy(&client, port).await?;

    // Saturation: closed loop, `concurrency` senders as fast as answers come.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(saturation_secs);
    let senders: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (client, endpoint, accepted) =
                (client.clone(), endpoint.clone(), Arc::clone(&accepted));
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    if let Some(id) = send(&client, &endpoint, &format!("s-{worker}-{n}")).await
                        && let Ok(mut list) = accepted.lock()
                    {
                        list.push(id);
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await?;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let accepted_ids = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    wait_delivered(&sink, accepted_ids.len(), Duration::from_secs(120)).await;
    let arrivals = sink.arrivals();
    let last = arrivals
        .values()
        .map(|(at, _)| *at)
        .max()
        .unwrap_or(started);
    let delivered = accepted_ids
        .iter()
        .filter(|id| arrivals.contains_key(*id))
        .count();
    let sat_accept_rate = accepted_ids.len() as f64 / send_secs;
    let sat_deliver_rate = delivered as f64 / last.duration_since(started).as_secs_f64();
    let sat_lost = accepted_ids.len() - delivered;

    // Fixed rate: open loop; latency counts from each request's scheduled send time, so a
    // stalled server cannot hide its queueing delay (no coordinated omission).
    let total = rate * rate_secs;
    let scheduled: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t0 = Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = (0..total)
        .map(|i| {
            let at = t0 + Duration::from_nanos(i * 1_000_000_000 / rate);
            let (client, endpoint, scheduled) =
                (client.clone(), endpoint.clone(), Arc::clone(&scheduled));
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                if let Some(id) = send(&client, &endpoint, &format!("r-{i}")).await
                    && let Ok(mut map) = scheduled.lock()
                {
                    map.insert(id, at);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let scheduled = scheduled.lock().map(|s| s.clone()).unwrap_or_default();
    wait_delivered(
        &sink,
        accepted_ids.len() + scheduled.len(),
        Duration::from_secs(120),
    )
    .await;
    let arrivals = sink.arrivals();
    let mut latencies: Vec<f64> = scheduled
        .iter()
        .filter_map(|(id, at)| {
            arrivals
                .get(id)
                .map(|(arrived, _)| arrived.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let rate_lost = scheduled.len() - latencies.len();
    let rate_refused = total as usize - scheduled.len();
    let duplicates: u32 = arrivals.values().map(|(_, n)| n.saturating_sub(1)).sum();
    let peak_rss_kib = peak_rss_kib(pid);
    let _ = dev.kill().await;

    println!("| relay dev, loopback, 1 subscriber | value |");
    println!("|---|---|");
    println!("| saturation: senders | {concurrency} for {saturation_secs} s |");
    println!(
        "| saturation: accepted (202) | {} ({sat_accept_rate:.0}/s) |",
        accepted_ids.len()
    );
    println!("| saturation: delivered | {delivered} ({sat_deliver_rate:.0}/s) |");
    println!("| saturation: lost | {sat_lost} |");
    println!("| fixed rate: offered | {rate}/s for {rate_secs} s ({total} requests) |");
    println!("| fixed rate: not accepted | {rate_refused} |");
    println!(
        "| fixed rate: accept→deliver p50 | {:.2} ms |",
        quantile(&latencies, 0.5)
    );
    println!(
        "| fixed rate: accept→deliver p90 | {:.2} ms |",
        quantile(&latencies, 0.9)
    );
    println!(
        "| fixed rate: accept→deliver p99 | {:.2} ms |",
        quantile(&latencies, 0.99)
    );
    println!(
        "| fixed rate: accept→deliver max | {:.2} ms |",
        quantile(&latencies, 1.0)
    );
    println!("| fixed rate: lost | {rate_lost} |");
    println!("| duplicate deliveries | {duplicates} |");
    match peak_rss_kib {
        Some(kib) => println!("| relay dev peak RSS | {:.1} MiB |", kib as f64 / 1024.0),
        None => println!("| relay dev peak RSS | unknown |"),
    }
    Ok(())
}

/// Sends one signed event; the event id when it was accepted.
pub(crate) async fn send(
    client: &reqwest::Client,
    endpoint: &str,
    delivery: &str,
) -> Option<String> {
    let body = format!(
        r#"{{"action":"opened","delivery":"{delivery}","payload":"{}"}}"#,
        "x".repeat(900)
    );
    let signature = format!(
        "sha256={}",
        hex::encode(hmac_sha256(SECRET.as_bytes(), &[body.as_bytes()]))
    );
    let response = client
        .post(endpoint)
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .ok()?;
    if response.status().as_u16() != 202 {
        return None;
    }
    let text = response.text().await.ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["id"].as_str().map(str::to_owned)
}

async fn wait_delivered(sink: &Sink, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while sink.delivered() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn wait_healthy(client: &reqwest::Client, port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..200 {
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("relay dev did not become healthy")
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn run_ok(mut command: std::process::Command) -> anyhow::Result<()> {
    let output = command.output().context("cannot run relay")?;
    if !output.status.success() {
        bail!("relay failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
