use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::domain::model::ProviderConfig;
use crate::ports::clock::FixedClock;
use crate::ports::{Claim, DedupLedger, Lease};
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
        ..crate::providers::test_support::source(provider, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
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
            .claim_dedup(
                Claim::new("src", key, "evt_earlier"),
                Lease {
                    now: NOW - 10,
                    until: NOW,
                },
            )
            .await
            .unwrap();
        self.store
            .confirm_dedup(Claim::new("src", key, "evt_earlier"), NOW + 86_400)
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
    let mut f = fixture(ProviderConfig::named("github").unwrap());
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
    let mut f = fixture(ProviderConfig::named("stripe").unwrap());
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
    let mut f = fixture(ProviderConfig::named("stripe").unwrap());
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
    let mut f = fixture(ProviderConfig::named("stripe").unwrap());
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
    let mut f = fixture(ProviderConfig::named("github").unwrap());
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
    let f = fixture(ProviderConfig::named("github").unwrap());
    assert_eq!(
        reconciler_for(&f.source).map(|r| r.provider),
        Some("github")
    );
    let other = Source {
        provider: ProviderConfig::named("slack").unwrap(),
        ..f.source
    };
    assert!(reconciler_for(&other).is_none());
}

fn github_settings(hook: &str, app_id: Option<&str>) -> ReconcileSettings {
    ReconcileSettings {
        credential: "env:GITHUB_APP_KEY".into(),
        github_hook: Some(hook.into()),
        github_app_id: app_id.map(str::to_owned),
        ..ReconcileSettings::default()
    }
}

fn config_error(result: Result<ReconcileSettings, ReconcileError>) -> String {
    match result {
        Err(ReconcileError::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn the_app_hook_needs_an_app_id_and_only_it_takes_one() {
    let github = fixture(ProviderConfig::named("github").unwrap()).source;
    let change = |hook: &str, app_id: Option<&str>| ReconcileChange {
        credential: Some("env:GITHUB_APP_KEY".into()),
        github_hook: Some(hook.into()),
        github_app_id: app_id.map(str::to_owned),
        ..ReconcileChange::default()
    };
    let missing = config_error(change_settings(&github, change("app/hook", None)));
    assert!(
        missing.contains("app/hook) needs --github-app-id"),
        "{missing}"
    );
    let misplaced = config_error(change_settings(
        &github,
        change("repos/o/r/hooks/1", Some("123")),
    ));
    assert!(
        misplaced.contains("only for the GitHub App hook"),
        "{misplaced}"
    );
    let bad_id = config_error(change_settings(&github, change("app/hook", Some("a b\""))));
    assert!(bad_id.contains("github app id"), "{bad_id}");

    let app = change_settings(&github, change("app/hook", Some(" Iv23liAbc ")))
        .expect("an App hook with its id");
    assert_eq!(app, github_settings("app/hook", Some("Iv23liAbc")));

    // Going back to a repository hook means removing the id.
    let stored = Source {
        reconcile: Some(app),
        ..github.clone()
    };
    let keeps_id = ReconcileChange {
        github_hook: Some("repos/o/r/hooks/1".into()),
        ..ReconcileChange::default()
    };
    assert!(change_settings(&stored, keeps_id.clone()).is_err());
    let removed = change_settings(
        &stored,
        ReconcileChange {
            github_app_id: Some(String::new()),
            ..keeps_id
        },
    )
    .unwrap();
    assert_eq!(removed.github_app_id, None);

    // Stripe has no App hook.
    let stripe = fixture(ProviderConfig::named("stripe").unwrap()).source;
    let on_stripe = ReconcileChange {
        credential: Some("env:STRIPE_KEY".into()),
        github_app_id: Some("123".into()),
        ..ReconcileChange::default()
    };
    assert!(config_error(change_settings(&stripe, on_stripe)).contains("only for the GitHub App"));

    // Stored settings are checked again when a run connects.
    let connect = github::RECONCILER.connect;
    assert!(connect(&github_settings("app/hook", None)).is_err());
    assert!(connect(&github_settings("orgs/o/hooks/2", Some("1"))).is_err());
    assert!(connect(&github_settings("app/hook", Some("1"))).is_ok());
}

#[test]
fn an_app_client_refuses_a_key_that_is_no_rsa_pem() {
    let settings = github_settings("app/hook", Some("1"));
    let error = github::RECONCILER
        .client(
            &settings,
            Credential::new("ghp_this_is_a_token_not_a_key"),
            RateLimitPolicy::default(),
            FixedClock::at_secs(NOW),
        )
        .err()
        .expect("refused");
    let text = error.to_string();
    assert!(text.contains("not an RSA key in PEM"), "{text}");
    assert!(!text.contains("ghp_this_is_a_token_not_a_key"));
    // A repository hook sends the same credential as a token.
    assert!(
        github::RECONCILER
            .client(
                &github_settings("repos/o/r/hooks/1", None),
                Credential::new("ghp_token"),
                RateLimitPolicy::default(),
                FixedClock::at_secs(NOW),
            )
            .is_ok()
    );
}

/// A loopback HTTP server answering `[]` to `count` requests, one connection each; returns its
/// URL and the `Authorization` header of each request, in order.
/// A loopback API answering `count` requests with 200 and `body` (JSON); gives each request's
/// head (request line and headers) once all were answered.
pub(super) fn recording_api(
    count: usize,
    body: &'static str,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for _ in 0..count {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&chunk[..n]);
            }
            heads.push(String::from_utf8_lossy(&head).into_owned());
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).unwrap();
        }
        heads
    });
    (url, handle)
}

/// The `Authorization` header of a request head.
fn authorization(head: &str) -> String {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_app_client_sends_jwts_from_the_clock_and_renews_them_in_a_long_run() {
    let (pkcs8, _) = github_app::tests::test_key();
    let key = Credential::new(github_app::tests::pem("PRIVATE KEY", pkcs8));
    let (url, server) = recording_api(3, "[]");
    let clock = FixedClock::at_secs(NOW);
    let settings = ReconcileSettings {
        api_url: Some(url),
        ..github_settings("app/hook", Some("Iv23liAbc"))
    };
    let mut client = github::RECONCILER
        .client(&settings, key, RateLimitPolicy::default(), clock.clone())
        .unwrap();
    let deliveries = client.url("app/hook/deliveries").unwrap();
    client.get(deliveries.clone()).await.unwrap();
    // Within 8 minutes the same JWT; after them (a run that waited on rate limits), a new one.
    clock.set_secs(NOW + 300);
    client.get(deliveries.clone()).await.unwrap();
    clock.set_secs(NOW + 8 * 60 + 1);
    client.get(deliveries).await.unwrap();
    let sent: Vec<_> = server
        .join()
        .unwrap()
        .iter()
        .map(|h| authorization(h))
        .collect();

    let claims = |authorization: &str| {
        let jwt = authorization.strip_prefix("Bearer ").expect("a bearer JWT");
        github_app::tests::decode_json(jwt.split('.').nth(1).expect("claims"))
    };
    assert_eq!(sent[0], sent[1], "kept while young");
    assert_ne!(sent[1], sent[2], "renewed when older than 8 minutes");
    let first = claims(&sent[0]);
    assert_eq!(first["iat"], NOW - 60);
    assert_eq!(first["exp"], NOW + 540);
    assert_eq!(first["iss"], "Iv23liAbc");
    let renewed = claims(&sent[2]);
    assert_eq!(renewed["iat"], NOW + 8 * 60 + 1 - 60);
    assert_eq!(renewed["exp"], NOW + 8 * 60 + 1 + 540);
}
