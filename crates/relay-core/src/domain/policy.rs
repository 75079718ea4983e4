//! A subscription's delivery policy: its flag values as operators write them, and the pace gate
//! the fanout holds each delivery to (deliveries per second and attempts at once, per process).
//! The gate is pure: it is given the time, and says go or how long to wait.

use std::collections::HashMap;
use std::time::Duration;

use crate::domain::model::DeliveryPolicy;
use crate::domain::retry::{RetrySchedule, parse_duration};

/// The word that resets a policy field to the relay's setting (`--timeout default`).
pub const DEFAULT_WORD: &str = "default";
/// Longest per-attempt timeout a subscription may ask for (a Lambda's deadline cuts it shorter).
pub const MAX_TIMEOUT_SECS: u64 = 900;
pub const MAX_IN_FLIGHT: u32 = 10_000;
pub const MAX_RATE: f64 = 10_000.0;
/// Slowest rate accepted: one delivery a day.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;
/// A delivery held by an in-flight cap looks again after this long.
pub const IN_FLIGHT_RECHECK_MILLIS: i64 = 100;

/// A policy flag value that cannot be used; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: {reason}")]
pub struct InvalidPolicy {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> InvalidPolicy {
    InvalidPolicy {
        flag,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// `None` for the word `default` (the relay's setting), else the value.
fn unless_default(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.eq_ignore_ascii_case(DEFAULT_WORD)).then_some(text)
}

/// `--retry-schedule`: the syntax of `RELAY_RETRY_SCHEDULE` (an empty text: no retries), kept as
/// written in a canonical spacing.
pub fn parse_retry_schedule(text: &str) -> Result<Option<String>, InvalidPolicy> {
    let Some(text) = unless_default(text) else {
        return Ok(None);
    };
    RetrySchedule::parse(text).map_err(|e| invalid("--retry-schedule", text, e.to_string()))?;
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    Ok(Some(parts.join(",")))
}

/// `--timeout`: a duration (`30s`, `2m`, a bare number of seconds), 1 s to 15 min.
pub fn parse_timeout(text: &str) -> Result<Option<u64>, InvalidPolicy> {
    let Some(text) = unless_default(text) else {
        return Ok(None);
    };
    let secs = parse_duration(text)
        .map_err(|e| invalid("--timeout", text, e.to_string()))?
        .as_secs();
    if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
        return Err(invalid(
            "--timeout",
            text,
            format!("must be from 1s to {MAX_TIMEOUT_SECS}s"),
        ));
    }
    Ok(Some(secs))
}

/// `--max-in-flight`: a whole number from 1.
pub fn parse_max_in_flight(text: &str) -> Result<Option<u32>, InvalidPolicy> {
    let Some(text) = unless_default(text) else {
        return Ok(None);
    };
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_IN_FLIGHT).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(
            "--max-in-flight",
            text,
            format!("must be a whole number from 1 to {MAX_IN_FLIGHT}"),
        )),
    }
}

/// `--rate`: deliveries per second, a positive number (`0.5` is one every two seconds).
pub fn parse_rate(text: &str) -> Result<Option<f64>, InvalidPolicy> {
    let Some(text) = unless_default(text) else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate) => Ok(Some(rate)),
        _ => Err(invalid(
            "--rate",
            text,
            format!("must be deliveries per second, above 0 and at most {MAX_RATE}"),
        )),
    }
}

/// Checks a whole policy (one stored or built by hand) as the flags are checked.
pub fn validate(policy: &DeliveryPolicy) -> Result<(), InvalidPolicy> {
    if let Some(schedule) = &policy.retry_schedule {
        RetrySchedule::parse(schedule)
            .map_err(|e| invalid("--retry-schedule", schedule, e.to_string()))?;
    }
    if let Some(secs) = policy.timeout_secs {
        parse_timeout(&secs.to_string())?;
    }
    if let Some(n) = policy.max_in_flight {
        parse_max_in_flight(&n.to_string())?;
    }
    if let Some(rate) = policy.rate {
        parse_rate(&rate.to_string())?;
    }
    Ok(())
}

impl DeliveryPolicy {
    /// The subscription's retry schedule, else `relay`'s; the relay's jitter either way. A stored
    /// schedule that no longer parses (written by hand) falls back to the relay's.
    pub fn retry_schedule_or(&self, relay: &RetrySchedule) -> RetrySchedule {
        self.retry_schedule
            .as_deref()
            .and_then(|text| RetrySchedule::parse(text).ok())
            .map_or_else(|| relay.clone(), |own| own.with_jitter(relay.jitter()))
    }

    /// The subscription's attempt timeout, else `relay`'s.
    pub fn timeout_or(&self, relay: Duration) -> Duration {
        self.timeout_secs.map_or(relay, Duration::from_secs)
    }

    /// Whether the pace gate has anything to hold.
    pub fn is_paced(&self) -> bool {
        self.rate.is_some() || self.max_in_flight.is_some()
    }

    /// One line for listings: `default`, or each field set (`retry=5s,1m timeout=10s rate=2/s`).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.retry_schedule {
            parts.push(format!("retry={}", if s.is_empty() { "none" } else { s }));
        }
        if let Some(t) = self.timeout_secs {
            parts.push(format!("timeout={t}s"));
        }
        if let Some(n) = self.max_in_flight {
            parts.push(format!("in-flight={n}"));
        }
        if let Some(r) = self.rate {
            parts.push(format!("rate={r}/s"));
        }
        if parts.is_empty() {
            DEFAULT_WORD.to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// A change to a stored policy (`subscriptions update`): for each field, `None` keeps it,
/// `Some(None)` resets it to the relay's setting, `Some(Some(v))` sets it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyChange {
    pub retry_schedule: Option<Option<String>>,
    pub timeout_secs: Option<Option<u64>>,
    pub max_in_flight: Option<Option<u32>>,
    pub rate: Option<Option<f64>>,
}

impl PolicyChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn apply(&self, policy: &mut DeliveryPolicy) {
        if let Some(v) = &self.retry_schedule {
            policy.retry_schedule.clone_from(v);
        }
        if let Some(v) = self.timeout_secs {
            policy.timeout_secs = v;
        }
        if let Some(v) = self.max_in_flight {
            policy.max_in_flight = v;
        }
        if let Some(v) = self.rate {
            policy.rate = v;
        }
    }
}

/// Milliseconds between deliveries at `rate` per second (at least 1).
fn interval_millis(rate: f64) -> i64 {
    ((1000.0 / rate).ceil() as i64).max(1)
}

/// What the pace gate says to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Attempt it now; call `Pacer::release` when the attempt is over.
    Go,
    /// Not yet: ask again after this many milliseconds (the rate's next free slot, or a
    /// re-check while the in-flight cap is reached).
    Wait(i64),
}

/// One subscription's state in the gate.
#[derive(Debug, Default)]
struct Lane {
    /// When the rate lets the next delivery go (milliseconds since the epoch).
    next_free_millis: i64,
    /// Until when deliveries deferred so far are spread, one rate interval apart, so they do
    /// not all come back at the same moment.
    deferred_until_millis: i64,
    in_flight: u32,
}

/// The pace of every subscription in one fanout process: deliveries spaced `1 / rate` apart
/// (a delivery may go when the previous one's slot has passed; no burst beyond one) and at most
/// `max_in_flight` attempts at once. Lanes with nothing to remember are dropped.
#[derive(Debug, Default)]
pub struct Pacer {
    lanes: HashMap<String, Lane>,
}

impl Pacer {
    /// Whether a delivery to `subscription_id` under `policy` may go at `now_millis`; a `Go`
    /// takes the rate's slot and an in-flight place.
    pub fn admit(
        &mut self,
        subscription_id: &str,
        policy: &DeliveryPolicy,
        now_millis: i64,
    ) -> Admission {
        if !policy.is_paced() {
            return Admission::Go;
        }
        let lane = self.lanes.entry(subscription_id.to_owned()).or_default();
        if let Some(max) = policy.max_in_flight
            && lane.in_flight >= max
        {
            return Admission::Wait(IN_FLIGHT_RECHECK_MILLIS);
        }
        if let Some(rate) = policy.rate {
            if lane.next_free_millis > now_millis {
                return Admission::Wait(lane.next_free_millis - now_millis);
            }
            lane.next_free_millis = now_millis + interval_millis(rate);
        }
        lane.in_flight += 1;
        Admission::Go
    }

    /// A delivery `admit` held back leaves the batch: how many milliseconds from `now_millis`
    /// it is due, each one deferred a rate interval after the one before (at least `wait_ms`,
    /// what `admit` said).
    pub fn defer(
        &mut self,
        subscription_id: &str,
        policy: &DeliveryPolicy,
        wait_ms: i64,
        now_millis: i64,
    ) -> i64 {
        let earliest = now_millis + wait_ms.max(0);
        let Some(rate) = policy.rate else {
            return earliest - now_millis;
        };
        let lane = self.lanes.entry(subscription_id.to_owned()).or_default();
        let due = earliest.max(lane.deferred_until_millis);
        lane.deferred_until_millis = due + interval_millis(rate);
        due - now_millis
    }

    /// The attempt that `admit` let go is over.
    pub fn release(&mut self, subscription_id: &str, now_millis: i64) {
        if let Some(lane) = self.lanes.get_mut(subscription_id) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
        self.lanes.retain(|_, lane| {
            lane.in_flight > 0
                || lane.next_free_millis > now_millis
                || lane.deferred_until_millis > now_millis
        });
    }

    /// Subscriptions with state held (for tests: the gate forgets idle ones).
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::clock::{Clock, FixedClock};

    fn policy(rate: Option<f64>, max_in_flight: Option<u32>) -> DeliveryPolicy {
        DeliveryPolicy {
            rate,
            max_in_flight,
            ..DeliveryPolicy::default()
        }
    }

    #[test]
    fn flag_values_parse_with_default_as_the_reset_word() {
        assert_eq!(parse_timeout("30s"), Ok(Some(30)));
        assert_eq!(parse_timeout("2m"), Ok(Some(120)));
        assert_eq!(parse_timeout("default"), Ok(None));
        assert_eq!(parse_rate("0.5"), Ok(Some(0.5)));
        assert_eq!(parse_rate(" Default "), Ok(None));
        assert_eq!(parse_max_in_flight("4"), Ok(Some(4)));
        assert_eq!(
            parse_retry_schedule(" 1s, 2s ,1m"),
            Ok(Some("1s,2s,1m".into()))
        );
        assert_eq!(parse_retry_schedule(""), Ok(Some(String::new())));
        assert_eq!(parse_retry_schedule("default"), Ok(None));
    }

    #[test]
    fn bad_flag_values_name_the_flag_and_the_rule() {
        for (result, flag) in [
            (parse_timeout("0").err(), "--timeout"),
            (parse_timeout("16m").err(), "--timeout"),
            (parse_timeout("soon").err(), "--timeout"),
            (parse_rate("0").err(), "--rate"),
            (parse_rate("-1").err(), "--rate"),
            (parse_rate("NaN").err(), "--rate"),
            (parse_rate("fast").err(), "--rate"),
            (parse_max_in_flight("0").err(), "--max-in-flight"),
            (parse_max_in_flight("1.5").err(), "--max-in-flight"),
            (parse_retry_schedule("5s,5x").err(), "--retry-schedule"),
        ] {
            let error = result.expect("refused");
            assert_eq!(error.flag, flag);
            assert!(error.to_string().starts_with(flag), "{error}");
        }
        assert!(validate(&policy(Some(0.0), None)).is_err());
        assert!(validate(&policy(Some(2.0), Some(3))).is_ok());
    }

    #[test]
    fn the_policy_falls_back_to_the_relay_settings() {
        let relay = RetrySchedule::parse("5s,5m").unwrap().with_jitter(0.0);
        let own = DeliveryPolicy {
            retry_schedule: Some("1s,2s,3s".into()),
            timeout_secs: Some(3),
            ..DeliveryPolicy::default()
        };
        let schedule = own.retry_schedule_or(&relay);
        assert_eq!(schedule.len(), 3);
        assert_eq!(schedule.delay(1, None), Some(Duration::from_secs(2)));
        assert_eq!(
            own.timeout_or(Duration::from_secs(15)),
            Duration::from_secs(3)
        );
        let none = DeliveryPolicy::default();
        assert_eq!(none.retry_schedule_or(&relay), relay);
        assert_eq!(
            none.timeout_or(Duration::from_secs(15)),
            Duration::from_secs(15)
        );
        assert_eq!(none.summary(), "default");
        assert_eq!(own.summary(), "retry=1s,2s,3s timeout=3s");
    }

    #[test]
    fn a_change_sets_resets_or_keeps_each_field() {
        let mut stored = DeliveryPolicy {
            retry_schedule: Some("1s".into()),
            timeout_secs: Some(3),
            max_in_flight: Some(2),
            rate: None,
        };
        let change = PolicyChange {
            timeout_secs: Some(None),
            rate: Some(Some(5.0)),
            ..PolicyChange::default()
        };
        change.apply(&mut stored);
        assert_eq!(
            stored,
            DeliveryPolicy {
                retry_schedule: Some("1s".into()),
                timeout_secs: None,
                max_in_flight: Some(2),
                rate: Some(5.0),
            }
        );
        assert!(PolicyChange::default().is_empty() && !change.is_empty());
    }

    #[test]
    fn a_rate_spaces_deliveries_one_interval_apart() {
        let clock = FixedClock::at_secs(1_000);
        let mut pacer = Pacer::default();
        let two_per_sec = policy(Some(2.0), None);
        let start = clock.now_millis();
        assert_eq!(pacer.admit("s", &two_per_sec, start), Admission::Go);
        pacer.release("s", start);
        // The next slot is 500 ms on, whatever the in-flight count.
        assert_eq!(pacer.admit("s", &two_per_sec, start), Admission::Wait(500));
        clock.set_millis(start + 499);
        assert_eq!(
            pacer.admit("s", &two_per_sec, clock.now_millis()),
            Admission::Wait(1)
        );
        clock.set_millis(start + 500);
        assert_eq!(
            pacer.admit("s", &two_per_sec, clock.now_millis()),
            Admission::Go
        );
        // Another subscription has its own lane.
        assert_eq!(
            pacer.admit("t", &two_per_sec, clock.now_millis()),
            Admission::Go
        );
    }

    #[test]
    fn a_rate_holds_over_a_long_run_without_bursting_after_idle() {
        let clock = FixedClock::at_secs(1_000);
        let mut pacer = Pacer::default();
        let ten_per_sec = policy(Some(10.0), None);
        // Idle for an hour, then 100 deliveries asking every millisecond: exactly one per 100 ms.
        let start = clock.now_millis() + 3_600_000;
        let mut admitted = Vec::new();
        for ms in 0..10_000 {
            let now = start + ms;
            if pacer.admit("s", &ten_per_sec, now) == Admission::Go {
                admitted.push(ms);
                pacer.release("s", now);
            }
        }
        assert_eq!(admitted.len(), 100);
        assert!(
            admitted.windows(2).all(|w| w[1] - w[0] == 100),
            "{admitted:?}"
        );
    }

    #[test]
    fn deferred_deliveries_are_spread_one_interval_apart() {
        let mut pacer = Pacer::default();
        let one_per_sec = policy(Some(1.0), None);
        let now = 10_000;
        assert_eq!(pacer.admit("s", &one_per_sec, now), Admission::Go);
        let Admission::Wait(wait) = pacer.admit("s", &one_per_sec, now) else {
            panic!("the second must wait");
        };
        assert_eq!(wait, 1_000);
        let dues: Vec<i64> = (0..4)
            .map(|_| pacer.defer("s", &one_per_sec, wait, now))
            .collect();
        assert_eq!(dues, [1_000, 2_000, 3_000, 4_000]);
        // Later, a deferral never lands before the backlog already spread.
        assert_eq!(pacer.defer("s", &one_per_sec, 500, now + 1_000), 4_000);
        // Without a rate (an in-flight cap), the wait is all there is.
        assert_eq!(pacer.defer("t", &policy(None, Some(1)), 100, now), 100);
    }

    #[test]
    fn the_in_flight_cap_holds_until_an_attempt_is_released() {
        let mut pacer = Pacer::default();
        let two_at_once = policy(None, Some(2));
        let now = 5_000;
        assert_eq!(pacer.admit("s", &two_at_once, now), Admission::Go);
        assert_eq!(pacer.admit("s", &two_at_once, now), Admission::Go);
        assert_eq!(
            pacer.admit("s", &two_at_once, now),
            Admission::Wait(IN_FLIGHT_RECHECK_MILLIS)
        );
        pacer.release("s", now);
        assert_eq!(pacer.admit("s", &two_at_once, now), Admission::Go);
        pacer.release("s", now);
        pacer.release("s", now);
        // Nothing in flight and no rate slot pending: the lane is forgotten.
        assert_eq!(pacer.lanes(), 0);
    }

    #[test]
    fn an_unpaced_subscription_always_goes_and_leaves_no_state() {
        let mut pacer = Pacer::default();
        for _ in 0..5 {
            assert_eq!(
                pacer.admit("s", &DeliveryPolicy::default(), 0),
                Admission::Go
            );
        }
        assert_eq!(pacer.lanes(), 0);
    }
}
