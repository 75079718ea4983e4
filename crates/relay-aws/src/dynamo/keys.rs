//! Key and bucket naming, kept pure so it can be unit-tested and shared with tooling.

pub const META: &str = "META";
pub const SOURCES_BUCKET: &str = "SOURCES";
pub const SUBS_BUCKET: &str = "SUBS";
pub const SUB_PREFIX: &str = "SUB#";

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

/// The partition of an event's items: its shard.
pub fn event_partition(id: &str) -> String {
    events_partition(event_shard(id))
}

/// A later attempt record's sort key: after its event's (`#` follows the id), zero-padded so
/// attempts order numerically.
pub fn attempt_sk(event_id: &str, attempt: u32, subscription_id: &str) -> String {
    format!("{event_id}#{attempt:06}#{subscription_id}")
}

/// The bounds of an event's items within its partition: its own sort key and every
/// `<id>#...` after it, but not a longer id that starts with this one (`evt_1` and `evt_10`):
/// `$` sorts right after `#` and before every character an id is made of.
pub fn event_items_range(event_id: &str) -> (String, String) {
    (event_id.to_owned(), format!("{event_id}$"))
}

/// Partitions the event items are spread over, so no partition takes more than its share of
/// the writes. The target is 10,000 events/s. The item of an event delivered at the first try
/// is under 1 KB (`codec::event_item`), so one write unit per event, 10,000 WCU/s in all. DynamoDB gives one partition at most 1,000 WCU/s
/// (Amazon DynamoDB Developer Guide, "Understanding DynamoDB warm throughput in different
/// scenarios" and "Best practices for designing and using partition keys effectively": "each
/// individual partition is limited to 1000 write units per second and 3000 read units per
/// second"), which makes 10 partitions the least that can hold the target, with no headroom.
/// 16 leaves 60% headroom for a hash that is not perfectly even and for bursts; a listing then
/// reads the 16 partitions in parallel.
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

/// One shard's partition of event items.
pub fn events_partition(shard: u32) -> String {
    format!("EVENTS#{shard:02}")
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
        assert_eq!(events_partition(7), "EVENTS#07");
        assert_eq!(event_partition("a"), events_partition(event_shard("a")));
    }

    #[test]
    fn attempt_sort_keys_follow_their_event_in_number_order() {
        assert_eq!(attempt_sk("evt_1", 1, "sub_a"), "evt_1#000001#sub_a");
        let mut keys = vec![
            attempt_sk("evt_1", 10, "sub_a"),
            "evt_10".to_owned(),
            attempt_sk("evt_1", 2, "sub_b"),
            "evt_1".to_owned(),
            attempt_sk("evt_1", 2, "sub_a"),
            attempt_sk("evt_1", 1, "sub_z"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "evt_1".to_owned(),
                attempt_sk("evt_1", 1, "sub_z"),
                attempt_sk("evt_1", 2, "sub_a"),
                attempt_sk("evt_1", 2, "sub_b"),
                attempt_sk("evt_1", 10, "sub_a"),
                "evt_10".to_owned(),
            ]
        );
        let (low, high) = event_items_range("evt_1");
        let within = |k: &str| low.as_str() <= k && k <= high.as_str();
        assert!(within("evt_1") && within(&attempt_sk("evt_1", 999_999, "sub_z")));
        assert!(!within("evt_10") && !within("evt_0") && !within("evt_2"));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values: a change of hash would strand every event already written.
        assert_eq!(event_shard(""), 0x811c_9dc5 % EVENT_INDEX_SHARDS);
        assert_eq!(event_shard("a"), 0xe40c_292c % EVENT_INDEX_SHARDS);
        let mut counts = [0u32; EVENT_INDEX_SHARDS as usize];
        for _ in 0..16_000 {
            let id = relay_core::domain::ids::new_event_id();
            counts[event_shard(&id) as usize] += 1;
        }
        // 1,000 expected per shard; a fair hash stays far inside these bounds.
        assert!(
            counts.iter().all(|&c| (700..=1300).contains(&c)),
            "{counts:?}"
        );
    }
}
