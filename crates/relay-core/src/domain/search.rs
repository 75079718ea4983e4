//! Where an (event, subscription) pair stands, read from the event's attempt log, and the
//! filters a search of the archive applies to it. One reading serves `relay events list
//! --subscription --status`, the bulk replay and the stores that filter while they read.

use crate::domain::model::{AttemptOutcome, AttemptRecord, NextStep};
use crate::domain::patterns::matches_any;

/// One subscription's state for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not attempted yet: no record, or only a hand-over to the deliveries queue.
    Pending,
    /// A 2xx attempt.
    Delivered,
    /// Attempted (or dropped: the subscription was disabled or removed), not delivered, and
    /// not in the dead-letter queue: a retry may be waiting.
    Failed,
    /// Not delivered, and the latest attempt parked it in the dead-letter queue.
    Dead,
}

impl DeliveryState {
    /// The state of `subscription_id` in an event's attempt log.
    pub fn of(log: &[AttemptRecord], subscription_id: &str) -> DeliveryState {
        let mut latest: Option<&AttemptRecord> = None;
        for record in log.iter().filter(|r| r.subscription_id == subscription_id) {
            if record.outcome == AttemptOutcome::Ok {
                return DeliveryState::Delivered;
            }
            if record.outcome != AttemptOutcome::Deferred
                && latest.is_none_or(|l| record.attempt >= l.attempt)
            {
                latest = Some(record);
            }
        }
        match latest {
            None => DeliveryState::Pending,
            Some(record) if record.next == NextStep::DeadLettered => DeliveryState::Dead,
            Some(_) => DeliveryState::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
        }
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which states a search keeps (`--status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    Delivered,
    /// Attempted and not delivered, a retry waiting or dead-lettered: `Failed` and `Dead`.
    Failed,
    Dead,
    Pending,
}

impl StatusFilter {
    pub const ALL: [StatusFilter; 4] = [
        StatusFilter::Delivered,
        StatusFilter::Failed,
        StatusFilter::Dead,
        StatusFilter::Pending,
    ];

    pub fn admits(self, state: DeliveryState) -> bool {
        match self {
            StatusFilter::Delivered => state == DeliveryState::Delivered,
            StatusFilter::Failed => matches!(state, DeliveryState::Failed | DeliveryState::Dead),
            StatusFilter::Dead => state == DeliveryState::Dead,
            StatusFilter::Pending => state == DeliveryState::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Delivered => "delivered",
            StatusFilter::Failed => "failed",
            StatusFilter::Dead => "dead",
            StatusFilter::Pending => "pending",
        }
    }
}

impl std::str::FromStr for StatusFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StatusFilter::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                format!("{text:?} is not a status: use delivered, failed, dead or pending")
            })
    }
}

/// One subscription's events: those it has attempts for, or whose type its patterns match
/// (the ones the fanout sends it), optionally only in some states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub subscription_id: String,
    /// The subscription's event patterns as stored now.
    pub patterns: Vec<String>,
    /// `None`: every state.
    pub status: Option<StatusFilter>,
}

impl DeliveryFilter {
    /// The pair's state when the event belongs to the subscription and passes the status
    /// filter; `None` otherwise.
    pub fn state(&self, event_type: &str, log: &[AttemptRecord]) -> Option<DeliveryState> {
        let attempted = log
            .iter()
            .any(|r| r.subscription_id == self.subscription_id);
        if !attempted && !matches_any(&self.patterns, event_type) {
            return None;
        }
        let state = DeliveryState::of(log, &self.subscription_id);
        self.status.is_none_or(|s| s.admits(state)).then_some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sub: &str, attempt: u32, outcome: AttemptOutcome, next: NextStep) -> AttemptRecord {
        AttemptRecord {
            event_id: "evt_1".into(),
            subscription_id: sub.into(),
            attempt,
            at: 1,
            status: None,
            outcome,
            latency_ms: 0,
            response_excerpt: String::new(),
            next,
        }
    }

    use AttemptOutcome as O;
    use NextStep as N;

    #[test]
    fn states_from_the_log() {
        let cases: [(Vec<AttemptRecord>, DeliveryState); 9] = [
            (vec![], DeliveryState::Pending),
            // Another subscription's records say nothing of this one.
            (
                vec![record("sub_b", 1, O::Ok, N::Done)],
                DeliveryState::Pending,
            ),
            (
                vec![record("sub_a", 1, O::Deferred, N::RetryScheduled)],
                DeliveryState::Pending,
            ),
            (
                vec![record("sub_a", 1, O::Ok, N::Done)],
                DeliveryState::Delivered,
            ),
            (
                vec![record("sub_a", 1, O::HttpStatus, N::RetryScheduled)],
                DeliveryState::Failed,
            ),
            (
                vec![
                    record("sub_a", 1, O::Timeout, N::RetryScheduled),
                    record("sub_a", 2, O::HttpStatus, N::DeadLettered),
                ],
                DeliveryState::Dead,
            ),
            // Redriven out of the DLQ and failing again: a retry is waiting, not dead.
            (
                vec![
                    record("sub_a", 2, O::HttpStatus, N::DeadLettered),
                    record("sub_a", 3, O::Connect, N::RetryScheduled),
                ],
                DeliveryState::Failed,
            ),
            // Delivered at last, whatever came before.
            (
                vec![
                    record("sub_a", 1, O::HttpStatus, N::DeadLettered),
                    record("sub_a", 2, O::Ok, N::Done),
                ],
                DeliveryState::Delivered,
            ),
            // Dropped because the subscription was disabled: not delivered, to recover.
            (
                vec![record("sub_a", 1, O::SubscriptionDisabled, N::Dropped)],
                DeliveryState::Failed,
            ),
        ];
        for (log, want) in cases {
            assert_eq!(DeliveryState::of(&log, "sub_a"), want, "{log:?}");
        }
    }

    #[test]
    fn failed_takes_dead_too() {
        use DeliveryState as S;
        let admitted = |f: StatusFilter| {
            [S::Pending, S::Delivered, S::Failed, S::Dead]
                .into_iter()
                .filter(|s| f.admits(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(admitted(StatusFilter::Failed), [S::Failed, S::Dead]);
        assert_eq!(admitted(StatusFilter::Dead), [S::Dead]);
        assert_eq!(admitted(StatusFilter::Delivered), [S::Delivered]);
        assert_eq!(admitted(StatusFilter::Pending), [S::Pending]);
        for f in StatusFilter::ALL {
            assert_eq!(f.as_str().parse::<StatusFilter>(), Ok(f));
        }
        assert!(
            "done"
                .parse::<StatusFilter>()
                .unwrap_err()
                .contains("delivered, failed")
        );
    }

    #[test]
    fn a_subscription_owns_what_it_matches_or_was_sent() {
        let filter = DeliveryFilter {
            subscription_id: "sub_a".into(),
            patterns: vec!["issues.*".into()],
            status: None,
        };
        assert_eq!(
            filter.state("issues.opened", &[]),
            Some(DeliveryState::Pending)
        );
        assert_eq!(filter.state("push", &[]), None);
        // Sent before its patterns changed: still its event.
        let sent = [record("sub_a", 1, O::Ok, N::Done)];
        assert_eq!(filter.state("push", &sent), Some(DeliveryState::Delivered));
        let failed_only = DeliveryFilter {
            status: Some(StatusFilter::Failed),
            ..filter
        };
        assert_eq!(failed_only.state("push", &sent), None);
        let failing = [record("sub_a", 1, O::Timeout, N::RetryScheduled)];
        assert_eq!(
            failed_only.state("issues.closed", &failing),
            Some(DeliveryState::Failed)
        );
    }
}
