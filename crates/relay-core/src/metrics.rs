//! What the relay counts, without an API call: a `Tally` the receiver's answers and the fanout's
//! attempt records are added to, rendered as CloudWatch Embedded Metric Format lines on Lambda
//! (one set per invocation) and as Prometheus text by `relay dev` (`GET /metrics`).
//!
//! Dimensions are the source, and for refusals the status, for failures the outcome class.
//! Subscriptions are not a dimension: each distinct dimension value is a custom metric billed
//! per month, and subscriptions are unbounded (docs/metrics.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::{AttemptOutcome, AttemptRecord, NextStep};

/// One metric the relay emits; `name` is its CloudWatch metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Events queued (202).
    Accepted,
    /// Requests answered 4xx/5xx, by status.
    Refused,
    /// Provider retries of an event already queued (200 duplicate).
    Duplicates,
    /// Attempts answered 2xx.
    Delivered,
    /// Attempts that failed, by outcome class.
    Failed,
    /// Retries put on the deliveries queue.
    RetriesScheduled,
    /// Deliveries whose schedule is spent, parked in the deliveries DLQ.
    DeadLettered,
    /// Follow-ups (retry or dead letter) that could not be queued: the event message is retried.
    RetrySchedulingFailed,
    /// Milliseconds one attempt took.
    DeliveryLatency,
    /// Milliseconds from the receiver's accept to the 2xx of a delivery.
    AcceptToDeliver,
    /// Reconcile: events the provider sent that the relay never queued.
    ReconcileMissing,
    /// Reconcile: missing events recovered (redelivered or ingested).
    ReconcileRecovered,
    /// Reconcile: missing events not recovered (the alarm's metric).
    ReconcileUnrecovered,
    /// Reconcile: runs that stopped before they were through (credential, API error, limit).
    ReconcileStopped,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::Accepted,
        Metric::Refused,
        Metric::Duplicates,
        Metric::Delivered,
        Metric::Failed,
        Metric::RetriesScheduled,
        Metric::DeadLettered,
        Metric::RetrySchedulingFailed,
        Metric::DeliveryLatency,
        Metric::AcceptToDeliver,
        Metric::ReconcileMissing,
        Metric::ReconcileRecovered,
        Metric::ReconcileUnrecovered,
        Metric::ReconcileStopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Accepted => "Accepted",
            Metric::Refused => "Refused",
            Metric::Duplicates => "Duplicates",
            Metric::Delivered => "Delivered",
            Metric::Failed => "Failed",
            Metric::RetriesScheduled => "RetriesScheduled",
            Metric::DeadLettered => "DeadLettered",
            Metric::RetrySchedulingFailed => "RetrySchedulingFailed",
            Metric::DeliveryLatency => "DeliveryLatency",
            Metric::AcceptToDeliver => "AcceptToDeliver",
            Metric::ReconcileMissing => "ReconcileMissing",
            Metric::ReconcileRecovered => "ReconcileRecovered",
            Metric::ReconcileUnrecovered => "ReconcileUnrecovered",
            Metric::ReconcileStopped => "ReconcileStopped",
        }
    }

    /// The dimension that splits this metric besides the source, if any.
    pub fn detail(self) -> Option<&'static str> {
        match self {
            Metric::Refused => Some("Status"),
            Metric::Failed => Some("Class"),
            _ => None,
        }
    }

    fn is_latency(self) -> bool {
        matches!(self, Metric::DeliveryLatency | Metric::AcceptToDeliver)
    }

    fn help(self) -> &'static str {
        match self {
            Metric::Accepted => "Events accepted and queued.",
            Metric::Refused => "Inbound requests refused, by status.",
            Metric::Duplicates => "Provider retries of an event already queued.",
            Metric::Delivered => "Delivery attempts answered 2xx.",
            Metric::Failed => "Delivery attempts that failed, by outcome class.",
            Metric::RetriesScheduled => "Retries put on the deliveries queue.",
            Metric::DeadLettered => "Deliveries parked in the deliveries dead-letter queue.",
            Metric::RetrySchedulingFailed => "Retries or dead letters that could not be queued.",
            Metric::DeliveryLatency => "Milliseconds one delivery attempt took.",
            Metric::AcceptToDeliver => "Milliseconds from accepting an event to delivering it.",
            Metric::ReconcileMissing => "Events a provider sent that were never queued.",
            Metric::ReconcileRecovered => "Missing events recovered by reconcile.",
            Metric::ReconcileUnrecovered => "Missing events reconcile could not recover.",
            Metric::ReconcileStopped => "Reconcile runs that stopped before they were through.",
        }
    }

    /// The Prometheus name, e.g. `relay_delivery_latency_ms`.
    fn prometheus_name(self) -> String {
        let mut out = String::from("relay_");
        for (i, c) in self.name().chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        if self.is_latency() {
            out.push_str("_ms");
        } else {
            out.push_str("_total");
        }
        out
    }
}

/// EMF allows at most 100 values per metric in one line; more samples in one invocation are
/// kept in the histogram only.
pub const EMF_MAX_VALUES: usize = 100;
/// Histogram bounds (milliseconds) of the latencies `relay dev` exports.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

/// One EMF line per (source, detail dimension name, detail value).
type LineKey = (String, Option<&'static str>, String);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    metric: Metric,
    source: String,
    /// The status or class for metrics with a detail dimension, else empty.
    detail: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Samples {
    /// Raw values since the last `drain` (at most `EMF_MAX_VALUES`).
    recent: Vec<u64>,
    /// Cumulative: counts per bucket of `LATENCY_BUCKETS_MS`, then the overflow.
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
    sum: u64,
    count: u64,
}

/// Counts and latencies, cumulative for Prometheus; `drain_emf` takes what accumulated since
/// its last call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    counts: BTreeMap<Key, u64>,
    /// Counts not yet written as EMF.
    fresh: BTreeMap<Key, u64>,
    latencies: BTreeMap<Key, Samples>,
}

impl Tally {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.latencies.is_empty()
    }

    fn add(&mut self, metric: Metric, source: &str, detail: &str, n: u64) {
        let key = Key {
            metric,
            source: source.to_owned(),
            detail: detail.to_owned(),
        };
        *self.fresh.entry(key.clone()).or_default() += n;
        *self.counts.entry(key).or_default() += n;
    }

    fn observe(&mut self, metric: Metric, source: &str, ms: u64) {
        let samples = self
            .latencies
            .entry(Key {
                metric,
                source: source.to_owned(),
                detail: String::new(),
            })
            .or_default();
        if samples.recent.len() < EMF_MAX_VALUES {
            samples.recent.push(ms);
        }
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        samples.buckets[bucket] += 1;
        samples.sum += ms;
        samples.count += 1;
    }

    /// The receiver's answer to one request for `source`: 202 accepted, a duplicate, 4xx/5xx
    /// refused with its status; other answers (a provider's URL check) count nothing.
    pub fn record_reply(&mut self, source: &str, status: u16, duplicate: bool) {
        match status {
            _ if duplicate => self.add(Metric::Duplicates, source, "", 1),
            202 => self.add(Metric::Accepted, source, "", 1),
            400.. => self.add(Metric::Refused, source, &status.to_string(), 1),
            _ => {}
        }
    }

    /// One attempt record of an event of `source` accepted at `received_at_ms`.
    pub fn record_attempt(&mut self, source: &str, received_at_ms: i64, record: &AttemptRecord) {
        if record.outcome == AttemptOutcome::Deferred {
            // Handed to the deliveries queue untried: the attempt there is what counts.
            if record.next == NextStep::FanoutRetry {
                self.add(Metric::RetrySchedulingFailed, source, "", 1);
            }
            return;
        }
        match record.outcome {
            AttemptOutcome::Ok => {
                self.add(Metric::Delivered, source, "", 1);
                let delivered_at = record.at.saturating_add_unsigned(record.latency_ms);
                let waited = delivered_at.saturating_sub(received_at_ms).max(0);
                self.observe(Metric::AcceptToDeliver, source, waited.unsigned_abs());
            }
            // Nothing was sent: not a delivery attempt.
            AttemptOutcome::SubscriptionRemoved | AttemptOutcome::SubscriptionDisabled => {}
            other => self.add(Metric::Failed, source, other.as_str(), 1),
        }
        if !matches!(
            record.outcome,
            AttemptOutcome::SubscriptionRemoved | AttemptOutcome::SubscriptionDisabled
        ) {
            self.observe(Metric::DeliveryLatency, source, record.latency_ms);
        }
        match record.next {
            NextStep::RetryScheduled => self.add(Metric::RetriesScheduled, source, "", 1),
            NextStep::DeadLettered => self.add(Metric::DeadLettered, source, "", 1),
            NextStep::FanoutRetry => self.add(Metric::RetrySchedulingFailed, source, "", 1),
            NextStep::Done | NextStep::Disabled | NextStep::Dropped => {}
        }
    }

    /// What one reconcile run of a source found. Every count is added, zeros included, so the
    /// alarm on `ReconcileUnrecovered` sees data from each run.
    pub fn record_findings(&mut self, findings: &crate::reconcile::Findings) {
        let source = findings.source.as_str();
        let counts = [
            (Metric::ReconcileMissing, findings.missing.len()),
            (Metric::ReconcileRecovered, findings.recovered.len()),
            (Metric::ReconcileUnrecovered, findings.unrecovered()),
            (
                Metric::ReconcileStopped,
                usize::from(findings.stopped.is_some()),
            ),
        ];
        for (metric, n) in counts {
            self.add(metric, source, "", n as u64);
        }
    }

    /// CloudWatch Embedded Metric Format lines for what accumulated since the last call, one
    /// line per (source, detail) group, each with the total (no dimension) and the per-source
    /// dimension set declared. Empty when nothing happened.
    pub fn drain_emf(&mut self, namespace: &str, timestamp_ms: i64) -> Vec<String> {
        // Group by (source, detail dimension name, detail value): one line each.
        let mut groups: BTreeMap<LineKey, Vec<(Metric, serde_json::Value)>> = BTreeMap::new();
        for (key, n) in std::mem::take(&mut self.fresh) {
            groups
                .entry((key.source, key.metric.detail(), key.detail))
                .or_default()
                .push((key.metric, serde_json::Value::from(n)));
        }
        for (key, samples) in &mut self.latencies {
            if samples.recent.is_empty() {
                continue;
            }
            let values = std::mem::take(&mut samples.recent);
            groups
                .entry((key.source.clone(), None, String::new()))
                .or_default()
                .push((key.metric, serde_json::Value::from(values)));
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

    /// The Prometheus text exposition format (version 0.0.4) of every cumulative value.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for metric in Metric::ALL {
            let name = metric.prometheus_name();
            if metric.is_latency() {
                let _ = writeln!(out, "# HELP {name} {}", metric.help());
                let _ = writeln!(out, "# TYPE {name} histogram");
                for (key, samples) in self.latencies.iter().filter(|(k, _)| k.metric == metric) {
                    let source = escape_label(&key.source);
                    let mut cumulative = 0;
                    for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
                        cumulative += samples.buckets[i];
                        let _ = writeln!(
                            out,
                            "{name}_bucket{{source=\"{source}\",le=\"{bound}\"}} {cumulative}"
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{source=\"{source}\",le=\"+Inf\"}} {}",
                        samples.count
                    );
                    let _ = writeln!(out, "{name}_sum{{source=\"{source}\"}} {}", samples.sum);
                    let _ = writeln!(out, "{name}_count{{source=\"{source}\"}} {}", samples.count);
                }
            } else {
                let _ = writeln!(out, "# HELP {name} {}", metric.help());
                let _ = writeln!(out, "# TYPE {name} counter");
                for (key, n) in self.counts.iter().filter(|(k, _)| k.metric == metric) {
                    let source = escape_label(&key.source);
                    match metric.detail() {
                        Some(detail) => {
                            let label = detail.to_ascii_lowercase();
                            let value = escape_label(&key.detail);
                            let _ = writeln!(
                                out,
                                "{name}{{source=\"{source}\",{label}=\"{value}\"}} {n}"
                            );
                        }
                        None => {
                            let _ = writeln!(out, "{name}{{source=\"{source}\"}} {n}");
                        }
                    }
                }
            }
        }
        out
    }
}

/// Label values escape backslash, double quote and newline (Prometheus text format).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: AttemptOutcome, next: NextStep, at: i64, latency_ms: u64) -> AttemptRecord {
        AttemptRecord {
            event_id: "evt_1".into(),
            subscription_id: "sub_1".into(),
            attempt: 1,
            at,
            status: None,
            outcome,
            latency_ms,
            response_excerpt: String::new(),
            next,
        }
    }

    #[test]
    fn replies_count_as_accepted_duplicate_or_refused_by_status() {
        let mut tally = Tally::new();
        tally.record_reply("github", 202, false);
        tally.record_reply("github", 202, false);
        tally.record_reply("github", 200, true);
        tally.record_reply("github", 200, false);
        tally.record_reply("github", 401, false);
        let text = tally.prometheus();
        assert!(
            text.contains("relay_accepted_total{source=\"github\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_duplicates_total{source=\"github\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_refused_total{source=\"github\",status=\"401\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn attempts_count_by_outcome_and_next_step_with_latencies() {
        let mut tally = Tally::new();
        tally.record_attempt(
            "s",
            1_000,
            &record(AttemptOutcome::Ok, NextStep::Done, 1_500, 20),
        );
        tally.record_attempt(
            "s",
            1_000,
            &record(
                AttemptOutcome::HttpStatus,
                NextStep::RetryScheduled,
                1_500,
                30,
            ),
        );
        tally.record_attempt(
            "s",
            1_000,
            &record(
                AttemptOutcome::Timeout,
                NextStep::DeadLettered,
                1_500,
                5_000,
            ),
        );
        tally.record_attempt(
            "s",
            1_000,
            &record(AttemptOutcome::Connect, NextStep::FanoutRetry, 1_500, 1),
        );
        tally.record_attempt(
            "s",
            1_000,
            &record(
                AttemptOutcome::SubscriptionRemoved,
                NextStep::Dropped,
                1_500,
                0,
            ),
        );
        let lines = tally.drain_emf("WebhookRelay", 42);
        let docs: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let total = |name: &str| -> u64 {
            docs.iter()
                .filter_map(|d| d.get(name))
                .filter_map(|v| v.as_u64())
                .sum()
        };
        assert_eq!(total("Delivered"), 1);
        assert_eq!(total("Failed"), 3);
        assert_eq!(total("RetriesScheduled"), 1);
        assert_eq!(total("DeadLettered"), 1);
        assert_eq!(total("RetrySchedulingFailed"), 1);
        let latencies: Vec<_> = docs
            .iter()
            .filter_map(|d| d.get("DeliveryLatency"))
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .collect();
        assert_eq!(latencies.len(), 4, "a removed subscription sent nothing");
        let waited: Vec<_> = docs
            .iter()
            .filter_map(|d| d.get("AcceptToDeliver"))
            .collect();
        assert_eq!(waited, [&serde_json::json!([520])]);
        let classes: Vec<_> = docs.iter().filter_map(|d| d.get("Class")).collect();
        assert_eq!(classes.len(), 3);
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
        for line in tally.drain_emf("WebhookRelay", 1_700_000_000_000) {
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
    fn drained_counts_are_not_written_twice_but_stay_cumulative_for_prometheus() {
        let mut tally = Tally::new();
        tally.record_reply("a", 202, false);
        assert_eq!(tally.drain_emf("N", 0).len(), 1);
        assert!(tally.drain_emf("N", 0).is_empty());
        tally.record_reply("a", 202, false);
        assert_eq!(tally.drain_emf("N", 0).len(), 1);
        assert!(
            tally
                .prometheus()
                .contains("relay_accepted_total{source=\"a\"} 2\n")
        );
    }

    #[test]
    fn latency_histogram_is_cumulative_and_values_per_line_are_bounded() {
        let mut tally = Tally::new();
        for i in 0..(EMF_MAX_VALUES as u64 + 20) {
            tally.record_attempt("a", 0, &record(AttemptOutcome::Ok, NextStep::Done, 0, i));
        }
        let lines = tally.drain_emf("N", 0);
        let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            doc["DeliveryLatency"].as_array().unwrap().len(),
            EMF_MAX_VALUES
        );
        let text = tally.prometheus();
        assert!(
            text.contains("relay_delivery_latency_ms_count{source=\"a\"} 120\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_delivery_latency_ms_bucket{source=\"a\",le=\"5\"} 6\n"),
            "{text}"
        );
        assert!(text.contains("relay_delivery_latency_ms_bucket{source=\"a\",le=\"+Inf\"} 120\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut tally = Tally::new();
        tally.record_reply("we\"ird\\", 202, false);
        assert!(tally.prometheus().contains("source=\"we\\\"ird\\\\\""));
    }
}
