//! `relay reconcile SOURCE`: resolves the source's API credential on this backend, runs the
//! core's reconcile and prints its findings; exits 1 when something was left unrecovered.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use relay_core::clock;
use relay_core::receive::{Receiver, ReceiverConfig};
use relay_core::reconcile::{
    self, Credential, CredentialRef, Findings, RateLimitPolicy, ReconcileError, Run,
};
use relay_core::retry::parse_duration;

use crate::args::Global;
use crate::backend::Backend;
use crate::output::{emit, millis_text};

pub async fn run(
    backend: &Backend,
    global: &Global,
    name: &str,
    since: &str,
    dry_run: bool,
) -> anyhow::Result<()> {
    let lookback = parse_duration(since).map_err(|e| anyhow!("--since {since:?}: {e}"))?;
    let store = backend.store();
    let source = store
        .get_source(name)
        .await?
        .ok_or_else(|| anyhow!("no such source: {name}"))?;
    let reconciler = reconcile::reconciler_for(&source)
        .ok_or_else(|| ReconcileError::Unsupported(source.provider.name().to_owned()))?;
    let settings = source
        .reconcile
        .clone()
        .ok_or_else(|| ReconcileError::NotConfigured(name.to_owned()))?;
    let api = (reconciler.connect)(&settings)?;
    let reference: CredentialRef = settings.credential.parse()?;
    let credential = resolve_credential(backend, global, &reference).await?;
    let clock = clock::system();
    let mut client = reconciler.client(
        &settings,
        credential,
        RateLimitPolicy::default(),
        clock.clone(),
    )?;
    let receiver = receiver(backend, clock.clone())?;
    let now = clock.now_secs();
    let run = Run {
        source: &source,
        since: now
            - i64::try_from(lookback.as_secs())
                .unwrap_or(i64::MAX)
                .min(now),
        now,
        dry_run,
    };
    let findings =
        reconcile::reconcile(api.as_ref(), &mut client, store.as_ref(), &receiver, run).await;
    let value = serde_json::to_value(&findings)?;
    emit(global.json, &value, || findings_text(&findings));
    if !findings.complete() {
        let left = findings.missing.len() - findings.recovered.len();
        match &findings.stopped {
            Some(why) => bail!(
                "reconcile stopped before it was through ({left} missing event(s) not recovered): {why}"
            ),
            None => bail!("{left} missing event(s) not recovered"),
        }
    }
    Ok(())
}

/// The receiver that ingests events read from the API, over this backend's store and queue.
fn receiver(backend: &Backend, clock: clock::SharedClock) -> anyhow::Result<Receiver> {
    let config = ReceiverConfig::default();
    Ok(match backend {
        Backend::Local(local) => Receiver::new(
            Arc::new(local.clone()),
            Arc::new(local.clone()),
            clock,
            config,
        ),
        Backend::Aws {
            adapters, settings, ..
        } => {
            settings.require_events_queue_url()?;
            Receiver::new(
                Arc::new(adapters.store.clone()),
                Arc::new(adapters.queue.clone()),
                clock,
                config,
            )
        }
    })
}

/// Reads the credential a reference names. Locally: an environment variable or a file in the
/// data dir; on AWS also an SSM SecureString or a Secrets Manager secret.
async fn resolve_credential(
    backend: &Backend,
    global: &Global,
    reference: &CredentialRef,
) -> anyhow::Result<Credential> {
    let credential = match reference {
        CredentialRef::Env(name) => Credential::new(
            std::env::var(name)
                .with_context(|| format!("the credential variable {name} is not set"))?,
        ),
        CredentialRef::File(file) => {
            if !matches!(backend, Backend::Local(_)) {
                bail!(
                    "file: credentials are read from the local data dir; on AWS use ssm: or secretsmanager:"
                );
            }
            let path = global.data_dir.join(file);
            Credential::new(
                std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read the credential file {}", path.display())
                })?,
            )
        }
        CredentialRef::Ssm(name) | CredentialRef::SecretsManager(name) => {
            let Backend::Aws { .. } = backend else {
                bail!("the credential {name} is in AWS: run reconcile with --aws");
            };
            crate::backend::aws_credential(reference).await?
        }
    };
    if credential.is_empty() {
        bail!("the credential is empty");
    }
    Ok(credential)
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
