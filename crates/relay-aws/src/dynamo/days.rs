//! UTC date math for the events index, which buckets events by the day they arrived.

pub(crate) use relay_core::civil::civil_from_days;

pub(crate) const MILLIS_PER_DAY: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) containing `millis`.
pub(crate) fn day_of(millis: i64) -> i64 {
    millis.div_euclid(MILLIS_PER_DAY)
}
