//! Metrics on Lambda: the core's tally written as CloudWatch Embedded Metric Format lines on
//! stdout, where CloudWatch Logs turns them into metrics (no PutMetricData call, no IAM action).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use relay_core::Clock;
use relay_core::domain::metrics::{Drained, MAX_RECENT_LATENCIES, Metric, Tally};

/// The namespace setting; metrics are written only when it is set (the template sets it to
/// `WebhookRelay/<stack>`).
pub const NAMESPACE_VAR: &str = "RELAY_METRICS_NAMESPACE";

/// EMF allows at most 100 values per metric in one line.
pub const EMF_MAX_VALUES: usize = 100;
// The tally keeps no more raw latencies between two flushes than one line can carry.
const _: () = assert!(MAX_RECENT_LATENCIES <= EMF_MAX_VALUES);

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
        let drained = self
            .tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain();
        let lines = emf_lines(drained, &self.namespace, now);
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

/// One EMF line per (source, detail dimension name, detail value).
type LineKey = (String, Option<&'static str>, String);

/// CloudWatch Embedded Metric Format lines for what a tally drained, one line per (source,
/// detail) group, each with the total (no dimension) and the per-source dimension set declared.
/// Empty when nothing happened.
pub fn emf_lines(drained: Drained, namespace: &str, timestamp_ms: i64) -> Vec<String> {
    let mut groups: BTreeMap<LineKey, Vec<(Metric, serde_json::Value)>> = BTreeMap::new();
    for (series, n) in drained.counts {
        groups
            .entry((series.source, series.metric.detail(), series.detail))
            .or_default()
            .push((series.metric, serde_json::Value::from(n)));
    }
    for (series, mut values) in drained.latencies {
        values.truncate(EMF_MAX_VALUES);
        groups
            .entry((series.source, None, String::new()))
            .or_default()
            .push((series.metric, serde_json::Value::from(values)));
    }
    let mut lines = Vec::with_capacity(groups.len());
    for ((source, detail_name, detail), metrics) in groups {
        let mut dimension_sets = vec![serde_json::json!([]), serde_json::json!(["Source"])];
        if let Some(name) = detail_name {
            dimension_sets.push(serde_json::json!(["Source", name]));
        }
        let definitions: Vec<_> = metrics
            .iter()
            .map(|(metric, _)| {
                let unit = if metric.is_latency() {
                    "Milliseconds"
                } else {
                    "Count"
                };
                serde_json::json!({ "Name": metric.name(), "Unit": unit })
            })
            .collect();
        let mut line = serde_json::Map::new();
        line.insert(
            "_aws".to_owned(),
            serde_json::json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": dimension_sets,
                    "Metrics": definitions,
                }],
            }),
        );
        line.insert("Source".to_owned(), serde_json::Value::from(source));
        if let Some(name) = detail_name {
            line.insert(name.to_owned(), serde_json::Value::from(detail));
        }
        for (metric, value) in metrics {
            line.insert(metric.name().to_owned(), value);
        }
        lines.push(serde_json::Value::Object(line).to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::domain::model::{AttemptOutcome, NextStep};
    use relay_core::testkit::attempt_record as record;

    fn drain_emf(tally: &mut Tally, namespace: &str, timestamp_ms: i64) -> Vec<String> {
        emf_lines(tally.drain(), namespace, timestamp_ms)
    }

    #[test]
    fn emf_lines_declare_every_member_they_carry() {
        let mut tally = Tally::new();
        tally.record_reply("stripe", 202, false);
        tally.record_reply("stripe", 400, false);
        tally.record_attempt(
            "stripe",
            0,
            &record(AttemptOutcome::Ok, NextStep::Done, 10, 5),
        );
        let lines = drain_emf(&mut tally, "WebhookRelay", 1_700_000_000_000);
        assert_eq!(lines.len(), 2, "one line per (source, status)");
        for line in lines {
            let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
            assert_eq!(directive["Namespace"], "WebhookRelay");
            for set in directive["Dimensions"].as_array().unwrap() {
                for name in set.as_array().unwrap() {
                    assert!(doc[name.as_str().unwrap()].is_string(), "{line}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                assert!(!doc[metric["Name"].as_str().unwrap()].is_null(), "{line}");
            }
        }
    }

    #[test]
    fn drained_counts_are_not_written_twice() {
        let mut tally = Tally::new();
        tally.record_reply("a", 202, false);
        assert_eq!(drain_emf(&mut tally, "N", 0).len(), 1);
        assert!(drain_emf(&mut tally, "N", 0).is_empty());
        tally.record_reply("a", 202, false);
        assert_eq!(drain_emf(&mut tally, "N", 0).len(), 1);
    }

    #[test]
    fn values_per_line_are_bounded() {
        let mut tally = Tally::new();
        for i in 0..(EMF_MAX_VALUES as u64 + 20) {
            tally.record_attempt("a", 0, &record(AttemptOutcome::Ok, NextStep::Done, 0, i));
        }
        let lines = drain_emf(&mut tally, "N", 0);
        let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            doc["DeliveryLatency"].as_array().unwrap().len(),
            EMF_MAX_VALUES
        );
        let units: Vec<_> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
            .collect();
        assert!(
            units.contains(&("DeliveryLatency", "Milliseconds")),
            "{units:?}"
        );
        assert!(units.contains(&("Delivered", "Count")), "{units:?}");
    }
}
