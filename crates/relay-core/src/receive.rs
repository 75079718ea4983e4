//! The receive use case: `POST /{source}` → verify over the raw bytes → deduplicate → enqueue →
//! answer. Never answers 2xx before the queue holds the event.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tracing::{info, warn};

use crate::cache::TtlCache;
use crate::clock::SharedClock;
use crate::ids::new_event_id;
use crate::model::{DedupClaim, EventEnvelope, Source};
use crate::ports::{Queue, Store};
use crate::providers::{self, InboundRequest, Outcome};

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Larger bodies get 413. 256 KiB keeps one queue message and one stored event in limits.
    pub max_body_bytes: usize,
    /// How long a `pending` dedup claim holds before another copy may take over.
    pub dedup_lease_secs: i64,
    /// How long a queued delivery id is remembered (longer than providers retry).
    pub dedup_ttl_secs: i64,
    pub cache_ttl: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            dedup_lease_secs: 30,
            dedup_ttl_secs: 7 * 86_400,
            cache_ttl: Duration::from_secs(10),
        }
    }
}

/// An HTTP answer in neutral form; the Lambda and `relay dev` adapters turn it into theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// JSON text.
    pub body: String,
}

impl Reply {
    fn json(status: u16, value: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: value.to_string(),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, serde_json::json!({ "error": message }))
    }

    fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

pub struct Receiver {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    clock: SharedClock,
    config: ReceiverConfig,
    sources: TtlCache<Arc<Source>>,
}

impl Receiver {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        clock: SharedClock,
        config: ReceiverConfig,
    ) -> Self {
        let sources = TtlCache::new(config.cache_ttl);
        Self {
            store,
            queue,
            clock,
            config,
            sources,
        }
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    pub async fn handle(&self, request: InboundRequest) -> Reply {
        if request.path == "/healthz" && request.method == Method::GET {
            return Reply::json(200, serde_json::json!({ "status": "ok" }));
        }
        let Some(name) = source_name(&request.path) else {
            return Reply::error(404, "no such source: the path is /{source}");
        };
        // Only POST carries webhooks; GET is looked at further for `token` sources, whose URL
        // senders such as Mailchimp check with a GET.
        if request.method != Method::POST && request.method != Method::GET {
            return method_not_allowed();
        }
        if request.body.len() > self.config.max_body_bytes {
            return Reply::error(
                413,
                &format!(
                    "body of {} bytes is over the limit of {} bytes",
                    request.body.len(),
                    self.config.max_body_bytes
                ),
            );
        }
        let source = match self
            .sources
            .get_or_load(name, || async {
                self.store.get_source(name).await.map(|s| s.map(Arc::new))
            })
            .await
        {
            Ok(Some(source)) => source,
            Ok(None) => return Reply::error(404, &format!("no such source: {name}")),
            Err(e) => {
                warn!(source = name, error = %e, "source lookup failed");
                return Reply::error(503, "store unavailable; nothing was accepted, retry later");
            }
        };

        if !providers::accepts_method(&source.provider, &request.method) {
            return method_not_allowed();
        }

        let now_ms = self.clock.now_millis();
        let now = now_ms.div_euclid(1000);
        let verified = match providers::verify(&source, &request, now) {
            Ok(Outcome::Event(verified)) => verified,
            Ok(Outcome::Answer(answer)) => {
                // A challenge or URL check: answered, nothing queued.
                info!(
                    source = name,
                    status = answer.status,
                    "answered without queuing"
                );
                return Reply::json(answer.status, answer.body);
            }
            Err(rejection) => {
                warn!(source = name, status = rejection.status, reason = %rejection.message, "request refused");
                return Reply::error(rejection.status, &rejection.message);
            }
        };

        let event_id = new_event_id();
        if let Some(key) = &verified.delivery_id {
            let claim = self
                .store
                .claim_dedup(
                    name,
                    key,
                    &event_id,
                    now,
                    now + self.config.dedup_lease_secs,
                )
                .await;
            match claim {
                Ok(DedupClaim::New) => {}
                Ok(DedupClaim::Queued { event_id: first }) => {
                    info!(event_id = %first, source = name, delivery_id = %key, "duplicate delivery answered");
                    return Reply::json(200, serde_json::json!({ "id": first, "duplicate": true }));
                }
                Ok(DedupClaim::Pending) => {
                    return Reply::error(
                        409,
                        "this delivery id is being accepted right now; retry shortly",
                    )
                    .with_header("retry-after", "5".into());
                }
                Err(e) => {
                    warn!(source = name, error = %e, "dedup claim failed");
                    return Reply::error(
                        503,
                        "store unavailable; nothing was accepted, retry later",
                    );
                }
            }
        }

        let (body, body_encoding) = EventEnvelope::encode_body(&request.body);
        let event = EventEnvelope {
            id: event_id,
            source: source.name.clone(),
            event_type: verified.event_type,
            content_type: request.content_type().map(str::to_owned),
            received_at: now_ms,
            body,
            body_encoding,
        };
        if let Err(e) = self.queue.send_event(&event).await {
            warn!(event_id = %event.id, source = name, error = %e, "enqueue failed");
            let released = match &verified.delivery_id {
                Some(key) => self.store.release_dedup(name, key, &event.id).await,
                None => Ok(()),
            };
            if let Err(e) = released {
                // The lease expires by itself; the provider's retry gets 409 until then.
                warn!(event_id = %event.id, error = %e, "dedup release failed");
            }
            return Reply::error(503, "queue unavailable; nothing was accepted, retry later");
        }
        if let Some(key) = &verified.delivery_id {
            let expires = now + self.config.dedup_ttl_secs;
            if let Err(e) = self
                .store
                .confirm_dedup(name, key, &event.id, expires)
                .await
            {
                // Queued already, so answer 202; a copy arriving within the lease gets 409,
                // later copies may be queued again (at-least-once).
                warn!(event_id = %event.id, error = %e, "dedup confirm failed");
            }
        }
        info!(event_id = %event.id, source = name, event_type = %event.event_type, bytes = request.body.len(), "event queued");
        // Event ids are [a-z0-9_] only, so the answer needs no JSON encoder.
        Reply {
            status: 202,
            headers: vec![("content-type", "application/json".into())],
            body: format!("{{\"id\":\"{}\"}}", event.id),
        }
    }
}

fn method_not_allowed() -> Reply {
    Reply::error(405, "method not allowed: send webhooks with POST")
        .with_header("allow", "POST".into())
}

/// `/github` → `github`; anything with more segments or odd characters is no source.
fn source_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?.trim_end_matches('/');
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then_some(name)
}

/// Checks a name given to `sources add`.
pub fn validate_source_name(name: &str) -> Result<(), String> {
    if name == "healthz" {
        return Err("healthz is reserved".into());
    }
    match source_name(&format!("/{name}")) {
        Some(n) if n == name => Ok(()),
        _ => Err(format!(
            "invalid source name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::model::{DeliveryTask, ProviderConfig, TokenOptions};
    use crate::ports::QueueError;
    use crate::signing::hmac_sha256;
    use crate::testkit::MemoryStore;
    use async_trait::async_trait;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};
    use std::sync::Mutex;

    /// Records what the receiver queues; the receive path sends no deliveries.
    #[derive(Default)]
    struct RecordingQueue {
        queued: Mutex<Vec<EventEnvelope>>,
        deliveries: Mutex<Vec<DeliveryTask>>,
    }

    #[async_trait]
    impl Queue for RecordingQueue {
        async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError> {
            self.queued.lock().unwrap().push(event.clone());
            Ok(())
        }
        async fn send_delivery(&self, task: &DeliveryTask, _: u32) -> Result<(), QueueError> {
            self.deliveries.lock().unwrap().push(task.clone());
            Ok(())
        }
        async fn dead_letter_delivery(&self, task: &DeliveryTask) -> Result<(), QueueError> {
            self.deliveries.lock().unwrap().push(task.clone());
            Ok(())
        }
    }

    const NOW: i64 = 1_700_000_000;

    fn receiver() -> (Receiver, Arc<RecordingQueue>) {
        let source = |name: &str, provider| Source {
            name: name.into(),
            provider,
            secrets: vec!["slack-secret".into()],
            tolerance_secs: 300,
            created_at: 0,
        };
        let store = Arc::new(MemoryStore::with_sources([
            source("slack", ProviderConfig::Slack),
            source("mc", ProviderConfig::Token(TokenOptions::default())),
            source("gh", ProviderConfig::Github),
        ]));
        let queue = Arc::new(RecordingQueue::default());
        let receiver = Receiver::new(
            store,
            queue.clone(),
            FixedClock::at_secs(NOW),
            ReceiverConfig::default(),
        );
        (receiver, queue)
    }

    fn inbound(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &[(&str, String)],
        body: &str,
    ) -> InboundRequest {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        InboundRequest {
            method,
            path: path.into(),
            query: query.map(str::to_owned),
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    fn slack_request(ts: i64, body: &str) -> InboundRequest {
        let mac = hmac_sha256(
            b"slack-secret",
            &[format!("v0:{ts}:").as_bytes(), body.as_bytes()],
        );
        inbound(
            Method::POST,
            "/slack",
            None,
            &[
                ("x-slack-request-timestamp", ts.to_string()),
                ("x-slack-signature", format!("v0={}", hex::encode(mac))),
                ("content-type", "application/json".into()),
            ],
            body,
        )
    }

    #[tokio::test]
    async fn slack_challenge_is_answered_and_not_queued() {
        let (receiver, queue) = receiver();
        let body = r#"{"type":"url_verification","challenge":"c-123","token":"t"}"#;
        let reply = receiver.handle(slack_request(NOW, body)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, r#"{"challenge":"c-123"}"#);
        assert!(queue.queued.lock().unwrap().is_empty());
        // Stale by the injected clock: 401, and it says why.
        let reply = receiver.handle(slack_request(NOW - 812, body)).await;
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains("timestamp 812 s old, tolerance 300 s"));
    }

    #[tokio::test]
    async fn slack_event_is_queued_once() {
        let (receiver, queue) = receiver();
        let body = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}"#;
        assert_eq!(receiver.handle(slack_request(NOW, body)).await.status, 202);
        let again = receiver.handle(slack_request(NOW, body)).await;
        assert_eq!(again.status, 200);
        assert!(again.body.contains("\"duplicate\":true"));
        assert!(queue.deliveries.lock().unwrap().is_empty());
        let queued = queue.queued.lock().unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].event_type, "message");
    }

    #[tokio::test]
    async fn methods() {
        let (receiver, queue) = receiver();
        let get = |path: &str, query: Option<&str>| inbound(Method::GET, path, query, &[], "");
        // The token source's URL check.
        let reply = receiver
            .handle(get("/mc", Some("token=slack-secret")))
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, r#"{"status":"ok"}"#)
        );
        assert_eq!(
            receiver.handle(get("/mc", Some("token=nope"))).await.status,
            401
        );
        assert_eq!(receiver.handle(get("/mc", None)).await.status, 401);
        // Other sources and other methods.
        let reply = receiver.handle(get("/gh", None)).await;
        assert_eq!(reply.status, 405);
        assert!(reply.headers.contains(&("allow", "POST".into())));
        assert_eq!(
            receiver
                .handle(inbound(
                    Method::PUT,
                    "/mc",
                    Some("token=slack-secret"),
                    &[],
                    ""
                ))
                .await
                .status,
            405
        );
        assert_eq!(
            receiver
                .handle(inbound(Method::DELETE, "/slack", None, &[], ""))
                .await
                .status,
            405
        );
        assert_eq!(receiver.handle(get("/healthz", None)).await.status, 200);
        assert!(queue.queued.lock().unwrap().is_empty());
        // A token POST is queued with the form's type.
        let post = inbound(
            Method::POST,
            "/mc",
            Some("token=slack-secret"),
            &[("content-type", "application/x-www-form-urlencoded".into())],
            "type=unsubscribe&data%5Bemail%5D=a%40b.c",
        );
        assert_eq!(receiver.handle(post).await.status, 202);
        assert_eq!(queue.queued.lock().unwrap()[0].event_type, "unsubscribe");
    }

    #[test]
    fn source_names() {
        assert_eq!(source_name("/github"), Some("github"));
        assert_eq!(source_name("/github/"), Some("github"));
        assert_eq!(source_name("/a/b"), None);
        assert_eq!(source_name("/"), None);
        assert_eq!(source_name("github"), None);
        assert!(validate_source_name("stripe-live").is_ok());
        assert!(validate_source_name("healthz").is_err());
        assert!(validate_source_name("a b").is_err());
    }
}
