//! What the end-to-end tests share: a fresh table and queue set on moto per test, the receiver
//! and fanout built by the Lambda mains' wiring (`relay_aws::wiring`), a poller that stands in
//! for Lambda's SQS event source (the core's `consume::pump` over the SQS consumer port), the Python sink (`tests/sink.py`) that checks every delivery with the
//! official Standard Webhooks library, and function URL requests in payload format 2.0.
//!
//! Everything talks to loopback only: moto at `MOTO_ENDPOINT`, the sink on 127.0.0.1.

// Each test uses a different part of the harness.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use relay_aws::provision::{QueueSet, create_queues, create_table};
use relay_aws::{
    AwsAdapters, AwsSettings, Caller, DynamoStore, QueueDepth, SqsAdmin, SqsQueue,
    adapters_from_sdk_config, sdk_config_loader,
};
use relay_core::QueueName;
use relay_core::domain::model::{
    AttemptRecord, ProviderConfig, SigningSecret, Source, Subscription,
};
use relay_core::fanout::Fanout;
use relay_core::ports::{Catalog, EventArchive, QueueConsumer};
use relay_core::receive::Receiver;
use relay_core::runtime::consume::pump;
use serde::Deserialize;
use serde_json::json;

pub const REGION: &str = "us-east-1";
/// How long the poller hides what it received, like the queue's visibility timeout: records a
/// handler reports as failed come back after this (`Poller::with_visibility` to change it).
pub const POLLER_VISIBILITY_SECS: u32 = 30;

/// The moto endpoint. Without one the test fails saying so: an end-to-end test that passed
/// without running would read as proof.
pub fn moto_endpoint(test: &str) -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => endpoint.trim().to_owned(),
        _ => panic!(
            "{test} needs a moto server: MOTO_ENDPOINT is not set (scripts/test starts one and \
             sets it; tests/README.md says how to run this suite alone)"
        ),
    }
}

/// The SDK config of `relay_aws::load_sdk_config`, pinned to `endpoint` with moto's region and
/// dummy credentials, so the tests never depend on (or reach past) the environment's AWS
/// settings. With the CLI's patient retries and timeouts, so a moto slowed by a busy machine
/// fails no test; an endpoint that is down gets the receiver's (`queue_at`, `store_at`).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_loader(&Caller::Admin.policy())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "relay-e2e",
        ))
        .load()
        .await
}

/// An endpoint where nothing listens: a port that was free a moment ago refuses connections.
pub fn closed_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

/// An endpoint that accepts connections and never answers a byte; it lives as long as the
/// returned task.
pub async fn silent_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("address").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://127.0.0.1:{port}"), holder)
}

/// How many times slower than an idle machine this one runs now: the one-minute load average
/// per core (`/proc/loadavg`), at least 1.
pub fn load_factor() -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(1.0, |load| (load / cores).max(1.0))
}

/// `time` on an idle machine, stretched by the load now: waits give a busy machine room in
/// proportion to its measured load instead of failing.
pub fn room(time: Duration) -> Duration {
    time.mul_f64(load_factor())
}

/// A short random suffix for resource names (the random tail of a UUIDv7).
pub fn unique() -> String {
    let id = relay_core::domain::ids::new_event_id();
    id[id.len() - 12..].to_owned()
}

/// One test's own table and four queues on moto, with the adapters over them.
pub struct Stack {
    pub sdk: SdkConfig,
    pub table: String,
    pub queues: QueueSet,
    pub settings: AwsSettings,
    pub aws: AwsAdapters,
}

impl Stack {
    /// A fresh stack on the moto server of `MOTO_ENDPOINT` (the test fails without one).
    pub async fn new(test: &str) -> Self {
        let endpoint = moto_endpoint(test);
        let sdk = sdk_config(&endpoint).await;
        let name = format!("e2e-{}", unique());
        create_table(&aws_sdk_dynamodb::Client::new(&sdk), &name)
            .await
            .unwrap_or_else(|e| panic!("creating table {name} on moto at {endpoint}: {e:#}"));
        let queues = create_queues(&aws_sdk_sqs::Client::new(&sdk), &name)
            .await
            .unwrap_or_else(|e| panic!("creating queues {name}-* on moto at {endpoint}: {e:#}"));
        // The bodies bucket, as the template's: bodies over 256 KiB go through it.
        relay_aws::provision::create_bodies_bucket(&sdk, &name)
            .await
            .unwrap_or_else(|e| panic!("creating bucket {name} on moto at {endpoint}: {e:#}"));
        let settings = AwsSettings {
            bodies_bucket: Some(name.clone()),
            ..queues.settings(name.clone())
        };
        let aws = adapters_from_sdk_config(&sdk, &settings);
        Self {
            sdk,
            table: name,
            queues,
            settings,
            aws,
        }
    }

    /// The receiver as `functions/receiver/src/main.rs` builds it (settings from `RELAY_*`
    /// variables, here none, so the defaults).
    pub fn receiver(&self) -> Receiver {
        self.receiver_with_queue(self.aws.queue.clone())
    }

    /// The same receiver over another queue adapter (e.g. one whose endpoint is down).
    pub fn receiver_with_queue(&self, queue: SqsQueue) -> Receiver {
        self.receiver_over(self.aws.store.clone(), queue)
    }

    /// The same receiver over other adapters.
    pub fn receiver_over(&self, store: DynamoStore, queue: SqsQueue) -> Receiver {
        self.receiver_from(store, queue, &[])
    }

    /// A receiver that confirms each claim as soon as its event is queued (the setting when the
    /// fanout does not store every event), so a copy is a duplicate with no fanout run; by
    /// default the fanout's stored event confirms it (`delivery.rs` checks that path).
    pub fn confirming_receiver(&self) -> Receiver {
        self.receiver_from(
            self.aws.store.clone(),
            self.aws.queue.clone(),
            &[("RELAY_EVENT_ARCHIVE", "failures")],
        )
    }

    fn receiver_from(&self, store: DynamoStore, queue: SqsQueue, env: &[(&str, &str)]) -> Receiver {
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let receiver = relay_aws::wiring::receiver(
            store,
            queue,
            &self.settings,
            &lookup,
            relay_core::ports::clock::system(),
        )
        .expect("receiver wiring");
        // As `relay_aws::lambda::start` attaches the bucket.
        match self.bodies() {
            Some(bodies) => receiver.with_bodies(bodies),
            None => receiver,
        }
    }

    /// The bodies bucket's adapter, shared as the functions share it.
    pub fn bodies(&self) -> Option<std::sync::Arc<dyn relay_core::BodyStore>> {
        self.aws
            .bodies
            .clone()
            .map(|b| std::sync::Arc::new(b) as std::sync::Arc<dyn relay_core::BodyStore>)
    }

    /// The fanout as `functions/fanout/src/main.rs` builds it, with `RELAY_RETRY_SCHEDULE` and
    /// `RELAY_ALLOW_PRIVATE_DESTINATIONS=true` (the sink listens on loopback).
    pub fn fanout(&self, retry_schedule: &str) -> Fanout {
        self.fanout_with_env(&[
            ("RELAY_RETRY_SCHEDULE", retry_schedule),
            ("RELAY_ALLOW_PRIVATE_DESTINATIONS", "true"),
            ("RELAY_DELIVERY_TIMEOUT_SECS", "5"),
        ])
    }

    /// The fanout over exactly these `RELAY_*` variables (none: the Lambda defaults).
    pub fn fanout_with_env(&self, env: &[(&str, &str)]) -> Fanout {
        self.fanout_over(self.aws.queue.clone(), env)
    }

    /// The same fanout over another queue adapter (e.g. one whose endpoint is down).
    pub fn fanout_over(&self, queue: SqsQueue, env: &[(&str, &str)]) -> Fanout {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let lookup = |name: &str| env.get(name).map(|v| (*v).to_owned());
        let fanout = relay_aws::wiring::fanout(
            self.aws.store.clone(),
            queue,
            &self.settings,
            &lookup,
            relay_core::ports::clock::system(),
        )
        .expect("fanout wiring");
        match self.bodies() {
            Some(bodies) => fanout.with_bodies(bodies),
            None => fanout,
        }
    }

    /// A poller over the events and deliveries queues feeding `fanout::handle`.
    pub async fn poller(&self, retry_schedule: &str) -> Poller {
        Poller::new(self, self.fanout(retry_schedule)).await
    }

    /// A poller over a fanout with exactly these `RELAY_*` variables.
    pub async fn poller_with_env(&self, env: &[(&str, &str)]) -> Poller {
        Poller::new(self, self.fanout_with_env(env)).await
    }

    /// This stack's queue adapter with its SQS client sent to `endpoint` instead of moto, with
    /// the receiver function's retries and timeouts (the budget a provider waits for).
    pub fn queue_at(&self, endpoint: &str) -> SqsQueue {
        let policy = Caller::Receiver.policy();
        let config = aws_sdk_sqs::config::Builder::from(&self.sdk)
            .endpoint_url(endpoint)
            .retry_config(policy.retry_config())
            .timeout_config(policy.timeout_config())
            .build();
        SqsQueue::new(aws_sdk_sqs::Client::from_conf(config), &self.settings)
    }

    /// This stack's store adapter with its DynamoDB client sent to `endpoint` instead of moto,
    /// with the receiver function's retries and timeouts.
    pub fn store_at(&self, endpoint: &str) -> DynamoStore {
        let policy = Caller::Receiver.policy();
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
            .endpoint_url(endpoint)
            .retry_config(policy.retry_config())
            .timeout_config(policy.timeout_config())
            .build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), &self.table)
    }

    pub fn admin(&self) -> &SqsAdmin {
        &self.aws.admin
    }

    /// Subscription `id` as the stack's table holds it now.
    pub async fn stored_subscription(&self, id: &str) -> relay_core::Subscription {
        relay_core::Catalog::get_subscription(&self.aws.store, id)
            .await
            .expect("get subscription")
            .expect("stored")
    }

    /// The depth of the stack's queue at `queue_url`, through the queue port.
    pub async fn depth(&self, queue_url: &str) -> QueueDepth {
        let queue = QueueName::ALL
            .into_iter()
            .find(|&name| self.aws.queue.url(name).ok() == Some(queue_url))
            .expect("one of the stack's five queues");
        self.aws
            .queue
            .depth(queue)
            .await
            .expect("GetQueueAttributes")
    }

    /// Registers a GitHub source.
    pub async fn add_github_source(&self, name: &str, secret: &str) {
        self.aws
            .store
            .put_source(&Source {
                name: name.to_owned(),
                provider: ProviderConfig::named("github").unwrap(),
                secrets: vec![secret.to_owned()],
                tolerance_secs: relay_core::domain::model::DEFAULT_TOLERANCE_SECS,
                created_at: 0,
                reconcile: None,
            })
            .await
            .expect("put source");
    }

    /// Registers a subscription for every event of `source`; returns its id.
    pub async fn add_subscription(&self, source: &str, url: &str, secret: &str) -> String {
        self.add_filtered_subscription(source, url, secret, None)
            .await
    }

    /// Registers a subscription for every event of `source` its content filter matches (all
    /// of them when `None`); returns its id.
    pub async fn add_filtered_subscription(
        &self,
        source: &str,
        url: &str,
        secret: &str,
        filter: Option<relay_core::domain::filter::Filter>,
    ) -> String {
        let id = relay_core::domain::ids::new_subscription_id();
        self.aws
            .store
            .put_subscription(&Subscription {
                id: id.clone(),
                source: source.to_owned(),
                url: url.to_owned(),
                events: vec!["*".to_owned()],
                secrets: vec![SigningSecret {
                    secret: secret.to_owned(),
                    expires_at: None,
                }],
                enabled: true,
                disabled_reason: None,
                failing_since: None,
                refused: None,
                headers: Vec::new(),
                created_at: 0,
                filter,
                policy: Default::default(),
                paused_until: None,
                pause_streak: 0,
                revision: 0,
            })
            .await
            .expect("put subscription");
        id
    }
}

/// What one receive-and-handle round did on one queue.
#[derive(Debug, Default, Clone)]
pub struct Pumped {
    pub received: usize,
    /// Message ids left on the queue (left for their visibility timeout, or hidden again).
    pub failed: Vec<String>,
    /// Message ids deleted after the fanout handled them.
    pub deleted: Vec<String>,
}

/// Totals over a poller's life.
#[derive(Debug, Default, Clone)]
pub struct PollStats {
    pub events_handled: usize,
    pub deliveries_handled: usize,
    pub failures: usize,
}

/// Stands in for Lambda's SQS event source: receives up to 10 messages from one queue through
/// the SQS consumer port, hands them to the fanout as one batch (under Lambda's deadline when
/// set) and settles each as the core maps its disposition (`relay_core::runtime::consume::pump`): deleted,
/// hidden again, or left to come back after its visibility timeout.
pub struct Poller {
    fanout: Fanout,
    queue: SqsQueue,
    pub events_url: String,
    pub deliveries_url: String,
    pub failing_deliveries_url: String,
    visibility_secs: u32,
    /// The function timeout each handler call runs under, as Lambda's deadline; None: no deadline.
    invocation_timeout: Option<Duration>,
    stats: Mutex<PollStats>,
}

impl Poller {
    pub async fn new(stack: &Stack, fanout: Fanout) -> Self {
        Self {
            fanout,
            queue: stack.aws.queue.clone(),
            events_url: stack.queues.events.clone(),
            deliveries_url: stack.queues.deliveries.clone(),
            failing_deliveries_url: stack.queues.failing_deliveries.clone(),
            visibility_secs: POLLER_VISIBILITY_SECS,
            invocation_timeout: None,
            stats: Mutex::new(PollStats::default()),
        }
    }

    /// Hides received messages for `secs` instead (failed records come back sooner).
    pub fn with_visibility(mut self, secs: u32) -> Self {
        self.visibility_secs = secs;
        self
    }

    /// Each handler call gets Lambda's deadline for a function with this timeout.
    pub fn with_invocation_timeout(mut self, timeout: Duration) -> Self {
        self.invocation_timeout = Some(timeout);
        self
    }

    pub fn stats(&self) -> PollStats {
        self.stats.lock().expect("stats").clone()
    }

    /// One receive (long-polling up to `wait_secs`) and one batch on `queue_url`.
    pub async fn pump(&self, queue_url: &str, wait_secs: u32) -> Pumped {
        let queue = if queue_url == self.events_url {
            QueueName::Events
        } else if queue_url == self.failing_deliveries_url {
            QueueName::FailingDeliveries
        } else {
            assert_eq!(queue_url, self.deliveries_url, "not a queue of this stack");
            QueueName::Deliveries
        };
        let deadline = self
            .invocation_timeout
            .map(|timeout| std::time::Instant::now() + timeout);
        let handled = pump(
            &self.queue,
            &self.fanout,
            queue,
            10,
            Duration::from_secs(u64::from(wait_secs)),
            Duration::from_secs(u64::from(self.visibility_secs)),
            deadline,
        )
        .await
        .expect("ReceiveMessage");
        let mut pumped = Pumped {
            received: handled.len(),
            ..Pumped::default()
        };
        for one in &handled {
            let id = one.message.message_id.clone().unwrap_or_default();
            match one.settled {
                Some(relay_core::Settle::Delete) => pumped.deleted.push(id),
                Some(_) => pumped.failed.push(id),
                None => panic!("settling {id} failed"),
            }
        }
        {
            let mut stats = self.stats.lock().expect("stats");
            if queue == QueueName::Events {
                stats.events_handled += handled.len();
            } else {
                stats.deliveries_handled += handled.len();
            }
            stats.failures += pumped.failed.len();
        }
        pumped
    }

    /// Polls the three work queues (as Lambda runs one poller per event source mapping; the
    /// failing lane without a long poll, so an empty one costs no wait) until `done`
    /// answers true, or `timeout` passes; returns whether `done` answered true.
    /// `timeout` is stretched by the machine's load (`room`), so a busy machine is given time
    /// rather than failed.
    pub async fn run_until(&self, timeout: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
        let started = Instant::now();
        loop {
            if done().await {
                return true;
            }
            if started.elapsed() >= room(timeout) {
                return false;
            }
            tokio::join!(
                self.pump(&self.events_url, 0),
                self.pump(&self.deliveries_url, 1),
                self.pump(&self.failing_deliveries_url, 0)
            );
        }
    }

    /// Keeps polling for `duration`, so that anything wrongly scheduled would show up.
    pub async fn run_for(&self, duration: Duration) {
        self.run_until(duration, async || false).await;
    }
}

/// One request the sink recorded.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body_b64: String,
    pub verified_with: Vec<String>,
    pub status: u16,
    pub at: f64,
}

impl Received {
    pub fn body(&self) -> Vec<u8> {
        STANDARD
            .decode(&self.body_b64)
            .expect("sink body is base64")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// `python3 tests/sink.py`, killed when dropped.
pub struct Sink {
    child: Child,
    pub port: u16,
    http: reqwest::Client,
}

impl Sink {
    /// Starts the sink checking signatures against `secret`. `python3` comes from PATH
    /// (`scripts/test` puts its virtualenv first); `RELAY_E2E_PYTHON` overrides it.
    pub async fn start(secret: &str) -> Self {
        let script = repo_root().join("tests/sink.py");
        let python = std::env::var("RELAY_E2E_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--port", "0", "--secret", secret])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("sink stdout");
        let line = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await;
        let line = match line {
            Ok(Ok(Ok(line))) => line,
            other => {
                let _ = child.kill();
                panic!("the sink did not start: {other:?}");
            }
        };
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "the sink printed {line:?}, not `listening <port>` (is standardwebhooks installed for {python}?)"
                )
            });
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Self { child, port, http }
    }

    /// The sink's URL for `path` (which picks its behaviour, e.g. `/fail/1/x`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything recorded so far, in arrival order.
    pub async fn received(&self) -> Vec<Received> {
        let text = self
            .http
            .get(self.url("/received"))
            .send()
            .await
            .expect("GET /received")
            .text()
            .await
            .expect("GET /received body");
        serde_json::from_str(&text).expect("GET /received JSON")
    }

    /// Recorded requests whose path starts with `prefix`.
    pub async fn received_on(&self, prefix: &str) -> Vec<Received> {
        self.received()
            .await
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `sha256=<hex HMAC-SHA256>` as GitHub signs `body` with `secret`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mac = relay_core::signing::hmac_sha256(secret.as_bytes(), &[body]);
    format!("sha256={}", hex::encode(mac))
}

/// A function URL invocation (payload format 2.0) as Lambda hands it to the receiver, turned
/// into a `lambda_http::Request` by lambda_http's own deserializer. With `base64` the body
/// travels base64-encoded (`isBase64Encoded: true`), as function URLs send binary bodies.
pub fn function_url_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    base64: bool,
) -> lambda_http::Request {
    let mut header_map = serde_json::Map::new();
    header_map.insert(
        "host".into(),
        "e2e0123456789.lambda-url.us-east-1.on.aws".into(),
    );
    header_map.insert("x-forwarded-proto".into(), "https".into());
    if let Some(body) = body {
        header_map.insert("content-length".into(), body.len().to_string().into());
    }
    for (name, value) in headers {
        header_map.insert(name.to_ascii_lowercase(), (*value).into());
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "e2e0123456789",
            "domainName": "e2e0123456789.lambda-url.us-east-1.on.aws",
            "domainPrefix": "e2e0123456789",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "relay-e2e"
            },
            "requestId": unique(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2025:12:13:20 +0000",
            "timeEpoch": 1_763_900_000_000_i64
        },
        "isBase64Encoded": base64
    });
    if let Some(body) = body {
        event["body"] = if base64 {
            STANDARD.encode(body).into()
        } else {
            String::from_utf8(body.to_vec())
                .expect("a text body must be UTF-8; send others base64-encoded")
                .into()
        };
    }
    lambda_http::request::from_str(&event.to_string()).expect("payload 2.0 request")
}

/// A signed GitHub delivery to `/{source}`.
pub fn github_request(
    source: &str,
    secret: &str,
    delivery_id: &str,
    event: &str,
    body: &[u8],
    base64: bool,
) -> lambda_http::Request {
    let signature = github_signature(secret, body);
    function_url_request(
        "POST",
        &format!("/{source}"),
        &[
            ("content-type", "application/json"),
            ("user-agent", "GitHub-Hookshot/e2e"),
            ("x-github-delivery", delivery_id),
            ("x-github-event", event),
            ("x-hub-signature-256", &signature),
        ],
        Some(body),
        base64,
    )
}

/// A handler's answer, read back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer body {:?} is not JSON: {e}", self.body))
    }
}

/// Calls `receiver::handle` the way the Lambda main does.
pub async fn invoke_receiver(receiver: &Receiver, request: lambda_http::Request) -> Answer {
    let response = receiver::handle(receiver, request)
        .await
        .expect("the receiver handler never errors");
    let (parts, body) = response.into_parts();
    let body = match body {
        lambda_http::Body::Empty => String::new(),
        lambda_http::Body::Text(text) => text,
        lambda_http::Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    };
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

// ------------------------------------------------------------------------------------------
// Shared by the test files.

pub const GITHUB_SECRET: &str = "e2e-github-secret";

/// A push body as a provider sends it: not canonical JSON (spacing, a newline, non-ASCII), so a
/// relay that re-serialized it would be caught.
pub const PUSH_BODY: &str = "{\"ref\": \"refs/heads/main\",\n  \"pusher\": {\"name\": \"Zoë Ångström\"}, \"note\": \"caf\\u00e9 ☕\"}";

pub fn attempt_header(received: &Received) -> &str {
    received.header("x-relay-attempt").unwrap_or("")
}

/// The attempt log of one event for one subscription, as (attempt, outcome, next).
pub async fn attempt_log(
    stack: &Stack,
    event_id: &str,
    subscription: &str,
) -> Vec<(u32, String, String)> {
    let records: Vec<AttemptRecord> = stack
        .aws
        .store
        .event_attempts(event_id)
        .await
        .expect("event attempts");
    records
        .into_iter()
        .filter(|r| r.subscription_id == subscription)
        .map(|r| (r.attempt, r.outcome.to_string(), r.next.to_string()))
        .collect()
}

pub fn owned(log: &[(u32, &str, &str)]) -> Vec<(u32, String, String)> {
    log.iter()
        .map(|(n, outcome, next)| (*n, (*outcome).to_owned(), (*next).to_owned()))
        .collect()
}

pub async fn accepted_id(answer: Answer) -> String {
    assert_eq!(answer.status, 202, "expected 202, got {answer:?}");
    answer.json()["id"]
        .as_str()
        .expect("202 carries the event id")
        .to_owned()
}

/// The id of the only subscription of `source`.
pub async fn only_subscription(stack: &Stack, source: &str) -> String {
    let subs = stack
        .aws
        .store
        .source_subscriptions(source)
        .await
        .expect("subscriptions");
    assert_eq!(subs.len(), 1);
    subs[0].id.clone()
}

/// Checks a `webhook-signature` over raw bytes, for bodies the Python library cannot take
/// (it decodes the body as UTF-8): `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`
/// keyed with the base64-decoded part of the `whsec_` secret.
pub fn signed_with(received: &Received, whsec: &str) -> bool {
    let b64 = STANDARD;
    let key = b64
        .decode(whsec.trim_start_matches("whsec_"))
        .expect("secret");
    let (Some(id), Some(ts), Some(sigs)) = (
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        received.header("webhook-signature"),
    ) else {
        return false;
    };
    let body = received.body();
    let mac =
        relay_core::signing::hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", &body]);
    let expected = format!("v1,{}", b64.encode(mac));
    sigs.split(' ').any(|s| s == expected)
}

/// Deterministic bytes that are not UTF-8.
pub fn binary_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    out[0] = 0xff;
    assert!(std::str::from_utf8(&out).is_err());
    out
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
