//! UTC calendar dates from day counts, shared by the events index and the CLI's time texts.

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_over_decades() {
        // Consecutive days never skip or repeat a date.
        let mut previous = civil_from_days(-1);
        for day in 0..40_000 {
            let current = civil_from_days(day);
            assert!(current > previous, "{current:?} after {previous:?}");
            assert!((1..=12).contains(&current.1) && (1..=31).contains(&current.2));
            previous = current;
        }
    }
}
