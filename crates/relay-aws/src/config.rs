//! Where the relay's AWS resources are, and how the SDK is configured to reach them.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

pub const ENV_TABLE: &str = "RELAY_TABLE";
pub const ENV_EVENTS_QUEUE_URL: &str = "RELAY_EVENTS_QUEUE_URL";
pub const ENV_DELIVERIES_QUEUE_URL: &str = "RELAY_DELIVERIES_QUEUE_URL";
pub const ENV_DELIVERIES_DLQ_URL: &str = "RELAY_DELIVERIES_DLQ_URL";
pub const ENV_EVENTS_DLQ_URL: &str = "RELAY_EVENTS_DLQ_URL";
pub const ENV_OPERATION_TIMEOUT_MS: &str = "RELAY_AWS_OPERATION_TIMEOUT_MS";

/// A webhook provider retries after a few seconds, so a hung AWS call must fail well before that.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// Names of the table and queues. Queue URLs are optional because each function needs a
/// different subset (the receiver only the events queue); call the `require_*` accessor for
/// the ones you need at start-up so a missing one fails the cold start, not a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub table: String,
    pub events_queue_url: Option<String>,
    pub deliveries_queue_url: Option<String>,
    pub deliveries_dlq_url: Option<String>,
    pub events_dlq_url: Option<String>,
    pub operation_timeout: Duration,
}

impl AwsSettings {
    /// Settings with only the table; queue URLs can be filled in afterwards.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            events_queue_url: None,
            deliveries_queue_url: None,
            deliveries_dlq_url: None,
            events_dlq_url: None,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// Reads the `RELAY_*` variables; only `RELAY_TABLE` is required.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like `from_env`, over any lookup (tests cannot safely mutate the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let table = get(ENV_TABLE).ok_or(SettingsError::Missing(ENV_TABLE))?;
        let operation_timeout = match get(ENV_OPERATION_TIMEOUT_MS) {
            None => DEFAULT_OPERATION_TIMEOUT,
            Some(raw) => parse_timeout_ms(&raw)?,
        };
        Ok(Self {
            table,
            events_queue_url: get(ENV_EVENTS_QUEUE_URL),
            deliveries_queue_url: get(ENV_DELIVERIES_QUEUE_URL),
            deliveries_dlq_url: get(ENV_DELIVERIES_DLQ_URL),
            events_dlq_url: get(ENV_EVENTS_DLQ_URL),
            operation_timeout,
        })
    }

    pub fn require_events_queue_url(&self) -> Result<&str, SettingsError> {
        require(&self.events_queue_url, ENV_EVENTS_QUEUE_URL)
    }

    pub fn require_deliveries_queue_url(&self) -> Result<&str, SettingsError> {
        require(&self.deliveries_queue_url, ENV_DELIVERIES_QUEUE_URL)
    }

    pub fn require_deliveries_dlq_url(&self) -> Result<&str, SettingsError> {
        require(&self.deliveries_dlq_url, ENV_DELIVERIES_DLQ_URL)
    }

    pub fn require_events_dlq_url(&self) -> Result<&str, SettingsError> {
        require(&self.events_dlq_url, ENV_EVENTS_DLQ_URL)
    }
}

fn require<'a>(value: &'a Option<String>, var: &'static str) -> Result<&'a str, SettingsError> {
    value.as_deref().ok_or(SettingsError::Missing(var))
}

fn parse_timeout_ms(raw: &str) -> Result<Duration, SettingsError> {
    let invalid = |reason: &str| SettingsError::Invalid {
        var: ENV_OPERATION_TIMEOUT_MS,
        reason: reason.to_owned(),
    };
    let ms: u64 = raw
        .parse()
        .map_err(|_| invalid("expected milliseconds as a whole number"))?;
    if ms == 0 {
        return Err(invalid("must be greater than 0"));
    }
    Ok(Duration::from_millis(ms))
}

/// The SDK's standard chain (credentials, region, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_DYNAMODB`, profiles), with every operation bounded
/// by `operation_timeout` including its retry, so a hung endpoint turns into a 503 quickly.
pub async fn load_sdk_config(operation_timeout: Duration) -> aws_config::SdkConfig {
    sdk_config_loader(operation_timeout).load().await
}

/// The loader behind `load_sdk_config`, for callers that pin a region, endpoint or credentials.
pub fn sdk_config_loader(operation_timeout: Duration) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeout_config(operation_timeout))
        .retry_config(RetryConfig::standard().with_max_attempts(2))
}

/// Half the budget per attempt leaves room for the one retry.
pub(crate) fn timeout_config(operation_timeout: Duration) -> TimeoutConfig {
    let attempt = (operation_timeout / 2).max(Duration::from_millis(100));
    TimeoutConfig::builder()
        .connect_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation_timeout)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn table_is_required() {
        let err = AwsSettings::from_lookup(lookup(&[(ENV_EVENTS_QUEUE_URL, "u")])).unwrap_err();
        assert_eq!(err, SettingsError::Missing(ENV_TABLE));
        assert!(err.to_string().contains("RELAY_TABLE"));
    }

    #[test]
    fn reads_everything() {
        let s = AwsSettings::from_lookup(lookup(&[
            (ENV_TABLE, "t"),
            (ENV_EVENTS_QUEUE_URL, "e"),
            (ENV_DELIVERIES_QUEUE_URL, "d"),
            (ENV_DELIVERIES_DLQ_URL, "dd"),
            (ENV_EVENTS_DLQ_URL, "ed"),
            (ENV_OPERATION_TIMEOUT_MS, "1500"),
        ]))
        .unwrap();
        assert_eq!(s.table, "t");
        assert_eq!(s.require_events_queue_url().unwrap(), "e");
        assert_eq!(s.require_deliveries_queue_url().unwrap(), "d");
        assert_eq!(s.require_deliveries_dlq_url().unwrap(), "dd");
        assert_eq!(s.require_events_dlq_url().unwrap(), "ed");
        assert_eq!(s.operation_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn optional_queues_name_their_variable_when_required() {
        let s =
            AwsSettings::from_lookup(lookup(&[(ENV_TABLE, "t"), (ENV_DELIVERIES_QUEUE_URL, " ")]))
                .unwrap();
        assert_eq!(s.operation_timeout, DEFAULT_OPERATION_TIMEOUT);
        assert_eq!(
            s.require_deliveries_queue_url().unwrap_err(),
            SettingsError::Missing(ENV_DELIVERIES_QUEUE_URL)
        );
        assert!(
            s.require_events_queue_url()
                .unwrap_err()
                .to_string()
                .contains("RELAY_EVENTS_QUEUE_URL")
        );
    }

    #[test]
    fn rejects_bad_timeouts() {
        for bad in ["0", "abc", "-5", "1.5"] {
            let err = AwsSettings::from_lookup(lookup(&[
                (ENV_TABLE, "t"),
                (ENV_OPERATION_TIMEOUT_MS, bad),
            ]))
            .unwrap_err();
            assert!(
                matches!(err, SettingsError::Invalid { var, .. } if var == ENV_OPERATION_TIMEOUT_MS)
            );
        }
    }

    #[test]
    fn attempts_fit_the_operation_budget() {
        let t = timeout_config(Duration::from_secs(3));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(
            t.operation_attempt_timeout(),
            Some(Duration::from_millis(1500))
        );
    }
}
