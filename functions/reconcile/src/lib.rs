//! The reconcile Lambda's adapter: on its schedule it reconciles every source that has
//! reconcile settings (or, when invoked with `{"source_name": NAME}`, that one source), counts
//! the findings as EMF metrics (the stack alarms on `ReconcileUnrecovered` and
//! `ReconcileStopped`), logs one line per source and answers the findings.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use relay_aws::metrics::EmfMetrics;
use relay_aws::{AwsCredentials, DynamoStore};
use relay_core::ports::Catalog;
use relay_core::ports::clock::SharedClock;
use relay_core::receive::Receiver;
use relay_core::reconcile::{Findings, RateLimitPolicy, ReconcileError, Reconciliation};
use serde::{Deserialize, Serialize};

/// How far back each run looks unless `RELAY_RECONCILE_LOOKBACK` says otherwise.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// The invocation's input. The schedule sends `{}`; every other field of an event (such as
/// EventBridge's own `source`) is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Request {
    /// Only this source.
    #[serde(default)]
    pub source_name: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// The invocation's answer.
#[derive(Debug, Serialize)]
pub struct Response {
    pub runs: Vec<Findings>,
    /// Missing events not recovered, over all runs.
    pub unrecovered: usize,
    /// Runs that stopped before they were through.
    pub stopped: usize,
}

/// What a warm container keeps: clients, the receiver that ingests, settings.
pub struct Sweeper {
    pub store: DynamoStore,
    pub receiver: Receiver,
    pub credentials: AwsCredentials,
    pub clock: SharedClock,
    pub lookback: Duration,
    pub metrics: Option<Arc<EmfMetrics>>,
}

impl Sweeper {
    /// One invocation; `deadline` is the invocation's, so that no source is started without
    /// time to finish.
    pub async fn handle(
        &self,
        request: Request,
        deadline: Option<Instant>,
    ) -> Result<Response, ReconcileError> {
        let reconciliation = Reconciliation {
            ledger: &self.store,
            receiver: &self.receiver,
            credentials: &self.credentials,
            clock: self.clock.clone(),
            policy: RateLimitPolicy::default(),
        };
        let time_left = move || {
            deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            })
        };
        let runs = match &request.source_name {
            Some(name) => {
                let source = self
                    .store
                    .get_source(name)
                    .await
                    .map_err(|e| ReconcileError::Config(format!("cannot read source {name}: {e}")))?
                    .ok_or_else(|| ReconcileError::Config(format!("no such source: {name}")))?;
                let findings = reconciliation
                    .source(&source, self.lookback, request.dry_run)
                    .await
                    .unwrap_or_else(|error| Findings::stopped_before(&source, &error));
                vec![findings]
            }
            None => {
                reconciliation
                    .sweep(&self.store, self.lookback, request.dry_run, &time_left)
                    .await?
            }
        };
        for findings in &runs {
            tracing::info!(
                source = %findings.source,
                provider = %findings.provider,
                seen = findings.seen,
                queued = findings.queued,
                missing = findings.missing.len(),
                recovered = findings.recovered.len(),
                unrecovered = findings.unrecovered(),
                stopped = findings.stopped.as_deref().unwrap_or(""),
                dry_run = findings.dry_run,
                "reconciled"
            );
        }
        if let Some(metrics) = &self.metrics {
            let tally = metrics.tally();
            let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
            for findings in &runs {
                tally.record_reconcile(&findings.counts());
            }
        }
        Ok(Response {
            unrecovered: runs.iter().map(Findings::unrecovered).sum(),
            stopped: runs.iter().filter(|f| f.stopped.is_some()).count(),
            runs,
        })
    }

    /// Writes the metrics counted by the last invocation.
    pub fn flush_metrics(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.flush();
        }
    }
}
