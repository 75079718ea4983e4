//! One source's reconciliation from its stored settings, and the sweep over every source that
//! has them: what `relay reconcile SOURCE` and the scheduled reconcile function both run.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    Credential, CredentialRef, Findings, RateLimitPolicy, ReconcileError, Run, reconcile,
    reconciler_for,
};
use crate::domain::model::Source;
use crate::ports::clock::SharedClock;
use crate::ports::{Catalog, DedupLedger};
use crate::receive::Receiver;

/// Reads the credential a source's reference names, on this backend (environment, data dir,
/// SSM Parameter Store, Secrets Manager). Errors say what could not be read, never the value.
#[async_trait]
pub trait CredentialReader: Send + Sync {
    async fn read(&self, reference: &CredentialRef) -> Result<Credential, CredentialError>;
}

/// Why a credential could not be read. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the credential variable {0} is not set")]
    VariableNotSet(String),
    /// The place holding it (`what`: "the SSM parameter NAME", "the credential file PATH")
    /// did not answer or refused.
    #[error("cannot read {what}: {cause}")]
    Unreadable { what: String, cause: String },
    /// The place holding it has nothing (`what` as in `Unreadable`).
    #[error("{what} has no {value}")]
    NoValue { what: String, value: &'static str },
    /// The store has no credential of that name.
    #[error("{0} not found")]
    NotFound(String),
    /// An SSM parameter stored in plain text: refused rather than used.
    #[error("the SSM parameter {0} is not a SecureString: store credentials encrypted")]
    NotEncrypted(String),
    /// A `file:` reference on AWS.
    #[error(
        "file: credentials are read from the local data dir; on AWS use ssm: or secretsmanager:"
    )]
    FileOnAws,
    /// An `ssm:` or `secretsmanager:` reference on the local backend.
    #[error("the credential {0} is in AWS: run reconcile with --aws")]
    InAws(String),
    #[error("the credential is empty")]
    Empty,
}

/// The credential in an environment variable (`env:NAME`), on every backend.
pub fn env_credential(name: &str) -> Result<Credential, CredentialError> {
    std::env::var(name).map_or_else(
        |_| Err(CredentialError::VariableNotSet(name.to_owned())),
        |value| Ok(Credential::new(value)),
    )
}

/// What a run reconciles against.
pub struct Reconciliation<'a> {
    pub ledger: &'a dyn DedupLedger,
    pub receiver: &'a Receiver,
    pub credentials: &'a dyn CredentialReader,
    pub clock: SharedClock,
    pub policy: RateLimitPolicy,
}

/// A claim this close to its expiry is not trusted to say "queued": events sent before
/// `now - dedup TTL + this` are not looked at, so none is recovered twice.
const LEDGER_MARGIN_SECS: i64 = 3600;

impl Reconciliation<'_> {
    /// Reconciles `source` over the last `lookback` (shortened to what the dedup ledger still
    /// remembers). Fails before asking the provider anything when the source has no settings,
    /// its provider is not supported, dedup is off or its credential cannot be read.
    pub async fn source(
        &self,
        source: &Source,
        lookback: Duration,
        dry_run: bool,
    ) -> Result<Findings, ReconcileError> {
        let reconciler = reconciler_for(source)
            .ok_or_else(|| ReconcileError::Unsupported(source.provider.name().to_owned()))?;
        let settings = source
            .reconcile
            .as_ref()
            .ok_or_else(|| ReconcileError::NotConfigured(source.name.clone()))?;
        let config = self.receiver.config();
        if !config.dedup {
            return Err(ReconcileError::Config(
                "dedup is off: without the dedup ledger reconcile cannot tell which events were queued".into(),
            ));
        }
        let api = (reconciler.connect)(settings)?;
        let reference: CredentialRef = settings.credential.parse()?;
        let credential = self
            .credentials
            .read(&reference)
            .await
            .map_err(ReconcileError::Credential)?;
        if credential.is_empty() {
            return Err(ReconcileError::Credential(CredentialError::Empty));
        }
        let mut client = reconciler
            .client(settings, credential, self.policy, self.clock.clone())
            .map_err(|e| ReconcileError::Config(e.to_string()))?;
        let now = self.clock.now_secs();
        let lookback = i64::try_from(lookback.as_secs()).unwrap_or(i64::MAX);
        let remembered = config
            .dedup_ttl_secs
            .saturating_sub(LEDGER_MARGIN_SECS)
            .max(0);
        let run = Run {
            source,
            since: now.saturating_sub(lookback.min(remembered)),
            now,
            dry_run,
        };
        Ok(reconcile(api.as_ref(), &mut client, self.ledger, self.receiver, run).await)
    }

    /// Reconciles every source that has reconcile settings, one after the other, while
    /// `time_left` allows: a source is started only with `SOURCE_TIME_FLOOR` left, and may wait
    /// for rate limits only as long as leaves its run time to finish. A source that cannot be
    /// run, or is not reached, is reported as a run that stopped, with why; the others still run.
    pub async fn sweep(
        &self,
        catalog: &dyn Catalog,
        lookback: Duration,
        dry_run: bool,
        time_left: &(dyn Fn() -> Duration + Send + Sync),
    ) -> Result<Vec<Findings>, ReconcileError> {
        let sources = catalog
            .list_sources()
            .await
            .map_err(|e| ReconcileError::Config(format!("cannot list the sources: {e}")))?;
        let mut all = Vec::new();
        for source in sources.iter().filter(|s| s.reconcile.is_some()) {
            let left = time_left();
            let outcome = if left < SOURCE_TIME_FLOOR {
                Err(ReconcileError::Config(
                    "not reached: the sweep ran out of time before this source".into(),
                ))
            } else {
                let mut policy = self.policy;
                policy.total_wait = policy
                    .total_wait
                    .min(left.saturating_sub(SOURCE_TIME_FLOOR / 2));
                let this = Reconciliation {
                    ledger: self.ledger,
                    receiver: self.receiver,
                    credentials: self.credentials,
                    clock: self.clock.clone(),
                    policy,
                };
                this.source(source, lookback, dry_run).await
            };
            all.push(outcome.unwrap_or_else(|error| Findings::stopped_before(source, &error)));
        }
        Ok(all)
    }
}

/// The least time a sweep starts a source with: listing and recovering take a few requests.
pub const SOURCE_TIME_FLOOR: Duration = Duration::from_secs(60);

impl Findings {
    /// The findings of a run that stopped before asking the provider anything.
    pub fn stopped_before(source: &Source, error: &ReconcileError) -> Self {
        Findings {
            source: source.name.clone(),
            provider: source.provider.name().to_owned(),
            stopped: Some(error.to_string()),
            ..Findings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::metrics::{Metric, Series, Tally};
    use crate::domain::model::ProviderConfig;
    use crate::ports::clock::FixedClock;
    use crate::receive::ReceiverConfig;
    use crate::reconcile::ReconcileSettings;
    use crate::testkit::{MemoryStore, RecordingQueue};

    const NOW: i64 = 1_700_000_000;

    /// Credentials by reference name; anything else is "not found".
    struct Credentials(&'static [(&'static str, &'static str)]);

    #[async_trait]
    impl CredentialReader for Credentials {
        async fn read(&self, reference: &CredentialRef) -> Result<Credential, CredentialError> {
            let CredentialRef::Env(name) = reference else {
                return Err(CredentialError::NotFound(format!("{reference:?}")));
            };
            self.0
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Credential::new(*v))
                .ok_or_else(|| CredentialError::NotFound(name.clone()))
        }
    }

    /// A loopback Stripe stand-in answering `count` empty event lists; gives the requests.
    fn stripe_lists(count: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
        crate::reconcile::tests::recording_api(
            count,
            r#"{"object":"list","data":[],"has_more":false}"#,
        )
    }

    fn stripe_source(name: &str, credential: &str, api_url: &str) -> Source {
        Source {
            name: name.into(),
            provider: ProviderConfig::named("stripe").unwrap(),
            secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
            tolerance_secs: 300,
            created_at: 0,
            reconcile: Some(ReconcileSettings {
                api_url: Some(api_url.into()),
                credential: credential.into(),
                ..ReconcileSettings::default()
            }),
        }
    }

    fn receiver(store: Arc<MemoryStore>, config: ReceiverConfig) -> Receiver {
        Receiver::new(
            store,
            Arc::new(RecordingQueue::default()),
            FixedClock::at_secs(NOW),
            config,
        )
    }

    fn reconciliation<'a>(
        store: &'a MemoryStore,
        receiver: &'a Receiver,
        credentials: &'a Credentials,
    ) -> Reconciliation<'a> {
        Reconciliation {
            ledger: store,
            receiver,
            credentials,
            clock: FixedClock::at_secs(NOW),
            policy: RateLimitPolicy::default(),
        }
    }

    fn created_gte(request: &str) -> i64 {
        let url =
            url::Url::parse(&format!("http://x{}", request.split(' ').nth(1).unwrap())).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "created[gte]")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn a_run_looks_back_no_further_than_the_dedup_ledger_remembers() {
        let (url, server) = stripe_lists(2);
        let source = stripe_source("st", "env:KEY", &url);
        let store = Arc::new(MemoryStore::with_sources([source.clone()]));
        let config = ReceiverConfig {
            dedup_ttl_secs: 2 * 86_400,
            ..ReceiverConfig::default()
        };
        let receiver = receiver(store.clone(), config);
        let credentials = Credentials(&[("KEY", "sk_test_1")]);
        let reconciliation = reconciliation(&store, &receiver, &credentials);
        let month = Duration::from_secs(30 * 86_400);
        let findings = reconciliation.source(&source, month, false).await.unwrap();
        assert!(findings.complete(), "{findings:?}");
        let hour = Duration::from_secs(3600);
        reconciliation.source(&source, hour, true).await.unwrap();
        let lines = server.join().unwrap();
        // Claims live 2 days: a month back would find every older event "missing".
        assert_eq!(
            created_gte(&lines[0]),
            NOW - 2 * 86_400 + LEDGER_MARGIN_SECS
        );
        assert_eq!(created_gte(&lines[1]), NOW - 3600);
    }

    #[tokio::test]
    async fn a_run_needs_dedup_and_a_readable_non_empty_credential() {
        let source = stripe_source("st", "env:KEY", "http://127.0.0.1:9");
        let store = Arc::new(MemoryStore::with_sources([source.clone()]));
        let day = Duration::from_secs(86_400);
        let cases: [(ReceiverConfig, Credentials, &str); 3] = [
            (
                ReceiverConfig {
                    dedup: false,
                    ..ReceiverConfig::default()
                },
                Credentials(&[("KEY", "sk_test_1")]),
                "dedup is off",
            ),
            (ReceiverConfig::default(), Credentials(&[]), "KEY not found"),
            (
                ReceiverConfig::default(),
                Credentials(&[("KEY", "  \n")]),
                "the credential is empty",
            ),
        ];
        for (config, credentials, expected) in cases {
            let receiver = receiver(store.clone(), config);
            let reconciliation = reconciliation(&store, &receiver, &credentials);
            let error = reconciliation
                .source(&source, day, false)
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    #[tokio::test]
    async fn a_sweep_runs_the_configured_sources_and_reports_the_others_as_stopped() {
        let (url, server) = stripe_lists(1);
        let unconfigured = Source {
            reconcile: None,
            ..stripe_source("plain", "env:KEY", &url)
        };
        let sources = [
            stripe_source("good", "env:KEY", &url),
            stripe_source("locked", "env:OTHER", &url),
            unconfigured,
        ];
        let store = Arc::new(MemoryStore::with_sources(sources));
        let receiver = receiver(store.clone(), ReceiverConfig::default());
        let credentials = Credentials(&[("KEY", "sk_test_1")]);
        let reconciliation = reconciliation(&store, &receiver, &credentials);
        let day = Duration::from_secs(86_400);
        let plenty = || Duration::from_secs(900);
        let mut runs = reconciliation
            .sweep(store.as_ref(), day, false, &plenty)
            .await
            .unwrap();
        runs.sort_by(|a, b| a.source.cmp(&b.source));
        assert_eq!(server.join().unwrap().len(), 1);
        let names: Vec<_> = runs.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(names, ["good", "locked"]);
        assert!(runs[0].complete() && runs[0].stopped.is_none());
        assert_eq!(runs[1].stopped.as_deref(), Some("OTHER not found"));

        // Out of time: no source is started, each is reported as not reached.
        let none_left = || Duration::from_secs(5);
        let late = reconciliation
            .sweep(store.as_ref(), day, false, &none_left)
            .await
            .unwrap();
        assert_eq!(late.len(), 2);
        assert!(
            late.iter()
                .all(|f| f.stopped.as_deref().unwrap().contains("ran out of time"))
        );

        // Each run is counted, zeros included: the alarm's metric has data from every run.
        let mut tally = Tally::new();
        runs.iter()
            .for_each(|f| tally.record_reconcile(&f.counts()));
        let drained = tally.drain();
        let counted = |metric: Metric, source: &str, n: u64| {
            drained.counts.contains(&(
                Series {
                    metric,
                    source: source.to_owned(),
                    detail: String::new(),
                },
                n,
            ))
        };
        assert!(counted(Metric::ReconcileUnrecovered, "good", 0));
        assert!(counted(Metric::ReconcileStopped, "locked", 1));
    }

    #[test]
    fn unrecovered_counts_the_missing_not_recovered_and_the_unchecked() {
        let findings = Findings {
            missing: vec!["a".into(), "b".into(), "c".into()],
            recovered: vec!["a".into()],
            failed: vec![
                crate::reconcile::FailedRecovery {
                    id: "b".into(),
                    reason: "refused".into(),
                },
                crate::reconcile::FailedRecovery {
                    id: "z".into(),
                    reason: "dedup ledger: down".into(),
                },
            ],
            ..Findings::default()
        };
        assert_eq!(findings.unrecovered(), 3);
        let dry = Findings {
            dry_run: true,
            ..findings
        };
        assert_eq!(dry.unrecovered(), 1);
    }
}
