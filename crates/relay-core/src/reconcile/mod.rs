//! Reconcile: ask a provider's API what it sent a source, find what the relay never queued (the
//! dedup ledger knows every queued provider id) and recover it: GitHub redelivers through the
//! normal signed path, Stripe's events are ingested from the API (`Receiver::accept_reconciled`).
//!
//! A provider is one file here plus its line in `RECONCILERS`: it lists one page of what it sent
//! (`ProviderApi::page`) and says how each is recovered (`Recovery`). Rate limits are honoured by
//! `ApiClient` with bounded waits; when a wait would exceed the budget the run stops cleanly and
//! the findings say what was done and why it stopped.

mod client;
mod github;
mod github_app;
mod stripe;
mod sweep;

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::model::Source;
use crate::ports::DedupLedger;
use crate::providers::Verified;
use crate::receive::{ReceiveOutcome, Receiver};

pub use client::{ApiClient, ApiError, Bearer, Credential, RateLimitPolicy, wait_for_rate_limit};
pub use github_app::GithubAppJwt;
pub use sweep::{CredentialError, CredentialReader, Reconciliation, env_credential};

/// Every provider `relay reconcile` knows, by the provider name of its sources.
pub static RECONCILERS: &[&Reconciler] = &[&github::RECONCILER, &stripe::RECONCILER];

/// The registry entry for a source's provider.
pub fn reconciler_for(source: &Source) -> Option<&'static Reconciler> {
    RECONCILERS
        .iter()
        .copied()
        .find(|r| r.provider == source.provider.name())
}

pub use crate::domain::model::ReconcileSettings;

/// A change to a source's reconcile settings (`relay sources update`): each given part replaces
/// the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileChange {
    pub credential: Option<String>,
    /// An empty value goes back to the provider's real API.
    pub api_url: Option<String>,
    pub github_hook: Option<String>,
    /// An empty value removes it.
    pub github_app_id: Option<String>,
    /// An empty list: every type.
    pub event_types: Option<Vec<String>>,
}

impl ReconcileChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The settings `change` makes of `source`'s, checked: a provider reconcile knows, a credential
/// reference, an http(s) API URL, and what the provider needs (GitHub: the hook).
pub fn change_settings(
    source: &Source,
    change: ReconcileChange,
) -> Result<ReconcileSettings, ReconcileError> {
    let reconciler = reconciler_for(source)
        .ok_or_else(|| ReconcileError::Unsupported(source.provider.name().to_owned()))?;
    let mut settings = source.reconcile.clone().unwrap_or_default();
    if let Some(credential) = change.credential {
        settings.credential = credential;
    }
    if let Some(url) = change.api_url {
        settings.api_url = Some(url).filter(|u| !u.trim().is_empty());
    }
    if let Some(hook) = change.github_hook {
        settings.github_hook = Some(hook);
    }
    if let Some(app_id) = change.github_app_id {
        settings.github_app_id = Some(app_id.trim().to_owned()).filter(|id| !id.is_empty());
    }
    if let Some(types) = change.event_types {
        settings.event_types = types;
    }
    if settings.credential.is_empty() {
        return Err(ReconcileError::Config(
            "reconcile needs a credential reference (--reconcile-credential env:NAME, file:NAME, ssm:NAME or secretsmanager:NAME)".into(),
        ));
    }
    settings.credential.parse::<CredentialRef>()?;
    if let Some(url) = &settings.api_url {
        let parsed = url::Url::parse(url)
            .map_err(|e| ReconcileError::Config(format!("API URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ReconcileError::Config(format!(
                "API URL {url:?}: not http or https"
            )));
        }
    }
    if let Some(hook) = &settings.github_hook {
        settings.github_hook = Some(github::parse_hook(hook)?);
    }
    github::check_app_id(&settings)?;
    (reconciler.connect)(&settings)?;
    Ok(settings)
}

/// Where a credential reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    Env(String),
    File(String),
    Ssm(String),
    SecretsManager(String),
}

impl std::str::FromStr for CredentialRef {
    type Err = ReconcileError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            ReconcileError::Config(format!(
                "credential reference {text:?}: expected env:NAME, file:NAME, ssm:NAME or secretsmanager:NAME"
            ))
        };
        let (kind, name) = text.split_once(':').ok_or_else(invalid)?;
        if name.is_empty() {
            return Err(invalid());
        }
        match kind {
            "env" => Ok(CredentialRef::Env(name.to_owned())),
            "file" => {
                // A file in the data dir, by plain name: no way out of it.
                let plain = name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                    && !name.starts_with('.');
                if !plain {
                    return Err(ReconcileError::Config(format!(
                        "credential file {name:?}: a plain file name in the data dir (letters, digits, '-', '_', '.')"
                    )));
                }
                Ok(CredentialRef::File(name.to_owned()))
            }
            "ssm" => Ok(CredentialRef::Ssm(name.to_owned())),
            "secretsmanager" => Ok(CredentialRef::SecretsManager(name.to_owned())),
            _ => Err(invalid()),
        }
    }
}

/// One provider's reconciliation.
pub struct Reconciler {
    /// The provider name of the sources it serves (`github`, `stripe`).
    pub provider: &'static str,
    /// The provider's API when a source's settings leave `api_url` out.
    pub default_api_url: &'static str,
    /// Headers every request to its API carries.
    pub headers: &'static [(&'static str, &'static str)],
    /// Checks the settings and builds the API for a source.
    pub connect: fn(&ReconcileSettings) -> Result<Box<dyn ProviderApi>, ReconcileError>,
}

impl Reconciler {
    /// The API client for `settings`, with the provider's headers; for a GitHub App hook it
    /// signs JWTs with the key `credential` holds (an error names a key that does not parse).
    pub fn client(
        &self,
        settings: &ReconcileSettings,
        credential: Credential,
        policy: RateLimitPolicy,
        clock: crate::ports::clock::SharedClock,
    ) -> Result<ApiClient, ApiError> {
        let base = settings.api_url.as_deref().unwrap_or(self.default_api_url);
        // The credential of an App hook is the App's private key (checked by `connect`).
        let client = match &settings.github_app_id {
            Some(app_id) => {
                let jwt = GithubAppJwt::new(app_id, &credential)?;
                ApiClient::new(base, jwt, policy, clock)?
            }
            None => ApiClient::new(base, credential, policy, clock)?,
        };
        Ok(self.headers.iter().fold(client, |client, (name, value)| {
            client.with_header(name, value)
        }))
    }
}

/// What a provider's API says it sent, one page at a time.
#[async_trait]
pub trait ProviderApi: Send + Sync {
    /// One page of what was sent at or after `since` (seconds), starting at `cursor` (`None` for
    /// the newest); the page's `next` is `None` on the last page.
    async fn page(
        &self,
        client: &mut ApiClient,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<Page, ApiError>;
    /// Asks the provider to send `delivery_id` again (`Recovery::Redeliver`).
    async fn redeliver(&self, client: &mut ApiClient, delivery_id: &str) -> Result<(), ApiError>;
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub sent: Vec<SentEvent>,
    /// Where the next page starts: a cursor or URL the same provider understands.
    pub next: Option<String>,
}

/// One event the provider sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEvent {
    /// The id the receiver deduplicates on for this provider (GitHub's `X-GitHub-Delivery`
    /// guid, Stripe's event id).
    pub key: String,
    pub recovery: Recovery,
}

/// How a missing event is recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The provider sends it again, signed, to the receiver (GitHub): its delivery's id there.
    Redeliver { delivery_id: String },
    /// The relay ingests it as read from the API (Stripe).
    Ingest { event_type: String, body: Vec<u8> },
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Config(String),
    #[error("source {0} has no reconcile settings: configure them with relay sources update")]
    NotConfigured(String),
    #[error("reconcile does not support {0} sources (it knows github and stripe)")]
    Unsupported(String),
    #[error(transparent)]
    Credential(CredentialError),
}

/// What one run found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Findings {
    pub source: String,
    pub provider: String,
    /// Seconds since the epoch: events sent from then on were looked at.
    pub since: i64,
    pub dry_run: bool,
    /// Distinct events the provider reported.
    pub seen: usize,
    /// Of those, how many the dedup ledger holds as queued.
    pub queued: usize,
    /// Provider ids the relay never queued.
    pub missing: Vec<String>,
    /// Of the missing, those recovered (GitHub: redelivery accepted; Stripe: queued here).
    pub recovered: Vec<String>,
    /// Of the missing, those that could not be recovered, with why.
    pub failed: Vec<FailedRecovery>,
    /// Why the run stopped before it was through (a rate limit over the wait budget, a refused
    /// credential); what was found up to then is above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedRecovery {
    pub id: String,
    pub reason: String,
}

impl Findings {
    /// The run's counts for the metrics.
    pub fn counts(&self) -> crate::domain::metrics::ReconcileCounts<'_> {
        crate::domain::metrics::ReconcileCounts {
            source: &self.source,
            missing: self.missing.len(),
            recovered: self.recovered.len(),
            unrecovered: self.unrecovered(),
            stopped: self.stopped.is_some(),
        }
    }

    /// True when nothing is left unrecovered: no failure, no early stop, and (unless a dry run)
    /// every missing event recovered.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
            && self.stopped.is_none()
            && (self.dry_run || self.recovered.len() == self.missing.len())
    }

    /// Events known to be missing and not recovered: the missing ones not recovered, and ids
    /// that could not even be checked (a ledger error). A dry run recovers nothing on purpose.
    pub fn unrecovered(&self) -> usize {
        let unchecked = self
            .failed
            .iter()
            .filter(|f| !self.missing.contains(&f.id))
            .count();
        let missed = if self.dry_run {
            0
        } else {
            self.missing.len().saturating_sub(self.recovered.len())
        };
        missed + unchecked
    }
}

/// What to reconcile.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub source: &'a Source,
    /// Seconds since the epoch.
    pub since: i64,
    /// Now, in seconds since the epoch (for the ledger's liveness).
    pub now: i64,
    /// Only find; recover nothing.
    pub dry_run: bool,
}

/// At most this many pages are read in one run, so a run always ends.
pub const MAX_PAGES: usize = 1000;

/// Lists what the provider sent since `run.since`, compares it with the ledger and (unless a
/// dry run) recovers what is missing. Never fails as a whole: API errors stop the run and are
/// reported in `Findings::stopped`; store errors as failures of the affected ids.
pub async fn reconcile(
    api: &dyn ProviderApi,
    client: &mut ApiClient,
    ledger: &dyn DedupLedger,
    receiver: &Receiver,
    run: Run<'_>,
) -> Findings {
    let source = run.source;
    let mut findings = Findings {
        source: source.name.clone(),
        provider: source.provider.name().to_owned(),
        since: run.since,
        dry_run: run.dry_run,
        ..Findings::default()
    };
    let mut seen_keys = std::collections::HashSet::new();
    let mut missing = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = match api.page(client, run.since, cursor.as_deref()).await {
            Ok(page) => page,
            Err(error) => {
                findings.stopped = Some(format!("listing stopped: {error}"));
                break;
            }
        };
        for sent in page.sent {
            // GitHub lists a redelivery under the same guid: the newest (first) stands for it.
            if !seen_keys.insert(sent.key.clone()) {
                continue;
            }
            match ledger
                .claimed_event_id(&source.name, &sent.key, run.now)
                .await
            {
                Ok(Some(_)) => findings.queued += 1,
                Ok(None) => missing.push(sent),
                Err(error) => findings.failed.push(FailedRecovery {
                    id: sent.key.clone(),
                    reason: format!("dedup ledger: {error}"),
                }),
            }
        }
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    findings.seen = seen_keys.len();
    findings.missing = missing.iter().map(|s| s.key.clone()).collect();
    if run.dry_run {
        return findings;
    }
    for sent in missing {
        let outcome = match &sent.recovery {
            Recovery::Redeliver { delivery_id } => api
                .redeliver(client, delivery_id)
                .await
                .map_err(|e| (e.stops_the_run(), e.to_string())),
            Recovery::Ingest { event_type, body } => {
                ingest(receiver, source, &sent.key, event_type, body).await
            }
        };
        match outcome {
            Ok(()) => findings.recovered.push(sent.key),
            Err((stops, reason)) => {
                findings.failed.push(FailedRecovery {
                    id: sent.key,
                    reason: reason.clone(),
                });
                if stops {
                    findings
                        .stopped
                        .get_or_insert(format!("recovery stopped: {reason}"));
                    break;
                }
            }
        }
    }
    findings
}

/// Queues one event read from the API; `Err((stops the run, why))` when it was not queued.
async fn ingest(
    receiver: &Receiver,
    source: &Source,
    key: &str,
    event_type: &str,
    body: &[u8],
) -> Result<(), (bool, String)> {
    let verified = Verified {
        event_type: event_type.to_owned(),
        delivery_id: Some(key.to_owned()),
    };
    let outcome = receiver
        .accept_reconciled(source, verified, Some("application/json"), body)
        .await;
    match outcome {
        // A duplicate was queued meanwhile by a webhook that arrived late.
        ReceiveOutcome::Accepted { .. } | ReceiveOutcome::Duplicate { .. } => Ok(()),
        // The store or queue is down: the rest of the run would fail the same way.
        ReceiveOutcome::Unavailable(_) => Err((true, not_queued(&outcome))),
        _ => Err((false, not_queued(&outcome))),
    }
}

fn not_queued(outcome: &ReceiveOutcome) -> String {
    let reply = outcome.reply();
    format!("not queued ({}): {}", reply.status, reply.body)
}

#[cfg(test)]
mod tests;
