//! What the relay counts, without an API call: a `Tally` the receiver's answers and the fanout's
//! attempt records are added to. Each adapter renders it in its own format: relay-aws as
//! CloudWatch Embedded Metric Format lines on Lambda (what `drain` took, once per invocation),
//! relay-local as Prometheus text for `relay dev` (the cumulative `counters` and `histograms`).
//!
//! Dimensions are the source, and for refusals the status, for failures the outcome class.
//! Subscriptions are not a dimension: each distinct dimension value is a custom metric billed
//! per month, and subscriptions are unbounded (docs/metrics.md).

use std::collections::BTreeMap;

use crate::domain::model::{AttemptOutcome, AttemptRecord, NextStep};

/// One metric the relay emits; `name` is its name in every format (docs/metrics.md).
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

    /// Latencies (milliseconds, kept as histograms) rather than counts.
    pub fn is_latency(self) -> bool {
        matches!(self, Metric::DeliveryLatency | Metric::AcceptToDeliver)
    }

    /// What the metric counts, in one sentence.
    pub fn description(self) -> &'static str {
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
}

/// Raw latencies kept per series between two drains (a memory bound); more in that time are
/// counted in the histogram only.
pub const MAX_RECENT_LATENCIES: usize = 100;
/// Histogram bounds (milliseconds) the latencies are counted in.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

/// One counted series: a metric of one source, split by the detail value where the metric has
/// a detail dimension.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub metric: Metric,
    pub source: String,
    /// The status or class for metrics with a detail dimension, else empty.
    pub detail: String,
}

/// The latencies of one series since the tally began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Counts per bucket of `LATENCY_BUCKETS_MS`, then the overflow.
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
    pub sum: u64,
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, ms: u64) {
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[bucket] += 1;
        self.sum += ms;
        self.count += 1;
    }

    /// Each bound of `LATENCY_BUCKETS_MS` with how many latencies were at most that.
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        LATENCY_BUCKETS_MS
            .iter()
            .zip(&self.buckets)
            .scan(0, |below, (&bound, &n)| {
                *below += n;
                Some((bound, *below))
            })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Samples {
    /// Raw values since the last `drain` (at most `MAX_RECENT_LATENCIES`).
    recent: Vec<u64>,
    histogram: Histogram,
}

/// What accumulated since the last `Tally::drain`: counts, and each series' raw latencies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drained {
    pub counts: Vec<(Series, u64)>,
    pub latencies: Vec<(Series, Vec<u64>)>,
}

/// The counts of one reconcile run of one source, as the metrics take them
/// (`reconcile::Findings::counts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileCounts<'a> {
    pub source: &'a str,
    pub missing: usize,
    pub recovered: usize,
    pub unrecovered: usize,
    pub stopped: bool,
}

/// Counts and latencies, cumulative (`counters`, `histograms`); `drain` takes what accumulated
/// since its last call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    counts: BTreeMap<Series, u64>,
    /// Counts not yet drained.
    fresh: BTreeMap<Series, u64>,
    latencies: BTreeMap<Series, Samples>,
}

impl Tally {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.latencies.is_empty()
    }

    /// Every count since the tally began, ordered by metric, source and detail.
    pub fn counters(&self) -> impl Iterator<Item = (&Series, u64)> {
        self.counts.iter().map(|(series, &n)| (series, n))
    }

    /// Every latency histogram since the tally began, ordered by metric and source.
    pub fn histograms(&self) -> impl Iterator<Item = (&Series, &Histogram)> {
        self.latencies
            .iter()
            .map(|(series, samples)| (series, &samples.histogram))
    }

    /// Takes the counts and raw latencies added since the last call; the cumulative values stay.
    pub fn drain(&mut self) -> Drained {
        let counts = std::mem::take(&mut self.fresh).into_iter().collect();
        let latencies = self
            .latencies
            .iter_mut()
            .filter(|(_, samples)| !samples.recent.is_empty())
            .map(|(series, samples)| (series.clone(), std::mem::take(&mut samples.recent)))
            .collect();
        Drained { counts, latencies }
    }

    fn add(&mut self, metric: Metric, source: &str, detail: &str, n: u64) {
        let series = Series {
            metric,
            source: source.to_owned(),
            detail: detail.to_owned(),
        };
        *self.fresh.entry(series.clone()).or_default() += n;
        *self.counts.entry(series).or_default() += n;
    }

    fn observe(&mut self, metric: Metric, source: &str, ms: u64) {
        let samples = self
            .latencies
            .entry(Series {
                metric,
                source: source.to_owned(),
                detail: String::new(),
            })
            .or_default();
        if samples.recent.len() < MAX_RECENT_LATENCIES {
            samples.recent.push(ms);
        }
        samples.histogram.observe(ms);
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
    pub fn record_reconcile(&mut self, run: &ReconcileCounts<'_>) {
        let counts = [
            (Metric::ReconcileMissing, run.missing),
            (Metric::ReconcileRecovered, run.recovered),
            (Metric::ReconcileUnrecovered, run.unrecovered),
            (Metric::ReconcileStopped, usize::from(run.stopped)),
        ];
        for (metric, n) in counts {
            self.add(metric, run.source, "", n as u64);
        }
    }

    /// The cumulative count of one series (0 when never counted).
    #[cfg(test)]
    pub(crate) fn count(&self, metric: Metric, source: &str, detail: &str) -> u64 {
        self.counters()
            .find(|(s, _)| s.metric == metric && s.source == source && s.detail == detail)
            .map_or(0, |(_, n)| n)
    }

    /// The cumulative histogram of one latency series.
    #[cfg(test)]
    pub(crate) fn histogram(&self, metric: Metric, source: &str) -> Option<&Histogram> {
        self.histograms()
            .find(|(s, _)| s.metric == metric && s.source == source)
            .map(|(_, h)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::attempt_record as record;

    #[test]
    fn replies_count_as_accepted_duplicate_or_refused_by_status() {
        let mut tally = Tally::new();
        tally.record_reply("github", 202, false);
        tally.record_reply("github", 202, false);
        tally.record_reply("github", 200, true);
        tally.record_reply("github", 200, false);
        tally.record_reply("github", 401, false);
        assert_eq!(tally.count(Metric::Accepted, "github", ""), 2);
        assert_eq!(tally.count(Metric::Duplicates, "github", ""), 1);
        assert_eq!(tally.count(Metric::Refused, "github", "401"), 1);
        assert_eq!(tally.counters().count(), 3, "a URL check counts nothing");
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
        let drained = tally.drain();
        let total = |metric: Metric| -> u64 {
            drained
                .counts
                .iter()
                .filter(|(series, _)| series.metric == metric)
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(total(Metric::Delivered), 1);
        assert_eq!(total(Metric::Failed), 3);
        assert_eq!(total(Metric::RetriesScheduled), 1);
        assert_eq!(total(Metric::DeadLettered), 1);
        assert_eq!(total(Metric::RetrySchedulingFailed), 1);
        let latencies = |metric: Metric| -> Vec<u64> {
            drained
                .latencies
                .iter()
                .filter(|(series, _)| series.metric == metric)
                .flat_map(|(_, values)| values.iter().copied())
                .collect()
        };
        assert_eq!(
            latencies(Metric::DeliveryLatency).len(),
            4,
            "a removed subscription sent nothing"
        );
        assert_eq!(latencies(Metric::AcceptToDeliver), [520]);
        let classes: Vec<_> = drained
            .counts
            .iter()
            .filter(|(series, _)| series.metric.detail() == Some("Class"))
            .map(|(series, _)| series.detail.as_str())
            .collect();
        assert_eq!(classes.len(), 3);
    }

    #[test]
    fn drained_counts_are_not_drained_twice_but_stay_cumulative() {
        let mut tally = Tally::new();
        tally.record_reply("a", 202, false);
        assert_eq!(tally.drain().counts.len(), 1);
        assert!(tally.drain().counts.is_empty());
        tally.record_reply("a", 202, false);
        assert_eq!(tally.drain().counts.len(), 1);
        assert_eq!(tally.count(Metric::Accepted, "a", ""), 2);
    }

    #[test]
    fn latency_histogram_is_cumulative_and_recent_values_are_bounded() {
        let mut tally = Tally::new();
        for i in 0..(MAX_RECENT_LATENCIES as u64 + 20) {
            tally.record_attempt("a", 0, &record(AttemptOutcome::Ok, NextStep::Done, 0, i));
        }
        let drained = tally.drain();
        let (_, recent) = drained
            .latencies
            .iter()
            .find(|(series, _)| series.metric == Metric::DeliveryLatency)
            .expect("delivery latencies");
        assert_eq!(recent.len(), MAX_RECENT_LATENCIES);
        let histogram = tally
            .histogram(Metric::DeliveryLatency, "a")
            .expect("histogram");
        assert_eq!(histogram.count, 120);
        assert_eq!(histogram.cumulative().next(), Some((5, 6)));
        assert_eq!(histogram.cumulative().last(), Some((30_000, 120)));
    }
}
