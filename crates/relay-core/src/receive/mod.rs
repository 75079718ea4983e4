//! The receive use case: `POST /{source}` → verify over the raw bytes → deduplicate → enqueue →
//! answer. Never answers 2xx before the queue holds the event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use tracing::{info, warn};

use crate::domain::ids::event_id_at;
use crate::domain::metrics::Tally;
use crate::domain::model::{DedupClaim, EventEnvelope, Source};
use crate::ports::bodies::{claim_check, travels_inline};
use crate::ports::cache::TtlCache;
use crate::ports::clock::SharedClock;
use crate::ports::{BodyStore, Catalog, Claim, DedupLedger, EventArchive, Lease, Queue};
use crate::providers::{self, InboundRequest, Outcome, Rejection, Verified};

mod outcome;
pub use outcome::{ReceiveOutcome, Refusal, Reply, Unavailable};

pub use crate::domain::model::{
    DEFAULT_MAX_BODY_BYTES, INLINE_BODY_MAX_BYTES, MAX_CONTENT_TYPE_BYTES, MAX_DELIVERY_ID_BYTES,
    MAX_EVENT_TYPE_BYTES, MAX_SOURCE_NAME_BYTES,
};

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Larger bodies get 413 (default `DEFAULT_MAX_BODY_BYTES`, 6 MB). Bodies over
    /// `INLINE_BODY_MAX_BYTES` need a body store (`Receiver::with_bodies`); without one that is
    /// the limit.
    pub max_body_bytes: usize,
    /// How long a `pending` dedup claim holds before another copy may take over.
    pub dedup_lease_secs: i64,
    /// How long a queued delivery id is remembered (longer than providers retry).
    pub dedup_ttl_secs: i64,
    pub cache_ttl: Duration,
    /// Off: every authentic request is queued, copies included (no dedup writes).
    pub dedup: bool,
    /// Confirm a claim once its event is queued (a second write). Off when the fanout stores
    /// every event (`ArchiveMode::All`): the stored event then confirms the claim.
    pub confirm_dedup: bool,
    /// How long an unconfirmed claim whose event is not stored holds off copies.
    pub unstored_claim_secs: i64,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dedup_lease_secs: 30,
            dedup_ttl_secs: 7 * 86_400,
            cache_ttl: Duration::from_secs(10),
            dedup: true,
            confirm_dedup: true,
            unstored_claim_secs: 900,
        }
    }
}

/// The metrics dimension of requests to a path that names no stored source.
pub const UNKNOWN_SOURCE: &str = "(unknown)";

/// What the answer to one request came from, for the tally.
#[derive(Default)]
struct Seen {
    source_known: bool,
}

pub struct Receiver {
    catalog: Arc<dyn Catalog>,
    ledger: Arc<dyn DedupLedger>,
    /// Stored events confirm unconfirmed claims (`ReceiverConfig::confirm_dedup`).
    archive: Arc<dyn EventArchive>,
    queue: Arc<dyn Queue>,
    /// Where bodies too large to travel inline are kept; none: they are refused.
    bodies: Option<Arc<dyn BodyStore>>,
    clock: SharedClock,
    config: ReceiverConfig,
    sources: TtlCache<Arc<Source>>,
    tally: Option<Arc<Mutex<Tally>>>,
}

impl Receiver {
    /// Over a store that holds the catalog and the dedup ledger (the receiver uses nothing else).
    pub fn new<S: Catalog + DedupLedger + EventArchive + 'static>(
        store: Arc<S>,
        queue: Arc<dyn Queue>,
        clock: SharedClock,
        config: ReceiverConfig,
    ) -> Self {
        let sources = TtlCache::new(config.cache_ttl);
        Self {
            catalog: store.clone(),
            ledger: store.clone(),
            archive: store,
            queue,
            bodies: None,
            clock,
            config,
            sources,
            tally: None,
        }
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// Keeps bodies over `INLINE_BODY_MAX_BYTES` (up to the configured limit) in `bodies`.
    pub fn with_bodies(mut self, bodies: Arc<dyn BodyStore>) -> Self {
        self.bodies = Some(bodies);
        self
    }

    /// The largest body accepted: the configured limit, or the inline one without a body store.
    pub fn body_limit(&self) -> usize {
        match self.bodies {
            Some(_) => self.config.max_body_bytes,
            None => self.config.max_body_bytes.min(INLINE_BODY_MAX_BYTES),
        }
    }

    /// Counts every answer into `tally` (the adapter renders it as EMF or Prometheus).
    pub fn with_tally(mut self, tally: Arc<Mutex<Tally>>) -> Self {
        self.tally = Some(tally);
        self
    }

    /// Receives one request; each edge answers with `ReceiveOutcome::reply`.
    pub async fn handle(&self, request: InboundRequest) -> ReceiveOutcome {
        let Some(tally) = &self.tally else {
            return self.answer(request, &mut Seen::default()).await;
        };
        let health_check = request.path == "/healthz";
        let name = source_name(&request.path).map(str::to_owned);
        let mut seen = Seen::default();
        let outcome = self.answer(request, &mut seen).await;
        if !health_check {
            // Only a stored source is a dimension: request paths are anyone's to choose.
            let source = match &name {
                Some(name) if seen.source_known => name.as_str(),
                _ => UNKNOWN_SOURCE,
            };
            let mut tally = tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let duplicate = matches!(outcome, ReceiveOutcome::Duplicate { .. });
            tally.record_reply(source, outcome.status(), duplicate);
        }
        outcome
    }

    /// Claims the delivery id for `event_id`. Confirmed claims say at once whether a copy was
    /// queued. An unconfirmed claim (`confirm_dedup` off: the fanout's stored event is the
    /// confirmation, which saves a write per event) is a duplicate once its event is stored, and
    /// is taken over when its event was not stored within `unstored_claim_secs` (the receiver
    /// that claimed it never queued it, or the event is stuck), so a copy is then queued.
    async fn claim(&self, source: &str, key: &str, event_id: &str, now: i64) -> ClaimVerdict {
        let lease_until = if self.config.confirm_dedup {
            now + self.config.dedup_lease_secs
        } else {
            now + self.config.dedup_ttl_secs
        };
        let mut taken_over = false;
        loop {
            let holder = match self
                .ledger
                .claim_dedup(
                    Claim::new(source, key, event_id),
                    Lease {
                        now,
                        until: lease_until,
                    },
                )
                .await
            {
                Ok(DedupClaim::New) => return ClaimVerdict::Proceed,
                Ok(DedupClaim::Queued { event_id: first }) => {
                    return ClaimVerdict::Duplicate(first);
                }
                Ok(DedupClaim::Pending { event_id: holder }) => holder,
                Err(e) => {
                    // The claim may have been written with its answer lost: drop it if it is
                    // ours, or the provider's retry would be told 409 until it is taken over.
                    if let Err(release) = self
                        .ledger
                        .release_dedup(Claim::new(source, key, event_id))
                        .await
                    {
                        warn!(source, delivery_id = %key, error = %release, "could not drop a claim whose write failed");
                    }
                    return ClaimVerdict::Unavailable(e);
                }
            };
            if self.config.confirm_dedup || holder.is_empty() || taken_over {
                return ClaimVerdict::Busy;
            }
            match self.archive.get_event(&holder).await {
                Ok(Some(_)) => return ClaimVerdict::Duplicate(holder),
                Ok(None) => {}
                Err(e) => return ClaimVerdict::Unavailable(e),
            }
            let claimed_at = event_time_secs(&holder);
            if claimed_at.is_none_or(|at| now - at < self.config.unstored_claim_secs) {
                return ClaimVerdict::Busy;
            }
            warn!(source, delivery_id = %key, event_id = %holder, "claim of an event never stored taken over");
            if let Err(e) = self
                .ledger
                .release_dedup(Claim::new(source, key, &holder))
                .await
            {
                return ClaimVerdict::Unavailable(e);
            }
            taken_over = true;
        }
    }

    async fn answer(&self, request: InboundRequest, seen: &mut Seen) -> ReceiveOutcome {
        if request.path == "/healthz" && request.method == Method::GET {
            return ReceiveOutcome::Healthy;
        }
        let Some(name) = source_name(&request.path) else {
            return ReceiveOutcome::Refused(Refusal::NoSourcePath);
        };
        // Only POST carries webhooks; GET is looked at further for `token` sources, whose URL
        // senders such as Mailchimp check with a GET.
        if request.method != Method::POST && request.method != Method::GET {
            return ReceiveOutcome::Refused(Refusal::MethodNotAllowed);
        }
        if request.body.len() > self.body_limit() {
            return ReceiveOutcome::Refused(Refusal::TooLarge {
                bytes: request.body.len(),
                limit: self.body_limit(),
            });
        }
        let source = match self
            .sources
            .get_or_load(name, || async {
                self.catalog.get_source(name).await.map(|s| s.map(Arc::new))
            })
            .await
        {
            Ok(Some(source)) => {
                seen.source_known = true;
                source
            }
            Ok(None) => {
                return ReceiveOutcome::Refused(Refusal::UnknownSource {
                    name: name.to_owned(),
                });
            }
            Err(e) => {
                warn!(source = name, error = %e, "source lookup failed");
                return ReceiveOutcome::Unavailable(Unavailable::Store);
            }
        };

        if !providers::accepts_method(&source.provider, &request.method) {
            return ReceiveOutcome::Refused(Refusal::MethodNotAllowed);
        }

        let now_ms = self.clock.now_millis();
        let now = now_ms.div_euclid(1000);
        let verified = match providers::verify(source.as_ref(), &request, now) {
            Ok(Outcome::Event(verified)) => verified,
            Ok(Outcome::Answer(answer)) => {
                // A challenge or URL check: answered, nothing queued.
                info!(
                    source = name,
                    status = answer.status,
                    "answered without queuing"
                );
                return ReceiveOutcome::Challenge(answer);
            }
            Err(rejection) => {
                warn!(source = name, status = rejection.status, reason = %rejection.message, "request refused");
                return ReceiveOutcome::Refused(Refusal::Rejected(rejection));
            }
        };
        if let Err(rejection) = check_carriable(&verified, request.content_type()) {
            warn!(source = name, status = rejection.status, reason = %rejection.message, "request refused");
            return ReceiveOutcome::Refused(Refusal::Rejected(rejection));
        }

        self.queue_once(
            name,
            verified,
            request.content_type(),
            &request.body,
            now_ms,
            false,
        )
        .await
    }

    /// Ingests an event read from the provider's API by `relay reconcile`: it carries no webhook
    /// signature (its authenticity is the API call), so only the carriable check, dedup on
    /// `delivery_id` and the enqueue of a signed request apply. Answers as `handle` would.
    pub async fn accept_reconciled(
        &self,
        source: &Source,
        verified: Verified,
        content_type: Option<&str>,
        body: &[u8],
    ) -> ReceiveOutcome {
        if let Err(rejection) = check_carriable(&verified, content_type) {
            return ReceiveOutcome::Refused(Refusal::Rejected(rejection));
        }
        let now_ms = self.clock.now_millis();
        self.queue_once(&source.name, verified, content_type, body, now_ms, true)
            .await
    }

    /// Deduplicates on the delivery id, queues the event and answers: the steps every accepted
    /// event goes through, received or reconciled.
    #[allow(clippy::too_many_arguments)]
    async fn queue_once(
        &self,
        name: &str,
        verified: Verified,
        content_type: Option<&str>,
        body: &[u8],
        now_ms: i64,
        reconciled: bool,
    ) -> ReceiveOutcome {
        let now = now_ms.div_euclid(1000);
        let event_id = event_id_at(now_ms);
        // The key copies of one delivery share; none when dedup is off.
        let dedup_key = verified.delivery_id.as_ref().filter(|_| self.config.dedup);
        if let Some(key) = dedup_key {
            match self.claim(name, key, &event_id, now).await {
                ClaimVerdict::Proceed => {}
                ClaimVerdict::Duplicate(first) => {
                    info!(event_id = %first, source = name, delivery_id = %key, "duplicate delivery answered");
                    return ReceiveOutcome::Duplicate { event_id: first };
                }
                ClaimVerdict::Busy => {
                    return ReceiveOutcome::Busy;
                }
                ClaimVerdict::Unavailable(e) => {
                    warn!(source = name, error = %e, "dedup claim failed");
                    return ReceiveOutcome::Unavailable(Unavailable::Store);
                }
            }
        }

        let (encoded, body_encoding, stored_body) = match self.store_body(&event_id, body).await {
            Ok(Some(stored)) => (String::new(), Default::default(), Some(stored)),
            Ok(None) => {
                let (encoded, body_encoding) = EventEnvelope::encode_body(body);
                (encoded, body_encoding, None)
            }
            Err(e) => {
                warn!(event_id = %event_id, source = name, error = %e, "body store write failed");
                self.release(name, dedup_key, &event_id).await;
                return ReceiveOutcome::Unavailable(Unavailable::Bodies);
            }
        };
        let event = EventEnvelope {
            id: event_id,
            source: name.to_owned(),
            event_type: verified.event_type,
            content_type: content_type.map(str::to_owned),
            received_at: now_ms,
            body: encoded,
            body_encoding,
            reconciled,
            stored_body,
        };
        if let Err(e) = self.queue.send_event(&event).await {
            warn!(event_id = %event.id, source = name, error = %e, "enqueue failed");
            if let (Some(stored), Some(bodies)) = (&event.stored_body, &self.bodies)
                && let Err(e) = bodies.delete(&stored.key).await
            {
                // Never delivered (no message names it); the bucket's lifecycle expires it.
                warn!(event_id = %event.id, error = %e, "could not delete the body of an event not queued");
            }
            self.release(name, dedup_key, &event.id).await;
            return ReceiveOutcome::Unavailable(Unavailable::Queue);
        }
        if let Some(key) = dedup_key.filter(|_| self.config.confirm_dedup) {
            let expires = now + self.config.dedup_ttl_secs;
            if let Err(e) = self
                .ledger
                .confirm_dedup(Claim::new(name, key, &event.id), expires)
                .await
            {
                // Queued already, so answer 202; a copy arriving within the lease gets 409,
                // later copies may be queued again (at-least-once).
                warn!(event_id = %event.id, error = %e, "dedup confirm failed");
            }
        }
        // Log bytes are billed per event: `reconciled` only on the events it marks.
        if reconciled {
            info!(event_id = %event.id, source = name, event_type = %event.event_type, bytes = body.len(), reconciled, "event queued");
        } else {
            info!(event_id = %event.id, source = name, event_type = %event.event_type, bytes = body.len(), "event queued");
        }
        ReceiveOutcome::Accepted { event_id: event.id }
    }
}

impl Receiver {
    /// Stores a body too large to travel inline and returns its claim check; `None` for a body
    /// that travels inline.
    async fn store_body(
        &self,
        event_id: &str,
        body: &[u8],
    ) -> Result<Option<crate::domain::model::StoredBody>, crate::ports::BodyStoreError> {
        if travels_inline(body.len()) {
            return Ok(None);
        }
        let Some(bodies) = &self.bodies else {
            // `body_limit` refuses these before; reconciled events are sized by the provider.
            return Err(crate::ports::BodyStoreError::Unavailable(
                "no body store is configured for bodies over the inline limit".into(),
            ));
        };
        let stored = claim_check(event_id, body);
        bodies
            .put(
                &stored.key,
                bytes::Bytes::copy_from_slice(body),
                &stored.sha256,
            )
            .await?;
        Ok(Some(stored))
    }

    /// Drops the dedup claim of an event that could not be queued, so the provider's retry is
    /// accepted.
    async fn release(&self, source: &str, dedup_key: Option<&String>, event_id: &str) {
        let Some(key) = dedup_key else { return };
        if let Err(e) = self
            .ledger
            .release_dedup(Claim::new(source, key, event_id))
            .await
        {
            // The lease expires by itself; the provider's retry gets 409 until then.
            warn!(event_id, error = %e, "dedup release failed");
        }
    }
}

/// What a delivery id's claim means for the request holding it.
enum ClaimVerdict {
    /// Ours: queue the event.
    Proceed,
    /// A copy of the event with this id was queued.
    Duplicate(String),
    /// Another copy is being accepted, or was queued and not stored yet: retry later.
    Busy,
    Unavailable(crate::ports::StoreError),
}

/// Seconds since the epoch when the relay minted `event_id` (its UUIDv7 time).
fn event_time_secs(event_id: &str) -> Option<i64> {
    crate::domain::ids::event_time_millis(event_id).map(|ms| ms.div_euclid(1000))
}

/// Refuses (400) an authentic request carrying something the relay could not deliver or store,
/// whichever provider extracted it: an event type that is not a valid header value (over
/// `MAX_EVENT_TYPE_BYTES`, or a byte outside visible ASCII and space; an empty type is fine), a
/// delivery id over `MAX_DELIVERY_ID_BYTES`, or a content type over `MAX_CONTENT_TYPE_BYTES`.
/// Messages name the position of an offending byte, never the bytes.
pub fn check_carriable(verified: &Verified, content_type: Option<&str>) -> Result<(), Rejection> {
    let event_type = verified.event_type.as_bytes();
    if event_type.len() > MAX_EVENT_TYPE_BYTES {
        return Err(Rejection::malformed(format!(
            "the event type is not a valid header value: {} bytes long, the limit is {MAX_EVENT_TYPE_BYTES}",
            event_type.len()
        )));
    }
    if let Some(position) = event_type.iter().position(|b| !(0x20..=0x7e).contains(b)) {
        return Err(Rejection::malformed(format!(
            "the event type is not a valid header value: byte {} of {} is not visible ASCII or space",
            position + 1,
            event_type.len()
        )));
    }
    if let Some(id) = &verified.delivery_id
        && id.len() > MAX_DELIVERY_ID_BYTES
    {
        return Err(Rejection::malformed(format!(
            "the delivery id is {} bytes long; the relay deduplicates on ids of at most {MAX_DELIVERY_ID_BYTES} bytes",
            id.len()
        )));
    }
    if let Some(content_type) = content_type
        && content_type.len() > MAX_CONTENT_TYPE_BYTES
    {
        return Err(Rejection::malformed(format!(
            "the content-type is {} bytes long; the limit is {MAX_CONTENT_TYPE_BYTES}",
            content_type.len()
        )));
    }
    Ok(())
}

/// `/github` → `github`; anything with more segments or odd characters is no source.
fn source_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?.trim_end_matches('/');
    let valid = !name.is_empty()
        && name.len() <= MAX_SOURCE_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then_some(name)
}

/// A name `sources add` refuses: reserved, or not 1-64 of the characters a path segment carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSourceName {
    #[error("{name} is reserved: the relay serves /{name} itself")]
    Reserved { name: String },
    #[error("invalid source name {name:?}: use 1-64 letters, digits, '-', '_' or '.'")]
    Malformed { name: String },
}

/// Paths the relay serves itself (health check, relay dev's Prometheus scrape and console), so
/// no source may be named after them.
pub const RESERVED_SOURCE_NAMES: [&str; 3] = ["healthz", "metrics", "console"];

/// Checks a name given to `sources add`.
pub fn validate_source_name(name: &str) -> Result<(), InvalidSourceName> {
    if RESERVED_SOURCE_NAMES.contains(&name) {
        return Err(InvalidSourceName::Reserved {
            name: name.to_owned(),
        });
    }
    match source_name(&format!("/{name}")) {
        Some(n) if n == name => Ok(()),
        _ => Err(InvalidSourceName::Malformed {
            name: name.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::metrics::Metric;
    use crate::domain::model::ProviderConfig;
    use crate::ports::clock::FixedClock;
    use crate::providers::{HmacOptions, TokenOptions};
    use crate::signing::hmac_sha256;
    use crate::testkit::{MemoryStore, RecordingQueue};
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};

    const NOW: i64 = 1_700_000_000;
    const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn receiver() -> (Receiver, Arc<RecordingQueue>) {
        let (receiver, queue, _) = receiver_and_store();
        (receiver, queue)
    }

    fn receiver_and_store() -> (Receiver, Arc<RecordingQueue>, Arc<MemoryStore>) {
        let (receiver, queue, store, _) = receiver_with(ReceiverConfig::default());
        (receiver, queue, store)
    }

    fn receiver_with(
        config: ReceiverConfig,
    ) -> (
        Receiver,
        Arc<RecordingQueue>,
        Arc<MemoryStore>,
        Arc<FixedClock>,
    ) {
        let named = |name: &str| ProviderConfig::named(name).unwrap();
        let source = |name: &str, provider| Source {
            name: name.into(),
            provider,
            secrets: vec!["slack-secret".into()],
            tolerance_secs: 300,
            created_at: 0,
            reconcile: None,
        };
        let store = Arc::new(MemoryStore::with_sources([
            source("slack", named("slack")),
            source("mc", TokenOptions::default().into()),
            source("gh", named("github")),
            source("stripe", named("stripe")),
            source(
                "acme",
                HmacOptions {
                    header: "x-sig".into(),
                    type_pointer: Some("/kind".into()),
                    ..HmacOptions::default()
                }
                .into(),
            ),
            Source {
                secrets: vec![STANDARD_SECRET.into()],
                ..source("std", named("standard"))
            },
        ]));
        let queue = Arc::new(RecordingQueue::default());
        let clock = FixedClock::at_secs(NOW);
        let receiver = Receiver::new(store.clone(), queue.clone(), clock.clone(), config);
        (receiver, queue, store, clock)
    }

    fn unconfirmed() -> ReceiverConfig {
        ReceiverConfig {
            confirm_dedup: false,
            ..ReceiverConfig::default()
        }
    }

    #[tokio::test]
    async fn unconfirmed_claims_are_confirmed_by_the_stored_event() {
        let (receiver, queue, store, clock) = receiver_with(unconfirmed());
        let copy = || github_request("push", "d-1", r#"{"zen":"hi"}"#);
        assert_eq!(receiver.handle(copy()).await.reply().status, 202);
        let event = queue.events.lock().unwrap()[0].clone();
        // Queued, not stored by the fanout yet: a copy is told to come back.
        let early = receiver.handle(copy()).await.reply();
        assert_eq!(early.status, 409, "{}", early.body);
        // Stored: every copy is a duplicate of it, for as long as claims are kept.
        store.record_event(&event, &[], NOW + 86_400).await.unwrap();
        for at in [NOW + 1, NOW + 6 * 86_400] {
            clock.set_secs(at);
            let again = receiver.handle(copy()).await.reply();
            assert_eq!(again.status, 200, "{}", again.body);
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&again.body).unwrap(),
                serde_json::json!({"id": event.id, "duplicate": true})
            );
        }
        assert_eq!(queue.events.lock().unwrap().len(), 1);
        // Nothing was confirmed: the claim is the pending one of the first copy.
        assert_eq!(
            store
                .claim_dedup(
                    Claim::new("gh", "d-1", "evt_other"),
                    Lease {
                        now: NOW + 2,
                        until: NOW + 3
                    }
                )
                .await
                .unwrap(),
            DedupClaim::Pending { event_id: event.id }
        );
    }

    #[tokio::test]
    async fn an_unconfirmed_claim_whose_event_was_never_stored_is_taken_over() {
        let (receiver, queue, store, clock) = receiver_with(unconfirmed());
        // A receiver claimed the id and stopped before queuing anything.
        let lost = crate::domain::ids::event_id_at(NOW * 1000);
        let claim = store
            .claim_dedup(
                Claim::new("gh", "d-2", &lost),
                Lease {
                    now: NOW,
                    until: NOW + 7 * 86_400,
                },
            )
            .await
            .unwrap();
        assert_eq!(claim, DedupClaim::New);
        let copy = || github_request("push", "d-2", r#"{"zen":"hi"}"#);
        clock.set_secs(NOW + 899);
        assert_eq!(receiver.handle(copy()).await.reply().status, 409);
        assert!(queue.events.lock().unwrap().is_empty());
        // Past `unstored_claim_secs` the copy is queued, under a claim of its own.
        clock.set_secs(NOW + 900);
        let taken = receiver.handle(copy()).await.reply();
        assert_eq!(taken.status, 202, "{}", taken.body);
        let queued = queue.events.lock().unwrap()[0].id.clone();
        assert_ne!(queued, lost);
        assert_eq!(receiver.handle(copy()).await.reply().status, 409);
        assert_eq!(queue.events.lock().unwrap().len(), 1);
    }

    /// A claim written whose answer was lost is dropped with the 503, so the provider's retry
    /// is accepted at once instead of being told 409 until the claim is taken over.
    #[tokio::test]
    async fn a_claim_whose_answer_was_lost_does_not_hold_back_the_retry() {
        for config in [ReceiverConfig::default(), unconfirmed()] {
            let (receiver, queue, store, _clock) = receiver_with(config);
            let copy = || github_request("push", "d-lost", r#"{"zen":"hi"}"#);
            store.lose_claim_answers(1);
            let first = receiver.handle(copy()).await.reply();
            assert_eq!(first.status, 503, "{}", first.body);
            assert!(queue.events.lock().unwrap().is_empty());
            let retry = receiver.handle(copy()).await.reply();
            assert_eq!(retry.status, 202, "{}", retry.body);
            assert_eq!(queue.events.lock().unwrap().len(), 1);
        }
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
        let reply = receiver.handle(slack_request(NOW, body)).await.reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, r#"{"challenge":"c-123"}"#);
        assert!(queue.events.lock().unwrap().is_empty());
        // Stale by the injected clock: 401, and it says why.
        let reply = receiver
            .handle(slack_request(NOW - 812, body))
            .await
            .reply();
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains("timestamp 812 s old, tolerance 300 s"));
    }

    #[tokio::test]
    async fn slack_event_is_queued_once() {
        let (receiver, queue) = receiver();
        let body = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}"#;
        assert_eq!(
            receiver
                .handle(slack_request(NOW, body))
                .await
                .reply()
                .status,
            202
        );
        let again = receiver.handle(slack_request(NOW, body)).await.reply();
        assert_eq!(again.status, 200);
        assert!(again.body.contains("\"duplicate\":true"));
        assert!(queue.scheduled().is_empty() && queue.parked().is_empty());
        let queued = queue.events.lock().unwrap();
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
            .await
            .reply();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, r#"{"status":"ok"}"#)
        );
        assert_eq!(
            receiver
                .handle(get("/mc", Some("token=nope")))
                .await
                .reply()
                .status,
            401
        );
        assert_eq!(receiver.handle(get("/mc", None)).await.reply().status, 401);
        // Other sources and other methods.
        let reply = receiver.handle(get("/gh", None)).await.reply();
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
                .reply()
                .status,
            405
        );
        assert_eq!(
            receiver
                .handle(inbound(Method::DELETE, "/slack", None, &[], ""))
                .await
                .reply()
                .status,
            405
        );
        assert_eq!(
            receiver.handle(get("/healthz", None)).await.reply().status,
            200
        );
        assert!(queue.events.lock().unwrap().is_empty());
        // A token POST is queued with the form's type.
        let post = inbound(
            Method::POST,
            "/mc",
            Some("token=slack-secret"),
            &[("content-type", "application/x-www-form-urlencoded".into())],
            "type=unsubscribe&data%5Bemail%5D=a%40b.c",
        );
        assert_eq!(receiver.handle(post).await.reply().status, 202);
        assert_eq!(queue.events.lock().unwrap()[0].event_type, "unsubscribe");
    }

    fn github_request(event: &str, delivery: &str, body: &str) -> InboundRequest {
        let mac = hmac_sha256(b"slack-secret", &[body.as_bytes()]);
        inbound(
            Method::POST,
            "/gh",
            None,
            &[
                (
                    "x-hub-signature-256",
                    format!("sha256={}", hex::encode(mac)),
                ),
                ("x-github-event", event.into()),
                ("x-github-delivery", delivery.into()),
                ("content-type", "application/json".into()),
            ],
            body,
        )
    }

    #[tokio::test]
    async fn every_answer_is_counted_and_only_stored_sources_are_dimensions() {
        let (receiver, _queue) = receiver();
        let tally = Arc::new(Mutex::new(Tally::new()));
        let receiver = receiver.with_tally(tally.clone());
        let body = r#"{"a":1}"#;
        for expected in [202, 200] {
            let copy = github_request("push", "d-1", body);
            assert_eq!(receiver.handle(copy).await.reply().status, expected);
        }
        let mut forged = github_request("push", "d-2", body);
        forged.body = Bytes::from_static(b"{}");
        assert_eq!(receiver.handle(forged).await.reply().status, 401);
        for path in ["/random-1", "/random-2"] {
            let unknown = inbound(Method::POST, path, None, &[], body);
            assert_eq!(receiver.handle(unknown).await.reply().status, 404);
        }
        let health = inbound(Method::GET, "/healthz", None, &[], "");
        assert_eq!(receiver.handle(health).await.reply().status, 200);
        let tally = tally.lock().unwrap();
        assert_eq!(tally.count(Metric::Accepted, "gh", ""), 1);
        assert_eq!(tally.count(Metric::Duplicates, "gh", ""), 1);
        assert_eq!(tally.count(Metric::Refused, "gh", "401"), 1);
        assert_eq!(tally.count(Metric::Refused, "(unknown)", "404"), 2);
        assert!(
            tally
                .counters()
                .all(|(series, _)| !series.source.contains("random")),
            "{tally:?}"
        );
    }

    fn standard_request(id: &str, body: &str) -> InboundRequest {
        let signature =
            crate::signing::standard_signature_header(&[STANDARD_SECRET], id, NOW, body.as_bytes());
        inbound(
            Method::POST,
            "/std",
            None,
            &[
                ("webhook-id", id.into()),
                ("webhook-timestamp", NOW.to_string()),
                ("webhook-signature", signature),
                ("content-type", "application/json".into()),
            ],
            body,
        )
    }

    fn stripe_request(body: &str) -> InboundRequest {
        let mac = hmac_sha256(
            b"slack-secret",
            &[NOW.to_string().as_bytes(), b".", body.as_bytes()],
        );
        inbound(
            Method::POST,
            "/stripe",
            None,
            &[
                (
                    "stripe-signature",
                    format!("t={NOW},v1={}", hex::encode(mac)),
                ),
                ("content-type", "application/json".into()),
            ],
            body,
        )
    }

    fn hmac_request(body: &str) -> InboundRequest {
        let mac = hmac_sha256(b"slack-secret", &[body.as_bytes()]);
        inbound(
            Method::POST,
            "/acme",
            None,
            &[
                ("x-sig", hex::encode(mac)),
                ("content-type", "application/json".into()),
            ],
            body,
        )
    }

    /// Answers `request` and says what was queued for it.
    async fn outcome(
        receiver: &Receiver,
        fake: &RecordingQueue,
        request: InboundRequest,
    ) -> (u16, String, Option<String>) {
        let before = fake.events.lock().unwrap().len();
        let reply = receiver.handle(request).await.reply();
        let queued = fake.events.lock().unwrap();
        let queued_type = (queued.len() > before).then(|| queued[before].event_type.clone());
        (reply.status, reply.body, queued_type)
    }

    #[tokio::test]
    async fn event_types_that_are_not_header_values_are_refused_by_every_provider() {
        let (receiver, fake, store) = receiver_and_store();
        let refused = |reply: &(u16, String, Option<String>), detail: &str| {
            assert_eq!(reply.0, 400, "{reply:?}");
            assert!(
                reply
                    .1
                    .contains("the event type is not a valid header value")
                    && reply.1.contains(detail),
                "{reply:?}"
            );
            assert!(
                !reply.1.contains('\u{1}'),
                "echoes the raw bytes: {reply:?}"
            );
            assert_eq!(reply.2, None, "queued: {reply:?}");
        };
        let long = "e".repeat(MAX_EVENT_TYPE_BYTES + 1);
        let cases = [
            // GitHub: the body's action after X-GitHub-Event.
            (
                github_request("issues", "d-1", r#"{"action":"a\u0001b"}"#),
                "byte 9 of 10 is not visible ASCII or space",
            ),
            // GitHub: the header alone, too long or with a tab.
            (
                github_request(&long, "d-2", "{}"),
                "257 bytes long, the limit is 256",
            ),
            (github_request("is\tsues", "d-3", "{}"), "byte 3 of 7"),
            // Standard Webhooks and Stripe: the body's type.
            (
                standard_request("m-1", r#"{"type":"a\u0001b"}"#),
                "byte 2 of 3",
            ),
            (
                standard_request("m-2", r#"{"type":"caf\u00e9"}"#),
                "byte 4 of 5",
            ),
            (
                stripe_request(r#"{"id":"evt_1","type":"a\u007fb"}"#),
                "byte 2 of 3",
            ),
        ];
        for (request, detail) in cases {
            refused(&outcome(&receiver, &fake, request).await, detail);
        }
        assert!(fake.events.lock().unwrap().is_empty());
        assert!(
            store.dedup_keys().is_empty(),
            "a refusal claims no delivery id"
        );

        // At the limits: 256 bytes, spaces and an empty type are carried.
        let longest = format!(r#"{{"type":"{}"}}"#, "t".repeat(MAX_EVENT_TYPE_BYTES));
        let reply = outcome(&receiver, &fake, standard_request("m-3", &longest)).await;
        assert_eq!(
            reply.2.map(|t| t.len()),
            Some(MAX_EVENT_TYPE_BYTES),
            "{}",
            reply.1
        );
        let reply = outcome(
            &receiver,
            &fake,
            standard_request("m-4", r#"{"type":"a b ~"}"#),
        )
        .await;
        assert_eq!(reply.2.as_deref(), Some("a b ~"));
        let reply = outcome(&receiver, &fake, standard_request("m-5", r#"{"type":""}"#)).await;
        assert_eq!((reply.0, reply.2.as_deref()), (202, Some("")));
        // Generic HMAC already keeps only 1-128 visible characters of a pointed-to type.
        let reply = outcome(&receiver, &fake, hmac_request(r#"{"kind":"a\u0001b"}"#)).await;
        assert_eq!((reply.0, reply.2.as_deref()), (202, Some("webhook")));
    }

    #[tokio::test]
    async fn delivery_ids_longer_than_a_store_key_allows_are_refused() {
        let (receiver, fake, store) = receiver_and_store();
        let long = "d".repeat(MAX_DELIVERY_ID_BYTES + 1);
        let reply = outcome(&receiver, &fake, github_request("push", &long, "{}")).await;
        assert_eq!(reply.0, 400, "{reply:?}");
        assert!(
            reply.1.contains("the delivery id is 513 bytes long"),
            "{reply:?}"
        );
        assert_eq!(reply.2, None);
        let reply = outcome(&receiver, &fake, standard_request(&long, r#"{"type":"t"}"#)).await;
        assert_eq!((reply.0, reply.2), (400, None), "{}", reply.1);
        let body = format!(r#"{{"id":"{long}","type":"t"}}"#);
        let reply = outcome(&receiver, &fake, stripe_request(&body)).await;
        assert_eq!((reply.0, reply.2), (400, None), "{}", reply.1);
        assert!(store.dedup_keys().is_empty(), "a refusal claims nothing");

        let longest = "d".repeat(MAX_DELIVERY_ID_BYTES);
        let reply = outcome(&receiver, &fake, github_request("push", &longest, "{}")).await;
        assert_eq!(reply.0, 202, "{reply:?}");
        assert_eq!(store.dedup_keys()[0].1, longest);
    }

    #[tokio::test]
    async fn content_types_longer_than_the_envelope_carries_are_refused() {
        let (receiver, fake) = receiver();
        let mut request = github_request("push", "d-1", "{}");
        let long = format!("application/json; x={}", "a".repeat(MAX_CONTENT_TYPE_BYTES));
        request
            .headers
            .insert("content-type", HeaderValue::from_str(&long).unwrap());
        let reply = outcome(&receiver, &fake, request).await;
        assert_eq!((reply.0, reply.2), (400, None), "{}", reply.1);
        assert!(reply.1.contains("content-type"), "{}", reply.1);
    }

    #[test]
    fn source_names() {
        assert_eq!(source_name("/github"), Some("github"));
        assert_eq!(source_name("/github/"), Some("github"));
        assert_eq!(source_name("/a/b"), None);
        assert_eq!(source_name("/"), None);
        assert_eq!(source_name("github"), None);
        assert!(validate_source_name("stripe-live").is_ok());
        for reserved in ["healthz", "metrics", "console"] {
            assert_eq!(
                validate_source_name(reserved).unwrap_err().to_string(),
                format!("{reserved} is reserved: the relay serves /{reserved} itself")
            );
        }
        assert!(validate_source_name("metrics-eu").is_ok());
        assert!(validate_source_name("a b").is_err());
    }

    // ------------------------------------------------------------- bodies over the inline limit

    fn with_bodies() -> (
        Receiver,
        Arc<RecordingQueue>,
        Arc<crate::testkit::MemoryBodies>,
    ) {
        let (receiver, queue, _, _) = receiver_with(ReceiverConfig::default());
        let bodies = Arc::new(crate::testkit::MemoryBodies::default());
        (receiver.with_bodies(bodies.clone()), queue, bodies)
    }

    /// A JSON body of `len` bytes.
    fn json_body(len: usize) -> String {
        let padding = "p".repeat(len - r#"{"p":""}"#.len());
        format!(r#"{{"p":"{padding}"}}"#)
    }

    #[tokio::test]
    async fn a_large_body_is_stored_once_and_its_message_carries_the_claim_check() {
        let (receiver, queue, bodies) = with_bodies();
        let body = json_body(5_000_000);
        let reply = receiver
            .handle(github_request("push", "d-big", &body))
            .await
            .reply();
        assert_eq!(reply.status, 202, "{}", reply.body);
        let event = queue.events.lock().unwrap()[0].clone();
        let stored = event.stored_body.clone().expect("a claim check");
        assert_eq!(stored.key, format!("bodies/{}", event.id));
        assert_eq!(stored.bytes, 5_000_000);
        assert_eq!(
            stored.sha256,
            crate::ports::bodies::sha256_hex(body.as_bytes())
        );
        assert!(event.body.is_empty());
        assert_eq!(bodies.keys(), std::slice::from_ref(&stored.key));
        let kept = bodies.get(&stored.key).await.unwrap().unwrap();
        assert_eq!(&kept[..], body.as_bytes());
        let message = crate::domain::model::QueueMessageRef::Event(&event)
            .to_json()
            .unwrap();
        assert!(message.len() < 1024, "{} bytes", message.len());
        // A body at the inline limit still travels inline.
        let inline = json_body(INLINE_BODY_MAX_BYTES);
        let reply = receiver
            .handle(github_request("push", "d-inline", &inline))
            .await
            .reply();
        assert_eq!(reply.status, 202, "{}", reply.body);
        let event = queue.events.lock().unwrap()[1].clone();
        assert_eq!(event.stored_body, None);
        assert_eq!(&*event.body_bytes().unwrap(), inline.as_bytes());
        assert_eq!(bodies.keys().len(), 1);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_naming_the_limit() {
        let (large, queue, bodies) = with_bodies();
        let body = json_body(DEFAULT_MAX_BODY_BYTES + 1);
        let reply = large
            .handle(github_request("push", "d-1", &body))
            .await
            .reply();
        assert_eq!(reply.status, 413);
        assert!(
            reply.body.contains("over the limit of 6000000 bytes"),
            "{}",
            reply.body
        );
        let at_limit = json_body(DEFAULT_MAX_BODY_BYTES);
        let reply = large
            .handle(github_request("push", "d-2", &at_limit))
            .await
            .reply();
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(queue.events.lock().unwrap().len(), 1);
        assert_eq!(bodies.keys().len(), 1);
        // Without a body store the inline limit is the limit.
        let (plain, _) = receiver();
        assert_eq!(plain.body_limit(), INLINE_BODY_MAX_BYTES);
        let reply = plain
            .handle(github_request(
                "push",
                "d-3",
                &json_body(INLINE_BODY_MAX_BYTES + 1),
            ))
            .await
            .reply();
        assert_eq!(reply.status, 413);
        assert!(
            reply
                .body
                .contains(&format!("limit of {INLINE_BODY_MAX_BYTES} bytes"))
        );
    }

    #[tokio::test]
    async fn a_failed_enqueue_after_the_body_write_removes_the_body_and_accepts_nothing() {
        let (receiver, queue, bodies) = with_bodies();
        let body = json_body(INLINE_BODY_MAX_BYTES + 1);
        queue.fail_sends(true);
        let reply = receiver
            .handle(github_request("push", "d-1", &body))
            .await
            .reply();
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(queue.events.lock().unwrap().is_empty(), "no message");
        assert!(bodies.keys().is_empty(), "no object left behind");
        // The claim was released: the provider's retry is accepted.
        queue.fail_sends(false);
        let reply = receiver
            .handle(github_request("push", "d-1", &body))
            .await
            .reply();
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(bodies.keys().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_body_write_queues_nothing() {
        let (receiver, queue, bodies) = with_bodies();
        bodies.set_failing_puts(true);
        let reply = receiver
            .handle(github_request("push", "d-1", &json_body(300_000)))
            .await
            .reply();
        assert_eq!(reply.status, 503);
        assert!(
            reply.body.contains("body store unavailable"),
            "{}",
            reply.body
        );
        assert!(queue.events.lock().unwrap().is_empty());
        bodies.set_failing_puts(false);
        let reply = receiver
            .handle(github_request("push", "d-1", &json_body(300_000)))
            .await
            .reply();
        assert_eq!(reply.status, 202, "claim released: {}", reply.body);
    }
}
