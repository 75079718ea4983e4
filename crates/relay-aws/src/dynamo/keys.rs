//! Key and bucket naming, kept pure so it can be unit-tested and shared with tooling.

use super::days::{MILLIS_PER_DAY, civil_from_days};

pub const META: &str = "META";
pub const SOURCES_BUCKET: &str = "SOURCES";
pub const SUBS_BUCKET: &str = "SUBS";
pub const SUB_PREFIX: &str = "SUB#";
pub const ATTEMPT_PREFIX: &str = "ATTEMPT#";

pub fn source_pk(name: &str) -> String {
    format!("SOURCE#{name}")
}

pub fn subscription_sk(id: &str) -> String {
    format!("{SUB_PREFIX}{id}")
}

/// The pointer item's pk, which finds a subscription's source from its id alone.
pub fn subscription_pointer_pk(id: &str) -> String {
    format!("{SUB_PREFIX}{id}")
}

pub fn dedup_pk(source: &str, key: &str) -> String {
    format!("DEDUP#{source}#{key}")
}

pub fn event_pk(id: &str) -> String {
    format!("EVENT#{id}")
}

/// Zero-padded so the sort key orders attempts numerically.
pub fn attempt_sk(attempt: u32, subscription_id: &str) -> String {
    format!("{ATTEMPT_PREFIX}{attempt:06}#{subscription_id}")
}

/// The GSI bucket of events received on the UTC day containing `millis`.
pub fn events_bucket(millis: i64) -> String {
    let (y, m, d) = civil_from_days(millis.div_euclid(MILLIS_PER_DAY));
    format!("EVENTS#{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed() {
        assert_eq!(source_pk("gh"), "SOURCE#gh");
        assert_eq!(subscription_sk("sub_1"), "SUB#sub_1");
        assert_eq!(subscription_pointer_pk("sub_1"), "SUB#sub_1");
        assert_eq!(dedup_pk("gh", "abc-123"), "DEDUP#gh#abc-123");
        assert_eq!(event_pk("evt_1"), "EVENT#evt_1");
    }

    #[test]
    fn attempt_sort_keys_order_numerically() {
        assert_eq!(attempt_sk(1, "sub_a"), "ATTEMPT#000001#sub_a");
        let mut keys = vec![
            attempt_sk(10, "sub_a"),
            attempt_sk(2, "sub_b"),
            attempt_sk(2, "sub_a"),
            attempt_sk(1, "sub_z"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                attempt_sk(1, "sub_z"),
                attempt_sk(2, "sub_a"),
                attempt_sk(2, "sub_b"),
                attempt_sk(10, "sub_a"),
            ]
        );
    }

    #[test]
    fn day_buckets_are_utc_dates() {
        assert_eq!(events_bucket(0), "EVENTS#1970-01-01");
        assert_eq!(events_bucket(MILLIS_PER_DAY - 1), "EVENTS#1970-01-01");
        assert_eq!(events_bucket(MILLIS_PER_DAY), "EVENTS#1970-01-02");
        assert_eq!(events_bucket(-1), "EVENTS#1969-12-31");
        // 2024-02-29T23:59:59.999Z and the next millisecond.
        assert_eq!(events_bucket(1_709_251_199_999), "EVENTS#2024-02-29");
        assert_eq!(events_bucket(1_709_251_200_000), "EVENTS#2024-03-01");
        // 2000-12-31T12:00:00Z (a leap century's last day).
        assert_eq!(events_bucket(978_264_000_000), "EVENTS#2000-12-31");
        assert_eq!(events_bucket(1_767_225_600_000), "EVENTS#2026-01-01");
    }
}
