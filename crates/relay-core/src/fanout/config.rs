//! The fanout's settings: the retry schedule, what is archived, and how long attempts may take.

use std::time::Duration;

use crate::domain::model::{AttemptOutcome, AttemptRecord};
use crate::domain::retry::RetrySchedule;

#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub retry: RetrySchedule,
    /// How long events and attempt logs are kept.
    pub retention_secs: i64,
    /// Records of one batch handled at once.
    pub record_concurrency: usize,
    pub cache_ttl: Duration,
    /// A subscription failing without a single success for this long is disabled.
    pub health_window_secs: i64,
    /// Timeout of the first attempt, made from the events queue; None: the delivery timeout.
    /// Shorter, so a hanging subscriber moves to the deliveries queue instead of holding its
    /// whole event batch.
    pub first_attempt_timeout: Option<Duration>,
    /// Which events are stored, with their attempt log, for `events show` and replay.
    pub archive: ArchiveMode,
}

/// Which events the fanout stores with their attempt log (`RELAY_EVENT_ARCHIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveMode {
    /// Every event: any of them can be shown and replayed.
    #[default]
    All,
    /// Only events with an attempt that did not succeed at once: an event delivered to every
    /// subscription at the first try costs no write.
    Failures,
    /// None: nothing to show or replay, and a retried event is delivered again to
    /// subscriptions that already have it (they see the same `webhook-id`).
    Off,
}

impl ArchiveMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Some(Self::All),
            "failures" => Some(Self::Failures),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// Whether a round that produced `records` stores the event.
    pub fn keeps(self, records: &[AttemptRecord]) -> bool {
        match self {
            Self::All => true,
            Self::Failures => records.iter().any(|r| r.outcome != AttemptOutcome::Ok),
            Self::Off => false,
        }
    }
}

/// Time kept back from a batch's deadline for writing outcomes and queuing follow-ups.
pub const SETTLE_RESERVE: Duration = Duration::from_secs(5);
/// No attempt gets less than this, however close the deadline.
pub(super) const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            retry: RetrySchedule::default(),
            retention_secs: 14 * 86_400,
            record_concurrency: 16,
            cache_ttl: Duration::from_secs(10),
            health_window_secs: 5 * 86_400,
            first_attempt_timeout: None,
            archive: ArchiveMode::All,
        }
    }
}
