//! Instants on the command line (`--since`, `--until`): a duration back from now in humantime
//! spellings (`90m`, `1h30m`, `2d`, `1 week`) or an RFC 3339 time (`2026-12-07T09:00:00Z`,
//! `2026-12-07T10:00:00+01:00`). jiff parses both.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This many milliseconds before now.
    Ago(i64),
    /// Milliseconds since the epoch.
    At(i64),
}

impl When {
    /// The instant, in milliseconds since the epoch, as of `now_millis`.
    pub fn millis(self, now_millis: i64) -> i64 {
        match self {
            When::Ago(ago) => now_millis.saturating_sub(ago),
            When::At(at) => at,
        }
    }
}

impl FromStr for When {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(at) = text.parse::<jiff::Timestamp>() {
            return Ok(When::At(at.as_millisecond()));
        }
        let span: jiff::Span = text.parse().map_err(|_| {
            format!(
                "{text:?} is neither a duration back from now (90m, 1h30m, 2d) nor an RFC 3339 \
                 time (2026-12-07T09:00:00Z)"
            )
        })?;
        let ago = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| format!("{text:?}: {e}"))?;
        // "2h ago" and "-2h" mean the same as "2h" here: always back from now.
        let millis = i64::try_from(ago.as_millis().unsigned_abs())
            .map_err(|_| format!("{text:?} is too long a duration"))?;
        Ok(When::Ago(millis))
    }
}

/// A duration in humantime spellings (`24h`, `1h30m`, `2d`), for flags that take one.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<When>()? {
        When::Ago(millis) => Ok(std::time::Duration::from_millis(millis.unsigned_abs())),
        When::At(_) => Err(format!(
            "{text:?} is a time, not a duration (24h, 1h30m, 2d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_back_from_now() {
        let cases = [
            ("90m", 90 * 60_000),
            ("1h30m", 90 * 60_000),
            ("1h 30m", 90 * 60_000),
            ("2d", 2 * 86_400_000),
            ("45s", 45_000),
            ("1 week", 7 * 86_400_000),
            ("2h ago", 2 * 3_600_000),
        ];
        for (text, ago) in cases {
            assert_eq!(text.parse::<When>(), Ok(When::Ago(ago)), "{text}");
        }
        assert_eq!(When::Ago(1_000).millis(5_000), 4_000);
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(
            "2026-12-07T09:00:00Z".parse::<When>(),
            Ok(When::At(1_796_634_000_000))
        );
        assert_eq!(
            "2026-12-07T10:00:00+01:00".parse::<When>(),
            Ok(When::At(1_796_634_000_000))
        );
        assert_eq!(When::At(7).millis(5_000), 7);
    }

    #[test]
    fn nonsense_says_what_is_accepted() {
        for text in ["", "yesterday", "5 parsecs", "2026-13-40"] {
            let error = text.parse::<When>().unwrap_err();
            assert!(error.contains("RFC 3339"), "{text}: {error}");
        }
        assert!(
            duration("2026-12-07T09:00:00Z")
                .unwrap_err()
                .contains("not a duration")
        );
        assert_eq!(duration("1h30m"), Ok(std::time::Duration::from_secs(5400)));
    }
}
