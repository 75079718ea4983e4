//! Tunables read from `RELAY_*` variables, shared by the Lambda mains and `relay`.

use std::time::Duration;

use crate::domain::retry::RetrySchedule;
use crate::fanout::{ArchiveMode, FanoutConfig};
use crate::outbound::delivery::DeliveryConfig;
use crate::receive::ReceiverConfig;

/// A `RELAY_*` variable whose value cannot be used; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{name} must be a whole number, not {text:?}")]
    NotANumber { name: &'static str, text: String },
    #[error("{name} must be true or false, not {text:?}")]
    NotABoolean { name: &'static str, text: String },
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads the receiver's tunables; unset variables keep their defaults.
pub fn receiver_config(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ReceiverConfig, SettingError> {
    let mut config = ReceiverConfig::default();
    if let Some(v) = number(lookup, "RELAY_MAX_BODY_BYTES")? {
        config.max_body_bytes = v as usize;
    }
    if let Some(v) = number(lookup, "RELAY_DEDUP_TTL_SECS")? {
        config.dedup_ttl_secs = v as i64;
    }
    if let Some(v) = number(lookup, "RELAY_CACHE_TTL_SECS")? {
        config.cache_ttl = Duration::from_secs(v);
    }
    if let Some(on) = boolean(lookup, "RELAY_DEDUP")? {
        config.dedup = on;
    }
    // The fanout's stored event confirms a claim when every event is stored.
    config.confirm_dedup = archive_mode(lookup)? != ArchiveMode::All;
    Ok(config)
}

/// `RELAY_ALLOW_PRIVATE_DESTINATIONS` as the functions read it (`None` when unset); the CLI
/// reads it the same way when no stack says.
pub fn allow_private_destinations(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<bool>, SettingError> {
    boolean(lookup, "RELAY_ALLOW_PRIVATE_DESTINATIONS")
}

/// Reads the fanout's and the delivery client's tunables.
pub fn fanout_config(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(FanoutConfig, DeliveryConfig), SettingError> {
    let mut fanout = FanoutConfig::default();
    let mut delivery = DeliveryConfig::default();
    if let Some(text) = lookup("RELAY_RETRY_SCHEDULE") {
        fanout.retry = RetrySchedule::parse(&text).map_err(|reason| SettingError::Invalid {
            name: "RELAY_RETRY_SCHEDULE",
            reason: reason.to_string(),
        })?;
    }
    if let Some(v) = number(lookup, "RELAY_CACHE_TTL_SECS")? {
        fanout.cache_ttl = Duration::from_secs(v);
    }
    if let Some(v) = number(lookup, "RELAY_EVENT_RETENTION_DAYS")? {
        fanout.retention_secs = v as i64 * 86_400;
    }
    if let Some(v) = number(lookup, "RELAY_DISABLE_AFTER_FAILING_SECS")? {
        fanout.health_window_secs = v as i64;
    }
    if let Some(v) = number(lookup, "RELAY_DELIVERY_TIMEOUT_SECS")? {
        delivery.timeout = Duration::from_secs(v.max(1));
    }
    if let Some(v) = number(lookup, "RELAY_FIRST_ATTEMPT_TIMEOUT_SECS")? {
        fanout.first_attempt_timeout = Some(Duration::from_secs(v.max(1)));
    }
    if let Some(allow) = allow_private_destinations(lookup)? {
        delivery.allow_private = allow;
    }
    fanout.archive = archive_mode(lookup)?;
    Ok((fanout, delivery))
}

/// `RELAY_EVENT_ARCHIVE`, read by both: the receiver leaves claims to be confirmed by the
/// fanout's stored events only when the fanout stores them all.
fn archive_mode(lookup: &dyn Fn(&str) -> Option<String>) -> Result<ArchiveMode, SettingError> {
    match lookup("RELAY_EVENT_ARCHIVE") {
        None => Ok(ArchiveMode::default()),
        Some(text) => ArchiveMode::parse(&text).ok_or_else(|| SettingError::Invalid {
            name: "RELAY_EVENT_ARCHIVE",
            reason: format!("must be all, failures or off, not {:?}", text.trim()),
        }),
    }
}

/// An unset variable is None; an empty one is false.
fn boolean(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<bool>, SettingError> {
    let Some(text) = lookup(name) else {
        return Ok(None);
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(Some(true)),
        "false" | "0" | "no" | "off" | "" => Ok(Some(false)),
        other => Err(SettingError::NotABoolean {
            name,
            text: other.to_owned(),
        }),
    }
}

fn number(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<u64>, SettingError> {
    match lookup(name) {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => match text.trim().parse() {
            Ok(value) => Ok(Some(value)),
            Err(_) => Err(SettingError::NotANumber { name, text }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_defaults() {
        let env = |name: &str| match name {
            "RELAY_MAX_BODY_BYTES" => Some("1024".to_string()),
            "RELAY_RETRY_SCHEDULE" => Some("1s,2s".to_string()),
            "RELAY_ALLOW_PRIVATE_DESTINATIONS" => Some("true".to_string()),
            _ => None,
        };
        let receiver = receiver_config(&env).unwrap();
        assert_eq!(receiver.max_body_bytes, 1024);
        assert_eq!(receiver.dedup_ttl_secs, 7 * 86_400);
        let (fanout, delivery) = fanout_config(&env).unwrap();
        assert_eq!(fanout.retry.len(), 2);
        assert!(delivery.allow_private);
        assert_eq!(delivery.timeout, Duration::from_secs(15));
        let bad = |_: &str| Some("x".to_string());
        assert_eq!(
            receiver_config(&bad).unwrap_err().to_string(),
            "RELAY_MAX_BODY_BYTES must be a whole number, not \"x\""
        );
        assert_eq!(
            fanout_config(&bad).unwrap_err(),
            SettingError::Invalid {
                name: "RELAY_RETRY_SCHEDULE",
                reason: "invalid duration \"x\": expected e.g. 5s, 10m, 2h, 1d".into()
            }
        );
    }

    #[test]
    fn dedup_and_archive_mode() {
        let env = |name: &str| match name {
            "RELAY_DEDUP" => Some("off".to_string()),
            "RELAY_EVENT_ARCHIVE" => Some("Failures".to_string()),
            _ => None,
        };
        assert!(!receiver_config(&env).unwrap().dedup);
        assert!(receiver_config(&env).unwrap().confirm_dedup);
        let defaults = receiver_config(&|_: &str| None).unwrap();
        assert!(defaults.dedup && !defaults.confirm_dedup);
        assert_eq!(
            fanout_config(&env).unwrap().0.archive,
            ArchiveMode::Failures
        );
        let bad = |name: &str| (name == "RELAY_EVENT_ARCHIVE").then(|| "some".to_string());
        assert_eq!(
            fanout_config(&bad).unwrap_err().to_string(),
            "RELAY_EVENT_ARCHIVE: must be all, failures or off, not \"some\""
        );
        let bad = |name: &str| (name == "RELAY_DEDUP").then(|| "maybe".to_string());
        assert_eq!(
            receiver_config(&bad).unwrap_err().to_string(),
            "RELAY_DEDUP must be true or false, not \"maybe\""
        );
    }
}
