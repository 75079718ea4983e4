//! `relay reconcile SOURCE`: resolves the source's API credential on this backend, runs the
//! core's reconcile and prints its findings; exits 1 when something was left unrecovered.

use std::sync::Arc;

use std::path::PathBuf;

use async_trait::async_trait;
use relay_core::ports::clock;
use relay_core::receive::{Receiver, ReceiverConfig};
use relay_core::reconcile::{
    Credential, CredentialError, CredentialReader, CredentialRef, Findings, RateLimitPolicy,
    Reconciliation, env_credential,
};

use crate::args::Global;
use crate::backend::Backend;
use crate::errors::{self, Kind};
use crate::output::{emit, millis_text};

pub async fn run(
    backend: &Backend,
    global: &Global,
    name: &str,
    since: &str,
    dry_run: bool,
) -> anyhow::Result<()> {
    let lookback =
        crate::when::duration(since).map_err(|e| errors::usage(format!("--since: {e}")))?;
    let store = backend.store();
    let source = store
        .get_source(name)
        .await?
        .ok_or_else(|| errors::classified(Kind::NotFound, format!("no such source: {name}")))?;
    let clock = clock::system();
    let receiver = receiver(backend, clock.clone())?;
    let local;
    let credentials: &dyn CredentialReader = match backend {
        Backend::Local(_) => {
            local = LocalCredentials {
                data_dir: global.data_dir.clone(),
            };
            &local
        }
        Backend::Aws(aws) => &aws.credentials,
    };
    let reconciliation = Reconciliation {
        ledger: store.as_ref(),
        receiver: &receiver,
        credentials,
        clock,
        policy: RateLimitPolicy::default(),
    };
    let findings = reconciliation.source(&source, lookback, dry_run).await?;
    let value = serde_json::to_value(&findings)?;
    emit(global.json, &value, || findings_text(&findings));
    if !findings.complete() {
        let left = findings.unrecovered();
        match &findings.stopped {
            Some(why) => {
                return Err(errors::classified(
                    Kind::Unavailable,
                    format!(
                        "reconcile stopped before it was through ({left} missing event(s) not recovered): {why}"
                    ),
                ));
            }
            None => {
                return Err(errors::classified(
                    Kind::Unavailable,
                    format!("{left} missing event(s) not recovered"),
                ));
            }
        }
    }
    Ok(())
}

/// The receiver that ingests events read from the API, over this backend's store and queue.
fn receiver(backend: &Backend, clock: clock::SharedClock) -> anyhow::Result<Receiver> {
    let config = ReceiverConfig::default();
    let receiver = match backend {
        Backend::Local(local) => Receiver::new(
            Arc::new(local.clone()),
            Arc::new(local.clone()),
            clock,
            config,
        ),
        Backend::Aws(aws) => {
            aws.settings.require_events_queue_url()?;
            Receiver::new(
                Arc::new(aws.adapters.store.clone()),
                Arc::new(aws.adapters.queue.clone()),
                clock,
                config,
            )
        }
    };
    // Events over the inline limit are stored as the receiver stores them.
    Ok(match backend.bodies() {
        Some(bodies) => receiver.with_bodies(bodies),
        None => receiver,
    })
}

/// Credentials on the local backend: an environment variable or a file in the data dir.
struct LocalCredentials {
    data_dir: PathBuf,
}

#[async_trait]
impl CredentialReader for LocalCredentials {
    async fn read(&self, reference: &CredentialRef) -> Result<Credential, CredentialError> {
        match reference {
            CredentialRef::Env(name) => env_credential(name),
            CredentialRef::File(file) => {
                let path = self.data_dir.join(file);
                std::fs::read_to_string(&path)
                    .map(Credential::new)
                    .map_err(|e| CredentialError::Unreadable {
                        what: format!("the credential file {}", path.display()),
                        cause: e.to_string(),
                    })
            }
            CredentialRef::Ssm(name) | CredentialRef::SecretsManager(name) => {
                Err(CredentialError::InAws(name.clone()))
            }
        }
    }
}

fn findings_text(findings: &Findings) -> String {
    let list = |ids: &[String]| {
        if ids.is_empty() {
            String::new()
        } else {
            format!("  {}", ids.join(", "))
        }
    };
    let mut lines = vec![
        format!(
            "reconcile {} ({}) since {}{}",
            findings.source,
            findings.provider,
            millis_text(findings.since * 1000),
            if findings.dry_run { " (dry run)" } else { "" }
        ),
        format!("seen by the provider: {}", findings.seen),
        format!("queued here:          {}", findings.queued),
        format!(
            "missing:              {}{}",
            findings.missing.len(),
            list(&findings.missing)
        ),
        format!(
            "recovered:            {}{}",
            findings.recovered.len(),
            list(&findings.recovered)
        ),
        format!("failed:               {}", findings.failed.len()),
    ];
    for failure in &findings.failed {
        lines.push(format!("  {}: {}", failure.id, failure.reason));
    }
    if let Some(why) = &findings.stopped {
        lines.push(format!("stopped: {why}"));
    }
    if findings.dry_run && !findings.missing.is_empty() {
        lines.push("dry run: nothing was recovered".into());
    }
    lines.join("\n")
}
