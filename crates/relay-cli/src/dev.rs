//! `relay dev`: the receiver on an HTTP listener and the fanout on the local queues, in one
//! process, over the same core use cases the Lambdas run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::Response;
use relay_core::delivery::{DeliveryClient, DeliveryConfig};
use relay_core::fanout::{Fanout, FanoutConfig};
use relay_core::providers::InboundRequest;
use relay_core::receive::{Receiver, ReceiverConfig};
use relay_core::retry::RetrySchedule;
use relay_core::{Disposition, clock};
use relay_local::{LocalBackend, LocalOptions, LocalQueueName};
use tracing::{info, warn};

use crate::args::{DevArgs, Global};

/// Messages taken per receive; handled concurrently.
const BATCH: usize = 64;
/// Consumers per queue, so one slow subscriber does not hold back the next batch.
const CONSUMERS: usize = 4;
/// Long enough for the slowest attempt (delivery timeout) plus writing its outcome.
const VISIBILITY_MARGIN: Duration = Duration::from_secs(30);

pub async fn run(global: &Global, args: DevArgs) -> anyhow::Result<()> {
    init_logging();
    let retry =
        RetrySchedule::parse(&args.retry_schedule).map_err(|e| anyhow!("--retry-schedule: {e}"))?;
    let backend = LocalBackend::open(&global.data_dir, LocalOptions::default())
        .with_context(|| format!("cannot open the store in {}", global.data_dir.display()))?;
    // Short caches: admin commands from another process take effect within a second.
    let cache_ttl = Duration::from_secs(1);
    let receiver = Arc::new(Receiver::new(
        Arc::new(backend.clone()),
        Arc::new(backend.clone()),
        clock::system(),
        ReceiverConfig {
            max_body_bytes: args.max_body_bytes,
            cache_ttl,
            ..ReceiverConfig::default()
        },
    ));
    // The same RELAY_* tunables as the Lambdas, then the command line on top.
    let lookup = |name: &str| std::env::var(name).ok();
    let (fanout_config, _) =
        relay_core::settings::fanout_config(&lookup).map_err(|e| anyhow!(e))?;
    let delivery = DeliveryConfig {
        timeout: Duration::from_secs(args.delivery_timeout.max(1)),
        allow_private: !args.deny_private_destinations,
    };
    let visibility = delivery.timeout + VISIBILITY_MARGIN;
    let fanout = Arc::new(Fanout::new(
        Arc::new(backend.clone()),
        Arc::new(backend.clone()),
        DeliveryClient::new(delivery).map_err(|e| anyhow!(e))?,
        clock::system(),
        FanoutConfig {
            retry,
            cache_ttl,
            record_concurrency: BATCH,
            ..fanout_config
        },
    ));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    for queue in [LocalQueueName::Events, LocalQueueName::Deliveries] {
        for _ in 0..CONSUMERS {
            tokio::spawn(consume(
                backend.clone(),
                Arc::clone(&fanout),
                queue,
                visibility,
            ));
        }
    }
    let app = axum::Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(args.max_body_bytes + 1))
        .with_state(receiver);

    println!(
        "relay dev listening on http://{address} (store: {})",
        global.data_dir.display()
    );
    if args.deny_private_destinations {
        println!("deliveries to loopback and private addresses are refused, as on Lambda");
    } else {
        println!(
            "note: deliveries to loopback and private addresses are allowed (the Lambdas refuse them; --deny-private-destinations to match)"
        );
    }
    println!(
        "next: relay sources add github --provider github --secret <secret>, then point a provider at http://{address}/github"
    );
    info!(%address, "relay dev started");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    info!("relay dev stopped");
    Ok(())
}

async fn receive(State(receiver): State<Arc<Receiver>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let limit = receiver.config().max_body_bytes + 1;
    let body: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!(
                "{{\"error\":\"body is over the limit of {} bytes\"}}",
                receiver.config().max_body_bytes
            );
            return response(
                413,
                vec![("content-type", "application/json".into())],
                message,
            );
        }
    };
    let inbound = InboundRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let reply = receiver.handle(inbound).await;
    response(reply.status, reply.headers, reply.body)
}

fn response(status: u16, headers: Vec<(&'static str, String)>, body: String) -> Response {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::empty());
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// Receives batches like Lambda's SQS event source does and applies the fanout's verdicts.
async fn consume(
    backend: LocalBackend,
    fanout: Arc<Fanout>,
    queue: LocalQueueName,
    visibility: Duration,
) {
    loop {
        let messages = match backend.receive(queue, BATCH, visibility).await {
            Ok(messages) => messages,
            Err(e) => {
                warn!(queue = %queue, error = %e, "receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            if let Err(e) = backend
                .wait_for_messages(queue, Duration::from_secs(1))
                .await
            {
                warn!(queue = %queue, error = %e, "wait failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            continue;
        }
        let verdicts = fanout.handle_batch(messages).await;
        let mut done = Vec::with_capacity(verdicts.len());
        for (handle, disposition) in verdicts {
            match disposition {
                Disposition::Delete => done.push(handle),
                Disposition::Retry => {}
                Disposition::HideFor(secs) => {
                    if let Err(e) = backend.change_visibility(queue, &handle, secs).await {
                        warn!(queue = %queue, error = %e, "could not hide an early delivery");
                    }
                }
            }
        }
        if let Err(e) = backend.delete_many(queue, &done).await {
            // They come back after the visibility timeout; the fanout skips settled ones.
            warn!(queue = %queue, error = %e, "delete failed");
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
