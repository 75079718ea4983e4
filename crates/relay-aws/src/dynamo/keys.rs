//! Key and bucket naming, kept pure so it can be unit-tested and shared with tooling.

use super::days::{civil_from_days, day_of};

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

/// Shards of each day's partition of the events index, so no index partition takes more than
/// its share of the writes. The target is 10,000 events/s. An index item is the keys, the event's
/// head (`doc`, without the body), source, type and body length: well under 1 KB, so one write
/// unit per event, 10,000 WCU/s in all. DynamoDB gives one partition at most 1,000 WCU/s
/// (Amazon DynamoDB Developer Guide, "Understanding DynamoDB warm throughput in different
/// scenarios" and "Best practices for designing and using partition keys effectively": "each
/// individual partition is limited to 1000 write units per second and 3000 read units per
/// second"), which makes 10 partitions the least that can hold the target, with no headroom.
/// 16 leaves 60% headroom for a hash that is not perfectly even and for bursts; a listing then
/// reads 16 partitions per day, in parallel.
pub const EVENT_INDEX_SHARDS: u32 = 16;

/// The shard of an event: FNV-1a of its id, so every writer and reader agrees on it without
/// coordination (unlike std's hasher, it is stable across builds and platforms).
pub fn event_shard(id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % EVENT_INDEX_SHARDS
}

/// The events index partition of one shard of a UTC day (days since 1970-01-01).
pub fn events_partition(day: i64, shard: u32) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("EVENTS#{y:04}-{m:02}-{d:02}#{shard:02}")
}

/// The events index partition an event is written to: its arrival day, its shard.
pub fn event_index_pk(received_at: i64, id: &str) -> String {
    events_partition(day_of(received_at), event_shard(id))
}

/// The events index sort key: arrival time, zero-padded so text order is time order, then the
/// id, so reading a partition backwards gives newest first (ties: the larger id first).
pub fn event_index_sk(received_at: i64, id: &str) -> String {
    // Arrival times are never before 1970; clamped so the padding keeps the order.
    format!("{:013}#{id}", received_at.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::days::MILLIS_PER_DAY;

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
    fn day_partitions_are_utc_dates_and_shards() {
        let day = |millis| events_partition(day_of(millis), 0);
        assert_eq!(day(0), "EVENTS#1970-01-01#00");
        assert_eq!(day(MILLIS_PER_DAY - 1), "EVENTS#1970-01-01#00");
        assert_eq!(day(MILLIS_PER_DAY), "EVENTS#1970-01-02#00");
        assert_eq!(day(-1), "EVENTS#1969-12-31#00");
        // 2024-02-29T23:59:59.999Z and the next millisecond.
        assert_eq!(day(1_709_251_199_999), "EVENTS#2024-02-29#00");
        assert_eq!(day(1_709_251_200_000), "EVENTS#2024-03-01#00");
        // 2000-12-31T12:00:00Z (a leap century's last day).
        assert_eq!(day(978_264_000_000), "EVENTS#2000-12-31#00");
        assert_eq!(day(1_767_225_600_000), "EVENTS#2026-01-01#00");
        assert_eq!(events_partition(0, 15), "EVENTS#1970-01-01#15");
        let id = "evt_0190f5a2b7c87d2e9a3b4c5d6e7f8091";
        assert_eq!(
            event_index_pk(1_709_251_200_000, id),
            events_partition(day_of(1_709_251_200_000), event_shard(id))
        );
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values: a change of hash would strand every event already written.
        assert_eq!(event_shard(""), 0x811c_9dc5 % EVENT_INDEX_SHARDS);
        assert_eq!(event_shard("a"), 0xe40c_292c % EVENT_INDEX_SHARDS);
        let mut counts = [0u32; EVENT_INDEX_SHARDS as usize];
        for _ in 0..16_000 {
            let id = relay_core::ids::new_event_id();
            counts[event_shard(&id) as usize] += 1;
        }
        // 1,000 expected per shard; a fair hash stays far inside these bounds.
        assert!(
            counts.iter().all(|&c| (700..=1300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn index_sort_keys_order_by_time_then_id() {
        let mut keys = vec![
            event_index_sk(10_000, "evt_b"),
            event_index_sk(9_999, "evt_z"),
            event_index_sk(10_000, "evt_a"),
            event_index_sk(1_709_251_200_000, "evt_a"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                event_index_sk(9_999, "evt_z"),
                event_index_sk(10_000, "evt_a"),
                event_index_sk(10_000, "evt_b"),
                event_index_sk(1_709_251_200_000, "evt_a"),
            ]
        );
        assert_eq!(event_index_sk(5, "evt_1"), "0000000000005#evt_1");
    }
}
