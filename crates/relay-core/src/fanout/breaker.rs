//! The breaker: a subscriber that asks for room (429 or 503 with Retry-After) or keeps failing
//! is paused until a time stored with the subscription (`paused_until`); its deliveries wait
//! meanwhile, then one probe attempt decides: a delivery closes the breaker, a failure pauses it
//! again, for longer. Pure decisions; `Fanout` reads their inputs and applies them.

use std::collections::HashMap;
use std::time::Duration;

use crate::domain::model::Subscription;
use crate::outbound::delivery::Outcome;

/// Failed attempts in a row (in one fanout process) that pause a subscription, once they
/// have gone on for `FAILURE_RUN_SPAN` without a delivery between.
pub const FAILURE_RUN: u32 = 5;
/// How long a run of failures must last to pause: a subscriber failing often but delivering
/// in between (a flapping one, a brief outage) is left to its retry schedule.
pub const FAILURE_RUN_SPAN: Duration = Duration::from_secs(60);
/// The longest pause, whatever the Retry-After asks.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// The pause after a run of failures; each pause in a row without a delivery doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// What the breaker lets a due delivery do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not paused: attempt it.
    Deliver,
    /// Paused: the delivery waits until then (milliseconds since the epoch), not attempted.
    Wait(i64),
    /// The pause (ending at this stored time) is over: one delivery probes. Whoever claims the
    /// probe (`claim_probe`) attempts; the others wait for its lease.
    Probe(i64),
}

pub fn gate(subscription: &Subscription, now_millis: i64) -> Gate {
    match subscription.paused_until {
        None => Gate::Deliver,
        Some(until) if until > now_millis => Gate::Wait(until),
        Some(until) => Gate::Probe(until),
    }
}

/// Claims the probe of a pause that ended at `expired`: the stored pause is moved to
/// `lease_until` (the probe's attempt and settling), so other deliveries keep waiting while
/// it runs. False (nothing to write) when another delivery claimed it, or the pause was
/// closed or changed meanwhile.
pub fn claim_probe(stored: &mut Subscription, expired: i64, lease_until: i64) -> bool {
    if stored.paused_until != Some(expired) {
        return false;
    }
    stored.paused_until = Some(lease_until);
    true
}

/// A change an attempt makes to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerChange {
    /// Pause until `until` (milliseconds since the epoch), the `streak`th pause in a row.
    /// `reopen`: the probe failed and this replaces its lease; otherwise it is written only
    /// when no pause is stored already (the first attempt to see it writes it, once).
    Pause {
        until: i64,
        streak: u32,
        reopen: bool,
    },
    /// A delivery went through: no pause, no streak.
    Close,
}

impl BreakerChange {
    /// Applies the change to the stored subscription; false when there is nothing to write.
    pub fn apply(self, stored: &mut Subscription, now_millis: i64) -> bool {
        match self {
            Self::Close => {
                let changed = stored.paused_until.is_some() || stored.pause_streak > 0;
                stored.paused_until = None;
                stored.pause_streak = 0;
                changed
            }
            Self::Pause {
                until,
                streak,
                reopen,
            } => {
                if !reopen && stored.paused_until.is_some_and(|at| at > now_millis) {
                    return false;
                }
                stored.paused_until = Some(until);
                stored.pause_streak = streak;
                true
            }
        }
    }
}

/// One attempt's facts, as the breaker needs them.
#[derive(Debug, Clone, Copy)]
pub struct BreakerFacts<'a> {
    /// As read before the attempt.
    pub subscription: &'a Subscription,
    pub outcome: &'a Outcome,
    /// The response's Retry-After, as a wait from now.
    pub retry_after: Option<Duration>,
    /// The attempt was the probe at the end of a pause.
    pub probe: bool,
    /// Failed attempts in a row to this subscription in this process, this one included.
    pub failure_run: Run,
    pub now_millis: i64,
}

/// A run of failed attempts to one subscription in one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    pub failures: u32,
    /// When its first failure was counted (milliseconds since the epoch).
    pub since_millis: i64,
}

impl Run {
    /// Long enough to pause: `FAILURE_RUN` failures over at least `FAILURE_RUN_SPAN`.
    fn trips(self, now_millis: i64) -> bool {
        let span_ms = i64::try_from(FAILURE_RUN_SPAN.as_millis()).unwrap_or(i64::MAX);
        self.failures >= FAILURE_RUN && now_millis - self.since_millis >= span_ms
    }
}

/// What the breaker does after an attempt. A delivery closes it (when anything is stored). A
/// 429 or 503 with a Retry-After pauses for that long (at most `MAX_PAUSE`); a failed probe or
/// a run of failures that trips (`FAILURE_RUN` over `FAILURE_RUN_SPAN`) pauses for the backoff
/// (or the Retry-After when one was given). 410, refused and invalid deliveries keep their own rules and leave it alone.
pub fn after_attempt(facts: &BreakerFacts<'_>) -> Option<BreakerChange> {
    let sub = facts.subscription;
    match facts.outcome {
        Outcome::Delivered { .. } => {
            (sub.paused_until.is_some() || sub.pause_streak > 0).then_some(BreakerChange::Close)
        }
        Outcome::Status { .. } | Outcome::Timeout | Outcome::Connect(_) => {
            let asked = match facts.outcome {
                Outcome::Status { status: 429 | 503 } => {
                    facts.retry_after.filter(|wait| !wait.is_zero())
                }
                _ => None,
            };
            if asked.is_none() && !facts.probe && !facts.failure_run.trips(facts.now_millis) {
                return None;
            }
            let streak = sub.pause_streak.saturating_add(1);
            let pause = asked.map_or_else(|| backoff(streak), |wait| wait.min(MAX_PAUSE));
            let pause_ms = i64::try_from(pause.as_millis()).unwrap_or(i64::MAX / 2);
            Some(BreakerChange::Pause {
                until: facts.now_millis + pause_ms,
                streak,
                reopen: facts.probe,
            })
        }
        Outcome::Gone | Outcome::Refused(_) | Outcome::Invalid(_) => None,
    }
}

/// The pause after the `streak`th failure to deliver in a row: `FIRST_BACKOFF`, doubling, at
/// most `MAX_PAUSE`.
pub fn backoff(streak: u32) -> Duration {
    let doublings = streak.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(MAX_PAUSE)
}

/// Failed attempts in a row per subscription, in one process (a delivery ends a run).
#[derive(Debug, Default)]
pub struct FailureRuns {
    runs: HashMap<String, Run>,
}

impl FailureRuns {
    /// The run `subscription_id` is on now, without counting anything.
    pub fn current(&self, subscription_id: &str) -> Run {
        self.runs.get(subscription_id).copied().unwrap_or_default()
    }

    /// Counts an attempt's outcome at `now_millis`; returns the run it makes (none after a
    /// delivery, and for outcomes the breaker ignores).
    pub fn record(&mut self, subscription_id: &str, outcome: &Outcome, now_millis: i64) -> Run {
        match outcome {
            Outcome::Status { .. } | Outcome::Timeout | Outcome::Connect(_) => {
                let run = self.runs.entry(subscription_id.to_owned()).or_insert(Run {
                    failures: 0,
                    since_millis: now_millis,
                });
                run.failures = run.failures.saturating_add(1);
                *run
            }
            Outcome::Delivered { .. } => {
                self.runs.remove(subscription_id);
                Run::default()
            }
            Outcome::Gone | Outcome::Refused(_) | Outcome::Invalid(_) => Run::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::clock::{Clock, FixedClock};
    use crate::testkit::contract::subscription;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn facts<'a>(
        sub: &'a Subscription,
        outcome: &'a Outcome,
        retry_after: Option<u64>,
        probe: bool,
        failures: u32,
    ) -> BreakerFacts<'a> {
        BreakerFacts {
            subscription: sub,
            outcome,
            retry_after: retry_after.map(Duration::from_secs),
            probe,
            // A run that started a span ago.
            failure_run: Run {
                failures,
                since_millis: NOW_MS - 60_000,
            },
            now_millis: NOW_MS,
        }
    }

    #[test]
    fn retry_after_on_429_or_503_pauses_for_that_long_capped() {
        let sub = subscription("s", "gh");
        for status in [429, 503] {
            let outcome = Outcome::Status { status };
            assert_eq!(
                after_attempt(&facts(&sub, &outcome, Some(30), false, 1)),
                Some(BreakerChange::Pause {
                    until: NOW_MS + 30_000,
                    streak: 1,
                    reopen: false
                })
            );
            assert_eq!(
                after_attempt(&facts(&sub, &outcome, Some(86_400), false, 1)),
                Some(BreakerChange::Pause {
                    until: NOW_MS + 3_600_000,
                    streak: 1,
                    reopen: false
                })
            );
        }
        // Retry-After on another status, or a zero one, is the retry schedule's business only.
        let outcome = Outcome::Status { status: 500 };
        assert_eq!(
            after_attempt(&facts(&sub, &outcome, Some(30), false, 1)),
            None
        );
        let outcome = Outcome::Status { status: 429 };
        assert_eq!(
            after_attempt(&facts(&sub, &outcome, Some(0), false, 1)),
            None
        );
        assert_eq!(after_attempt(&facts(&sub, &outcome, None, false, 1)), None);
    }

    #[test]
    fn a_run_of_failures_pauses_with_a_doubling_backoff() {
        let sub = subscription("s", "gh");
        let outcome = Outcome::Timeout;
        assert_eq!(
            after_attempt(&facts(&sub, &outcome, None, false, FAILURE_RUN - 1)),
            None
        );
        assert_eq!(
            after_attempt(&facts(&sub, &outcome, None, false, FAILURE_RUN)),
            Some(BreakerChange::Pause {
                until: NOW_MS + 30_000,
                streak: 1,
                reopen: false
            })
        );
        // As many failures within less than the span: a brief outage, left to the schedule.
        let brief = BreakerFacts {
            failure_run: Run {
                failures: FAILURE_RUN * 4,
                since_millis: NOW_MS - 59_999,
            },
            ..facts(&sub, &outcome, None, false, 0)
        };
        assert_eq!(after_attempt(&brief), None);
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(8), MAX_PAUSE);
        assert_eq!(backoff(u32::MAX), MAX_PAUSE);
    }

    #[test]
    fn a_failed_probe_reopens_for_longer_and_a_delivery_closes() {
        let paused = Subscription {
            paused_until: Some(NOW_MS - 1),
            pause_streak: 2,
            ..subscription("s", "gh")
        };
        let failed = Outcome::Connect("refused".into());
        assert_eq!(
            after_attempt(&facts(&paused, &failed, None, true, 1)),
            Some(BreakerChange::Pause {
                until: NOW_MS + 120_000,
                streak: 3,
                reopen: true
            })
        );
        let ok = Outcome::Delivered { status: 200 };
        assert_eq!(
            after_attempt(&facts(&paused, &ok, None, true, 0)),
            Some(BreakerChange::Close)
        );
        // Nothing stored, nothing to close; 410 and refusals keep their own rules.
        let plain = subscription("s", "gh");
        assert_eq!(after_attempt(&facts(&plain, &ok, None, false, 0)), None);
        assert_eq!(
            after_attempt(&facts(&paused, &Outcome::Gone, None, true, 9)),
            None
        );
    }

    #[test]
    fn the_gate_waits_until_the_pause_ends_then_lets_one_probe() {
        let clock = FixedClock::at_secs(1_700_000_000);
        let until = clock.now_millis() + 5_000;
        let paused = Subscription {
            paused_until: Some(until),
            ..subscription("s", "gh")
        };
        assert_eq!(
            gate(&subscription("s", "gh"), clock.now_millis()),
            Gate::Deliver
        );
        assert_eq!(gate(&paused, clock.now_millis()), Gate::Wait(until));
        clock.set_millis(until);
        assert_eq!(gate(&paused, clock.now_millis()), Gate::Probe(until));

        // The first claim moves the pause to the probe's lease; a second finds it moved.
        let lease = until + 20_000;
        let mut stored = paused.clone();
        assert!(claim_probe(&mut stored, until, lease));
        assert_eq!(stored.paused_until, Some(lease));
        assert!(!claim_probe(&mut stored, until, lease + 1));
        assert_eq!(gate(&stored, clock.now_millis()), Gate::Wait(lease));
    }

    #[test]
    fn a_pause_is_written_once_and_a_reopen_replaces_the_lease() {
        let mut stored = subscription("s", "gh");
        let first = BreakerChange::Pause {
            until: NOW_MS + 10_000,
            streak: 1,
            reopen: false,
        };
        assert!(first.apply(&mut stored, NOW_MS));
        // A second 429 seen meanwhile writes nothing.
        let second = BreakerChange::Pause {
            until: NOW_MS + 20_000,
            streak: 1,
            reopen: false,
        };
        assert!(!second.apply(&mut stored, NOW_MS + 1));
        assert_eq!(stored.paused_until, Some(NOW_MS + 10_000));
        let reopen = BreakerChange::Pause {
            until: NOW_MS + 90_000,
            streak: 2,
            reopen: true,
        };
        assert!(reopen.apply(&mut stored, NOW_MS + 1));
        assert_eq!(
            (stored.paused_until, stored.pause_streak),
            (Some(NOW_MS + 90_000), 2)
        );
        assert!(BreakerChange::Close.apply(&mut stored, NOW_MS));
        assert_eq!((stored.paused_until, stored.pause_streak), (None, 0));
        assert!(!BreakerChange::Close.apply(&mut stored, NOW_MS));
    }

    #[test]
    fn failure_runs_count_failures_in_a_row_per_subscription() {
        let mut runs = FailureRuns::default();
        let failed = Outcome::Status { status: 500 };
        let run = |failures, since_millis| Run {
            failures,
            since_millis,
        };
        assert_eq!(runs.record("s", &failed, 1_000), run(1, 1_000));
        assert_eq!(runs.record("s", &Outcome::Timeout, 2_000), run(2, 1_000));
        assert_eq!(runs.record("t", &failed, 3_000), run(1, 3_000));
        assert_eq!(runs.record("s", &Outcome::Gone, 4_000), Run::default());
        assert_eq!(runs.record("s", &failed, 5_000), run(3, 1_000));
        assert_eq!(
            runs.record("s", &Outcome::Delivered { status: 204 }, 6_000),
            Run::default()
        );
        assert_eq!(runs.record("s", &failed, 7_000), run(1, 7_000));
    }
}
