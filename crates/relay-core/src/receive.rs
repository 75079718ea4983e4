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
use crate::providers::{self, InboundRequest};

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
        if request.method != Method::POST {
            return Reply::error(405, "method not allowed: send webhooks with POST")
                .with_header("allow", "POST".into());
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

        let now_ms = self.clock.now_millis();
        let now = now_ms.div_euclid(1000);
        let verified = match providers::verify(&source, &request, now) {
            Ok(verified) => verified,
            Err(rejection) => {
                warn!(source = name, status = rejection.status, reason = %rejection.message, "request refused");
                return Reply::error(rejection.status, &rejection.message);
            }
        };

        let event_id = new_event_id();
        if let Some(key) = &verified.delivery_id {
            let claim = self
                .store
                .claim_dedup(name, key, &event_id, now, now + self.config.dedup_lease_secs)
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
                    return Reply::error(503, "store unavailable; nothing was accepted, retry later");
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
            if let Some(key) = &verified.delivery_id {
                if let Err(e) = self.store.release_dedup(name, key, &event.id).await {
                    // The lease expires by itself; the provider's retry gets 409 until then.
                    warn!(event_id = %event.id, error = %e, "dedup release failed");
                }
            }
            return Reply::error(503, "queue unavailable; nothing was accepted, retry later");
        }
        if let Some(key) = &verified.delivery_id {
            let expires = now + self.config.dedup_ttl_secs;
            if let Err(e) = self.store.confirm_dedup(name, key, &event.id, expires).await {
                // Queued already, so answer 202; a copy arriving within the lease gets 409,
                // later copies may be queued again (at-least-once).
                warn!(event_id = %event.id, error = %e, "dedup confirm failed");
            }
        }
        info!(event_id = %event.id, source = name, event_type = %event.event_type, bytes = request.body.len(), "event queued");
        Reply::json(202, serde_json::json!({ "id": event.id }))
    }
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
