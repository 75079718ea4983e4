//! Benchmarks that need more than criterion: fanout wall time against a slow subscriber, and
//! `relay dev` end to end on loopback (throughput, latency from the scheduled send time, loss,
//! peak RSS). Prints markdown tables; asserts nothing.
//!
//! `relay-bench fanout` · `relay-bench dev --relay target/release/relay`

mod dev;
mod fanout;
mod isolation;
mod sink;

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// 10 events × 10 subscriptions through the fanout, subscriber answering after 100 ms.
    Fanout {
        #[arg(long, default_value_t = 10)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        subscriptions: usize,
        #[arg(long, default_value_t = 100)]
        sink_delay_ms: u64,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// `relay dev` end to end: saturation throughput, then latency at a fixed rate.
    Dev {
        #[arg(long, default_value = "target/release/relay")]
        relay: String,
        /// Seconds of saturation load.
        #[arg(long, default_value_t = 10)]
        saturation_secs: u64,
        /// Concurrent senders during saturation.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Requests per second of the fixed-rate phase.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        rate_secs: u64,
    },
    /// `relay dev`: a healthy subscriber's lag beside a failing one with a backlog.
    Isolation {
        #[arg(long, default_value = "target/release/relay")]
        relay: String,
        /// Events for the failing subscriber, sent first (0: the baseline).
        #[arg(long, default_value_t = 10_000)]
        backlog: usize,
        /// Events for the healthy subscriber, sent after the backlog.
        #[arg(long, default_value_t = 400)]
        healthy_events: usize,
        /// Their rate per second.
        #[arg(long, default_value_t = 20)]
        healthy_rate: u64,
        /// How long the failing subscriber takes to answer 500.
        #[arg(long, default_value_t = 1000)]
        failing_latency_ms: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Fanout {
            events,
            subscriptions,
            sink_delay_ms,
            runs,
        } => fanout::run(events, subscriptions, sink_delay_ms, runs).await,
        Command::Dev {
            relay,
            saturation_secs,
            concurrency,
            rate,
            rate_secs,
        } => dev::run(&relay, saturation_secs, concurrency, rate, rate_secs).await,
        Command::Isolation {
            relay,
            backlog,
            healthy_events,
            healthy_rate,
            failing_latency_ms,
        } => {
            isolation::run(
                &relay,
                backlog,
                healthy_events,
                healthy_rate,
                Duration::from_millis(failing_latency_ms),
            )
            .await
        }
    }
}

/// The value at quantile `q` (0..=1) of sorted `values`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
