//! `relay dev`: the receiver on an HTTP listener and the fanout on the local queues, in one
//! process, over the same core use cases the Lambdas run.

mod consumer;
mod server;
mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::body::{Body, Bytes};
use axum::response::Response;
use hyper::body::Incoming;
use relay_core::clock;
use relay_core::delivery::{DeliveryClient, DeliveryConfig};
use relay_core::fanout::{Fanout, FanoutConfig};
use relay_core::providers::InboundRequest;
use relay_core::receive::{Receiver, ReceiverConfig};
use relay_core::retry::RetrySchedule;
use relay_local::{LocalBackend, LocalOptions, LocalQueueName};
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::args::{DevArgs, Global};
use server::ServerLimits;
use supervisor::{RestartPolicy, Supervised};

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
            ..fanout_config
        },
    ));

    let limits = ServerLimits {
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        max_connections: server::fit_connection_limit(
            usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        )?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let mut consumers = JoinSet::new();
    for queue in [LocalQueueName::Events, LocalQueueName::Deliveries] {
        let backend = backend.clone();
        let fanout = Arc::clone(&fanout);
        consumers.spawn(async move {
            let supervised =
                supervisor::supervise(queue.as_str(), RestartPolicy::default(), move || {
                    consumer::consume(
                        backend.clone(),
                        Arc::clone(&fanout),
                        queue,
                        visibility,
                        consumer::MAX_IN_FLIGHT,
                    )
                })
                .await;
            (queue, supervised)
        });
    }
    let handler = ReceiveHandler {
        receiver,
        body_timeout: limits.body_timeout,
    };

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
    tokio::select! {
        served = server::serve(listener, handler, limits, shutdown_signal()) => {
            served.context("HTTP server failed")?;
        }
        Some(ended) = consumers.join_next() => {
            // Accepting events that nobody consumes would only hide the failure.
            let reason = match ended {
                Ok((queue, Supervised::GaveUp { restarts, last_panic })) => format!(
                    "the {queue} queue's consumer kept panicking ({restarts} restarts; last: {last_panic})"
                ),
                Ok((queue, other)) => format!("the {queue} queue's consumer stopped ({other:?})"),
                Err(e) => format!("a consumer's supervisor failed: {e}"),
            };
            error!(%reason, "relay dev stops");
            return Err(anyhow!("{reason}"));
        }
    }
    info!("relay dev stopped");
    Ok(())
}

/// The receiver behind the HTTP server: reads the body within the body timeout, then hands the
/// request to the core.
#[derive(Clone)]
struct ReceiveHandler {
    receiver: Arc<Receiver>,
    body_timeout: Duration,
}

impl server::Handler for ReceiveHandler {
    async fn handle(&self, request: http::Request<Incoming>) -> Response {
        receive(&self.receiver, self.body_timeout, request.map(Body::new)).await
    }
}

/// An error answer that also closes the connection: the rest of the request is not read.
fn json_error(status: u16, message: &str) -> Response {
    response(
        status,
        vec![
            ("content-type", "application/json".into()),
            ("connection", "close".into()),
        ],
        serde_json::json!({ "error": message }).to_string(),
    )
}

async fn receive(
    receiver: &Receiver,
    body_timeout: Duration,
    request: http::Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = receiver.config().max_body_bytes + 1;
    // Only the body's arrival is timed: once the core has it, its answer must not be cut off.
    let read = tokio::time::timeout(body_timeout, axum::body::to_bytes(body, limit));
    let body: Bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Err(_) => {
            return json_error(
                408,
                &format!(
                    "request body not received within {} s",
                    body_timeout.as_secs()
                ),
            );
        }
        Ok(Err(_)) => {
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
