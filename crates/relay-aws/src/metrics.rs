//! Metrics on Lambda: the core's tally written as CloudWatch Embedded Metric Format lines on
//! stdout, where CloudWatch Logs turns them into metrics (no PutMetricData call, no IAM action).

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use relay_core::Clock;
use relay_core::metrics::Tally;

/// The namespace setting; metrics are written only when it is set (the template sets it to
/// `WebhookRelay/<stack>`).
pub const NAMESPACE_VAR: &str = "RELAY_METRICS_NAMESPACE";

pub struct EmfMetrics {
    namespace: String,
    tally: Arc<Mutex<Tally>>,
}

impl EmfMetrics {
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let namespace = lookup(NAMESPACE_VAR)?.trim().to_owned();
        (!namespace.is_empty()).then(|| Self {
            namespace,
            tally: Arc::new(Mutex::new(Tally::new())),
        })
    }

    /// The tally the receiver or fanout counts into.
    pub fn tally(&self) -> Arc<Mutex<Tally>> {
        Arc::clone(&self.tally)
    }

    /// Writes what was counted since the last flush (once per invocation), one line each.
    pub fn flush(&self) {
        let now = relay_core::SystemClock.now_millis();
        let lines = self
            .tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain_emf(&self.namespace, now);
        if lines.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        for line in lines {
            // A lost metric line must not fail the invocation.
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}
