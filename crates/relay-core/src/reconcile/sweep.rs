//! One source's reconciliation from its stored settings, and the sweep over every source that
//! has them: what `relay reconcile SOURCE` and the scheduled reconcile function both run.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    Credential, CredentialRef, Findings, RateLimitPolicy, ReconcileError, Run, reconcile,
    reconciler_for,
};
use crate::clock::SharedClock;
use crate::model::Source;
use crate::ports::{Catalog, DedupLedger};
use crate::receive::Receiver;

/// Reads the credential a source's reference names, on this backend (environment, data dir,
/// SSM Parameter Store, Secrets Manager). Errors say what could not be read, never the value.
#[async_trait]
pub trait CredentialReader: Send + Sync {
    async fn read(&self, reference: &CredentialRef) -> Result<Credential, String>;
}

/// The credential in an environment variable (`env:NAME`), on every backend.
pub fn env_credential(name: &str) -> Result<Credential, String> {
    std::env::var(name).map_or_else(
        |_| Err(format!("the credential variable {name} is not set")),
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
            return Err(ReconcileError::Credential("the credential is empty".into()));
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
