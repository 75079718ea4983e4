use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::clock::FixedClock;
use crate::model::ProviderConfig;
use crate::ports::DedupLedger;
use crate::receive::ReceiverConfig;
use crate::testkit::{MemoryStore, RecordingQueue};

const NOW: i64 = 1_700_000_000;

/// A provider API that answers scripted pages and records redelivery requests.
struct FakeApi {
    pages: Mutex<Vec<Result<Page, ApiError>>>,
    redeliveries: Mutex<Vec<String>>,
    redeliver_error: Option<ApiError>,
}

impl FakeApi {
    fn new(pages: Vec<Result<Page, ApiError>>) -> Self {
        Self {
            pages: Mutex::new(pages.into_iter().rev().collect()),
            redeliveries: Mutex::new(Vec::new()),
            redeliver_error: None,
        }
    }

    fn redelivered(&self) -> Vec<String> {
        self.redeliveries.lock().unwrap().clone()
    }
}

#[async_trait]
impl ProviderApi for FakeApi {
    async fn page(
        &self,
        _client: &mut ApiClient,
        _since: i64,
        _cursor: Option<&str>,
    ) -> Result<Page, ApiError> {
        self.pages
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| Ok(Page::default()))
    }

    async fn redeliver(&self, _client: &mut ApiClient, delivery_id: &str) -> Result<(), ApiError> {
        if let Some(error) = &self.redeliver_error {
            return Err(error.clone());
        }
        self.redeliveries
            .lock()
            .unwrap()
            .push(delivery_id.to_owned());
        Ok(())
    }
}

fn redelivery(guid: &str, id: u64) -> SentEvent {
    SentEvent {
        key: guid.into(),
        recovery: Recovery::Redeliver {
            delivery_id: id.to_string(),
        },
    }
}

fn stripe_event(id: &str) -> SentEvent {
    SentEvent {
        key: id.into(),
        recovery: Recovery::Ingest {
            event_type: "invoice.paid".into(),
            body: format!(r#"{{"id":"{id}","type":"invoice.paid"}}"#).into_bytes(),
        },
    }
}

fn page(sent: Vec<SentEvent>, next: Option<&str>) -> Result<Page, ApiError> {
    Ok(Page {
        sent,
        next: next.map(str::to_owned),
    })
}

struct Fixture {
    store: Arc<MemoryStore>,
    queue: Arc<RecordingQueue>,
    receiver: Receiver,
    client: ApiClient,
    source: Source,
}

fn fixture(provider: ProviderConfig) -> Fixture {
    let source = Source {
        name: "src".into(),
        provider,
        secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
        tolerance_secs: 300,
        created_at: 0,
        reconcile: None,
    };
    let store = Arc::new(MemoryStore::with_sources([source.clone()]));
    let queue = Arc::new(RecordingQueue::default());
    let clock = FixedClock::at_secs(NOW);
    let receiver = Receiver::new(
        store.clone(),
        queue.clone(),
        clock.clone(),
        ReceiverConfig::default(),
    );
    let client = ApiClient::new(
        "http://127.0.0.1:9",
        Credential::new("t"),
        RateLimitPolicy::default(),
        clock,
    )
    .unwrap();
    Fixture {
        store,
        queue,
        receiver,
        client,
        source,
    }
}

impl Fixture {
    async fn mark_queued(&self, key: &str) {
        self.store
            .claim_dedup("src", key, "evt_earlier", NOW - 10, NOW)
            .await
            .unwrap();
        self.store
            .confirm_dedup("src", key, "evt_earlier", NOW + 86_400)
            .await
            .unwrap();
    }

    async fn run(&mut self, api: &FakeApi, dry_run: bool) -> Findings {
        let run = Run {
            source: &self.source,
            since: NOW - 86_400,
            now: NOW,
            dry_run,
        };
        reconcile(
            api,
            &mut self.client,
            self.store.as_ref(),
            &self.receiver,
            run,
        )
        .await
    }
}

#[tokio::test]
async fn missing_deliveries_are_redelivered_and_queued_ones_left_alone() {
    let mut f = fixture(ProviderConfig::Github);
    f.mark_queued("g2").await;
    let api = FakeApi::new(vec![
        page(vec![redelivery("g3", 30), redelivery("g2", 20)], Some("p2")),
        // The guid of a redelivery appears again further down: counted once.
        page(vec![redelivery("g3", 3), redelivery("g1", 10)], None),
    ]);
    let findings = f.run(&api, false).await;
    assert_eq!((findings.seen, findings.queued), (3, 1));
    assert_eq!(findings.missing, ["g3", "g1"]);
    assert_eq!(findings.recovered, ["g3", "g1"]);
    assert!(
        findings.failed.is_empty() && findings.complete(),
        "{findings:?}"
    );
    assert_eq!(
        api.redelivered(),
        ["30", "10"],
        "the newest delivery of each guid"
    );
    assert!(
        f.queue.events.lock().unwrap().is_empty(),
        "redeliveries come through the receiver"
    );
}

#[tokio::test]
async fn dry_run_finds_and_recovers_nothing() {
    let mut f = fixture(ProviderConfig::Stripe);
    let api = FakeApi::new(vec![page(vec![stripe_event("evt_1")], None)]);
    let findings = f.run(&api, true).await;
    assert_eq!(findings.missing, ["evt_1"]);
    assert!(findings.recovered.is_empty());
    assert!(
        findings.complete(),
        "a dry run that got through is complete"
    );
    assert!(f.queue.events.lock().unwrap().is_empty());
    assert!(f.store.dedup_keys().is_empty());
}

#[tokio::test]
async fn stripe_events_are_ingested_once_and_marked_reconciled() {
    let mut f = fixture(ProviderConfig::Stripe);
    f.mark_queued("evt_2").await;
    let sent = || {
        vec![
            stripe_event("evt_3"),
            stripe_event("evt_2"),
            stripe_event("evt_1"),
        ]
    };
    let findings = f.run(&FakeApi::new(vec![page(sent(), None)]), false).await;
    assert_eq!(findings.recovered, ["evt_3", "evt_1"]);
    {
        let queued = f.queue.events.lock().unwrap();
        assert_eq!(queued.len(), 2);
        for event in queued.iter() {
            assert!(event.reconciled);
            assert_eq!(
                (event.source.as_str(), event.event_type.as_str()),
                ("src", "invoice.paid")
            );
        }
    }
    // The second run finds everything queued.
    let again = f.run(&FakeApi::new(vec![page(sent(), None)]), false).await;
    assert_eq!((again.seen, again.queued), (3, 3));
    assert!(again.missing.is_empty() && again.recovered.is_empty());
    assert_eq!(f.queue.events.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_rate_limit_stops_the_listing_but_keeps_what_was_found() {
    let mut f = fixture(ProviderConfig::Stripe);
    let api = FakeApi::new(vec![
        page(vec![stripe_event("evt_2")], Some("evt_2")),
        Err(ApiError::RateLimited("wait 600s".into())),
    ]);
    let findings = f.run(&api, false).await;
    assert_eq!(findings.recovered, ["evt_2"], "page one is still recovered");
    assert!(
        findings
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("rate limited")),
        "{findings:?}"
    );
    assert!(!findings.complete());
}

#[tokio::test]
async fn a_refused_credential_stops_the_redeliveries() {
    let mut f = fixture(ProviderConfig::Github);
    let mut api = FakeApi::new(vec![page(
        vec![redelivery("g1", 1), redelivery("g2", 2)],
        None,
    )]);
    api.redeliver_error = Some(ApiError::Unauthorized { status: 401 });
    let findings = f.run(&api, false).await;
    assert_eq!(findings.missing, ["g1", "g2"]);
    assert!(findings.recovered.is_empty());
    assert_eq!(
        findings.failed.len(),
        1,
        "stopped after the first: {findings:?}"
    );
    assert!(findings.stopped.is_some() && !findings.complete());
}

#[test]
fn credential_references() {
    assert_eq!(
        "env:GITHUB_TOKEN".parse::<CredentialRef>().unwrap(),
        CredentialRef::Env("GITHUB_TOKEN".into())
    );
    assert_eq!(
        "file:stripe.key".parse::<CredentialRef>().unwrap(),
        CredentialRef::File("stripe.key".into())
    );
    assert_eq!(
        "ssm:/relay/gh".parse::<CredentialRef>().unwrap(),
        CredentialRef::Ssm("/relay/gh".into())
    );
    for bad in [
        "GITHUB_TOKEN",
        "env:",
        "file:../x",
        "file:a/b",
        "file:.hidden",
        "vault:x",
    ] {
        assert!(bad.parse::<CredentialRef>().is_err(), "{bad}");
    }
}

#[test]
fn reconcilers_by_provider() {
    let f = fixture(ProviderConfig::Github);
    assert_eq!(
        reconciler_for(&f.source).map(|r| r.provider),
        Some("github")
    );
    let other = Source {
        provider: ProviderConfig::Slack,
        ..f.source
    };
    assert!(reconciler_for(&other).is_none());
}
