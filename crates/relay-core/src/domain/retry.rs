//! The retry schedule of a failing delivery: delays between attempts, with jitter.

use std::time::Duration;

use rand::Rng;

pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";
/// A queue delays a new message by at most 15 minutes.
pub const MAX_SEND_DELAY_SECS: u32 = crate::domain::limits::MAX_QUEUE_DELAY_SECS;
/// A Retry-After longer than this is not honoured beyond it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    /// Fraction of each delay randomly added or removed, so retries of many events spread out.
    jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::parse(DEFAULT_SCHEDULE).unwrap_or(Self {
            delays: Vec::new(),
            jitter: 0.2,
        })
    }
}

impl RetrySchedule {
    /// Parses `5s,5m,30m,2h` (units s, m, h, d; a bare number is seconds). An empty string means
    /// no retries.
    pub fn parse(text: &str) -> Result<Self, InvalidSchedule> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()
            .map_err(InvalidSchedule)?;
        Ok(Self {
            delays,
            jitter: 0.2,
        })
    }

    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    pub fn len(&self) -> usize {
        self.delays.len()
    }

    pub fn is_empty(&self) -> bool {
        self.delays.is_empty()
    }

    /// The hops a delivery makes when every attempt of this schedule fails, without jitter:
    /// the messages beyond the first of each wait.
    pub fn hops_when_failing(&self) -> u64 {
        self.delays.iter().map(|d| messages_for_wait(*d) - 1).sum()
    }

    /// The delay before the retry at `step` (0 = first retry), jittered, or `None` when the
    /// schedule is spent. A Retry-After from the subscriber lengthens it, up to 12 h.
    pub fn delay(&self, step: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.delays.get(step as usize)?;
        let jittered = if self.jitter > 0.0 && !base.is_zero() {
            let factor = rand::rng().random_range((1.0 - self.jitter)..=(1.0 + self.jitter));
            base.mul_f64(factor)
        } else {
            base
        };
        Some(match retry_after {
            Some(wanted) => jittered.max(wanted.min(MAX_RETRY_AFTER)),
            None => jittered,
        })
    }
}

/// A Retry-After header's wait from `now_secs`: delta-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete forms RFC 9110 still accepts). A date in
/// the past is no wait; anything else unreadable is None.
pub fn parse_retry_after(value: &str, now_secs: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())?;
    Some(Duration::from_secs(
        u64::try_from(at_secs.saturating_sub(now_secs)).unwrap_or(0),
    ))
}

/// A retry schedule with a delay that is not a duration; the message is the delay's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(transparent)]
pub struct InvalidSchedule(pub InvalidDuration);

/// A duration that is not a number with an optional unit of s, m, h or d.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDuration {
    #[error("invalid duration {text:?}: expected e.g. 5s, 10m, 2h, 1d")]
    NotANumber { text: String },
    #[error("invalid duration unit in {text:?}: use s, m, h or d")]
    UnknownUnit { text: String },
}

pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| InvalidDuration::NotANumber {
        text: text.to_owned(),
    })?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(InvalidDuration::UnknownUnit {
                text: text.to_owned(),
            });
        }
    };
    Ok(Duration::from_secs(value * unit_secs))
}

/// The delay to send a delivery message with, `wait_ms` before its attempt is due: the whole
/// wait when it fits a queue's maximum delay, else the maximum (the message then wakes early and
/// hops on). Rounded up, so a message never wakes a fraction of a second early only to hop again.
pub fn send_delay_secs(wait_ms: i64) -> u32 {
    let wait_ms = u64::try_from(wait_ms).unwrap_or(0);
    wait_ms.div_ceil(1000).min(u64::from(MAX_SEND_DELAY_SECS)) as u32
}

/// How many messages carry a delivery across a wait of `wait`: one per maximum delay, at least
/// one. Every message after the first is a hop (an early wake-up sent on again).
pub fn messages_for_wait(wait: Duration) -> u64 {
    wait.as_secs()
        .div_ceil(u64::from(MAX_SEND_DELAY_SECS))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_schedule() {
        let s = RetrySchedule::parse(DEFAULT_SCHEDULE)
            .unwrap()
            .with_jitter(0.0);
        assert_eq!(s.len(), 7);
        assert_eq!(s.delay(0, None), Some(Duration::from_secs(5)));
        assert_eq!(s.delay(1, None), Some(Duration::from_secs(300)));
        assert_eq!(s.delay(6, None), Some(Duration::from_secs(36_000)));
        assert_eq!(s.delay(7, None), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let s = RetrySchedule::parse("100s").unwrap();
        for _ in 0..200 {
            let d = s.delay(0, None).unwrap().as_secs_f64();
            assert!((80.0..=120.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn retry_after_lengthens_within_bounds() {
        let s = RetrySchedule::parse("5s").unwrap().with_jitter(0.0);
        assert_eq!(
            s.delay(0, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.delay(0, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.delay(0, Some(Duration::from_secs(10 * 86_400))),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        let now = 1_445_412_480 - 90;
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:00 2015", now),
            Some(Duration::from_secs(90))
        );
        // Past dates are no wait; junk and negative numbers are nothing.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now + 1_000),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(RetrySchedule::parse("5x").is_err());
        assert!(RetrySchedule::parse("s").is_err());
        assert!(RetrySchedule::parse("").unwrap().is_empty());
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
    }

    #[test]
    fn send_delays_round_up_within_the_sqs_cap() {
        assert_eq!(send_delay_secs(0), 0);
        assert_eq!(send_delay_secs(1), 1);
        assert_eq!(send_delay_secs(4_001), 5);
        assert_eq!(send_delay_secs(5_000), 5);
        assert_eq!(send_delay_secs(900_000), 900);
        assert_eq!(send_delay_secs(7_200_000), 900);
        assert_eq!(send_delay_secs(-10), 0);
    }

    #[test]
    fn long_waits_take_one_message_per_maximum_delay() {
        let secs = |s| messages_for_wait(Duration::from_secs(s));
        assert_eq!(secs(0), 1);
        assert_eq!(secs(5), 1);
        assert_eq!(secs(900), 1);
        assert_eq!(secs(901), 2);
        assert_eq!(secs(2 * 3600), 8);
        assert_eq!(secs(10 * 3600), 40);
    }

    /// The figure docs/cost.md prices ("Long retry waits").
    #[test]
    fn the_default_schedule_hops_105_times_when_every_attempt_fails() {
        let schedule = RetrySchedule::default();
        let per_wait: Vec<u64> = schedule
            .delays
            .iter()
            .map(|d| messages_for_wait(*d) - 1)
            .collect();
        println!("hops per wait of {DEFAULT_SCHEDULE}: {per_wait:?}");
        assert_eq!(per_wait, [0, 0, 1, 7, 19, 39, 39]);
        assert_eq!(schedule.hops_when_failing(), 105);
    }
}
