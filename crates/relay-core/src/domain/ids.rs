//! Identifiers and secrets minted by the relay.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

/// Event ids are time-ordered (UUIDv7) so listings sort by arrival; they become `webhook-id`.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

/// An event id whose time is `received_at` (milliseconds since the epoch): ordering events by
/// id then orders them by arrival, ties by id, which lets a store sort on the id alone.
pub fn event_id_at(received_at: i64) -> String {
    let millis = u64::try_from(received_at).unwrap_or(0);
    let timestamp = uuid::Timestamp::from_unix(
        uuid::NoContext,
        millis / 1000,
        u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
    );
    format!("evt_{}", uuid::Uuid::new_v7(timestamp).simple())
}

/// The time (milliseconds since the epoch) in an event id the relay minted: `evt_` and a
/// UUIDv7, whose first 48 bits are the time. None for any other id.
pub fn event_time_millis(event_id: &str) -> Option<i64> {
    let hex = event_id.strip_prefix("evt_")?;
    let uuid = uuid::Uuid::try_parse(hex).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    i64::try_from(secs)
        .ok()
        .map(|s| s * 1000 + i64::from(nanos / 1_000_000))
}

pub fn new_subscription_id() -> String {
    format!("sub_{}", uuid::Uuid::now_v7().simple())
}

/// A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_carry_their_time_and_sort_by_it() {
        let early = event_id_at(1_709_251_200_000);
        let late = event_id_at(1_709_251_200_001);
        assert!(early < late, "{early} {late}");
        // The UUIDv7 time field is the first 12 hex digits.
        assert_eq!(&early[4..16], format!("{:012x}", 1_709_251_200_000_u64));
        assert_eq!(early.len(), 36);
        assert!(event_id_at(-5).starts_with("evt_000000000000"));
        assert_eq!(event_time_millis(&early), Some(1_709_251_200_000));
        assert_eq!(
            event_time_millis(&new_event_id()).map(|t| t > 0),
            Some(true)
        );
        assert_eq!(event_time_millis("evt_1"), None);
        assert_eq!(event_time_millis(&new_subscription_id()), None);
    }
}
