//! `relay dev`: the receiver on an HTTP listener and the fanout on the local queues, in one
//! process, over the same core use cases the Lambdas run.

pub(crate) mod server;
mod supervisor;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::body::{Body, Bytes};
use axum::response::Response;
use hyper::body::Incoming;
use relay_core::domain::metrics::Tally;
use relay_core::domain::retry::RetrySchedule;
use relay_core::ports::clock;
use relay_core::providers::InboundRequest;
use relay_core::receive::{Receiver, Reply};
use relay_core::runtime::consume::{ConsumeOptions, consume};
use relay_local::{LocalBackend, LocalOptions, LocalQueueName, LocalSettings};
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::args::{DevArgs, Global};
use server::ServerLimits;
use supervisor::{RestartPolicy, Supervised};

/// Long enough for the slowest attempt (delivery timeout) plus writing its outcome.
const VISIBILITY_MARGIN: Duration = Duration::from_secs(30);
/// The template's FirstAttemptTimeoutSeconds default, so a slow subscriber behaves alike here.
const DEFAULT_FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages of the failing deliveries lane handled at once (the other queues: 256).
const FAILING_LANE_MAX_IN_FLIGHT: usize = 32;
/// Short caches: admin commands from another process take effect within a second.
const DEV_CACHE_TTL: Duration = Duration::from_secs(1);

/// The same `RELAY_*` tunables as the Lambdas, then the command line on top. Unlike the
/// Lambdas, deliveries to private addresses are allowed unless `--deny-private-destinations` or
/// `RELAY_ALLOW_PRIVATE_DESTINATIONS` says otherwise.
fn dev_settings(
    lookup: &dyn Fn(&str) -> Option<String>,
    args: &DevArgs,
) -> anyhow::Result<LocalSettings> {
    let mut settings = LocalSettings::from_lookup(lookup).map_err(|e| anyhow!(e))?;
    settings.fanout.retry =
        RetrySchedule::parse(&args.retry_schedule).map_err(|e| anyhow!("--retry-schedule: {e}"))?;
    settings.fanout.cache_ttl = DEV_CACHE_TTL;
    settings.receiver.cache_ttl = DEV_CACHE_TTL;
    settings.receiver.max_body_bytes = args.max_body_bytes;
    if let Some(secs) = args.delivery_timeout {
        settings.delivery.timeout = Duration::from_secs(secs.max(1));
    }
    if let Some(secs) = args.first_attempt_timeout {
        settings.fanout.first_attempt_timeout = Some(Duration::from_secs(secs));
    }
    settings
        .fanout
        .first_attempt_timeout
        .get_or_insert(DEFAULT_FIRST_ATTEMPT_TIMEOUT);
    let private_from_env =
        lookup("RELAY_ALLOW_PRIVATE_DESTINATIONS").is_some_and(|v| !v.trim().is_empty());
    settings.delivery.allow_private = if args.deny_private_destinations {
        false
    } else if private_from_env {
        settings.delivery.allow_private
    } else {
        true
    };
    Ok(settings)
}

/// Held while `relay dev` runs: a second one on the same data dir would run a second fanout
/// and receiver over one store. The OS drops the lock when the process ends, however it ends.
const DEV_LOCK_FILE: &str = "dev.lock";

fn claim_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};

    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join(DEV_LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.rewind()?;
            write!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            Err(crate::errors::classified(
                crate::errors::Kind::Conflict,
                format!(
                    "another relay dev is running on {}{by}; stop it, or pass --data-dir for a second one",
                    data_dir.display()
                ),
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::from(e).context(format!("cannot lock {}", path.display())))
        }
    }
}

pub async fn run(global: &Global, args: DevArgs) -> anyhow::Result<()> {
    init_logging();
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = dev_settings(&lookup, &args)?;
    let _only_dev = claim_data_dir(&global.data_dir)?;
    crate::destinations::record_dev_setting(&global.data_dir, settings.delivery.allow_private)
        .with_context(|| format!("cannot write to {}", global.data_dir.display()))?;
    let backend = LocalBackend::open(&global.data_dir, LocalOptions::default())
        .with_context(|| format!("cannot open the store in {}", global.data_dir.display()))?;
    let visibility = settings.delivery.timeout + VISIBILITY_MARGIN;
    let allow_private = settings.delivery.allow_private;
    let relay = relay_local::wire(&backend, settings, clock::system())?;
    let receiver = Arc::clone(&relay.receiver);

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
    for queue in [
        LocalQueueName::Events,
        LocalQueueName::Deliveries,
        LocalQueueName::FailingDeliveries,
    ] {
        let consumer = Arc::clone(&relay.consumer);
        let fanout = Arc::clone(&relay.fanout);
        let options = ConsumeOptions::new(queue, visibility);
        // The failing lane's own, smaller share, as its event source's maximum concurrency
        // on AWS: its backlog cannot take the store's writes from the healthy lanes.
        let options = if queue == LocalQueueName::FailingDeliveries {
            ConsumeOptions {
                max_in_flight: FAILING_LANE_MAX_IN_FLIGHT,
                ..options
            }
        } else {
            options
        };
        consumers.spawn(async move {
            let supervised =
                supervisor::supervise(queue.as_str(), RestartPolicy::default(), move || {
                    consume(Arc::clone(&consumer), Arc::clone(&fanout), options)
                })
                .await;
            (queue, supervised)
        });
    }
    let console = crate::console::Console::new(
        crate::backend::Backend::Local(backend.clone()),
        crate::console::Access::for_listen(address)?,
        limits.body_timeout,
    )?;
    let console_line = format!(
        "console: {} ({})",
        console.access().start_url(address, crate::console::PREFIX),
        console.access().start_note()
    );
    let handler = ReceiveHandler {
        receiver,
        body_timeout: limits.body_timeout,
        tally: Arc::clone(&relay.tally),
        console: crate::console::ConsoleHandler(Arc::new(console)),
    };

    println!(
        "relay dev listening on http://{address} (store: {})",
        global.data_dir.display()
    );
    if !allow_private {
        println!("deliveries to loopback and private addresses are refused, as on Lambda");
    } else {
        println!(
            "note: deliveries to loopback and private addresses are allowed (the Lambdas refuse them; --deny-private-destinations to match)"
        );
    }
    println!("{console_line}");
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
    tally: Arc<Mutex<Tally>>,
    console: crate::console::ConsoleHandler,
}

impl server::Handler for ReceiveHandler {
    async fn handle(&self, request: http::Request<Incoming>) -> Response {
        if crate::console::Console::serves(request.uri().path()) {
            return self.console.0.handle(request.map(Body::new)).await;
        }
        // GET /metrics is the Prometheus scrape; POST /metrics stays a source's path.
        if request.method() == http::Method::GET && request.uri().path() == "/metrics" {
            let text = relay_local::prometheus::render(
                &self
                    .tally
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            return Reply {
                status: 200,
                headers: vec![("content-type", relay_local::prometheus::CONTENT_TYPE.into())],
                body: text,
            }
            .into_http();
        }
        receive(&self.receiver, self.body_timeout, request.map(Body::new)).await
    }
}

/// An error answer that also closes the connection: the rest of the request is not read.
fn json_error(status: u16, message: &str) -> Response {
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".into()),
            ("connection", "close".into()),
        ],
        body: serde_json::json!({ "error": message }).to_string(),
    }
    .into_http()
}

async fn receive(
    receiver: &Receiver,
    body_timeout: Duration,
    request: http::Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = receiver.body_limit() + 1;
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
                receiver.body_limit()
            );
            return Reply {
                status: 413,
                headers: vec![("content-type", "application/json".into())],
                body: message,
            }
            .into_http();
        }
    };
    let inbound = InboundRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    receiver.handle(inbound).await.reply().into_http()
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

pub(crate) async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn dev_args(argv: &[&str]) -> DevArgs {
        let cli = Cli::try_parse_from(["relay", "dev"].iter().chain(argv)).expect("arguments");
        match cli.command {
            Command::Dev(args) => args,
            _ => unreachable!("parsed as relay dev"),
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn delivery_settings_come_from_the_environment_unless_the_command_line_says() {
        let vars = [
            ("RELAY_DELIVERY_TIMEOUT_SECS", "3"),
            ("RELAY_ALLOW_PRIVATE_DESTINATIONS", "false"),
        ];
        let from_env = dev_settings(&env(&vars), &dev_args(&[])).unwrap();
        assert_eq!(from_env.delivery.timeout, Duration::from_secs(3));
        assert!(!from_env.delivery.allow_private);

        let flags = dev_args(&["--delivery-timeout", "7"]);
        let overridden = dev_settings(&env(&vars), &flags).unwrap();
        assert_eq!(overridden.delivery.timeout, Duration::from_secs(7));

        let defaults = dev_settings(&env(&[]), &dev_args(&[])).unwrap();
        assert_eq!(defaults.delivery.timeout, Duration::from_secs(15));
        assert!(
            defaults.delivery.allow_private,
            "relay dev allows private by default"
        );
        let denied = dev_settings(&env(&[]), &dev_args(&["--deny-private-destinations"])).unwrap();
        assert!(!denied.delivery.allow_private);
    }

    #[test]
    fn the_first_attempt_timeout_defaults_to_the_templates() {
        let first = |vars: &[(&str, &str)], argv: &[&str]| {
            dev_settings(&env(vars), &dev_args(argv))
                .unwrap()
                .fanout
                .first_attempt_timeout
        };
        assert_eq!(first(&[], &[]), Some(Duration::from_secs(5)));
        let from_env = [("RELAY_FIRST_ATTEMPT_TIMEOUT_SECS", "2")];
        assert_eq!(first(&from_env, &[]), Some(Duration::from_secs(2)));
        assert_eq!(
            first(&from_env, &["--first-attempt-timeout", "9"]),
            Some(Duration::from_secs(9))
        );
    }
}
