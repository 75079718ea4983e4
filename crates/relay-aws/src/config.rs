//! Where the relay's AWS resources are, and how the SDK is configured to reach them.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

pub const ENV_TABLE: &str = "RELAY_TABLE";
pub const ENV_EVENTS_QUEUE_URL: &str = "RELAY_EVENTS_QUEUE_URL";
pub const ENV_DELIVERIES_QUEUE_URL: &str = "RELAY_DELIVERIES_QUEUE_URL";
pub const ENV_DELIVERIES_DLQ_URL: &str = "RELAY_DELIVERIES_DLQ_URL";
/// The deliveries lane of subscriptions that keep failing; unset (a stack from before the lane):
/// their deliveries stay on the deliveries queue.
pub const ENV_FAILING_DELIVERIES_QUEUE_URL: &str = "RELAY_FAILING_DELIVERIES_QUEUE_URL";
pub const ENV_EVENTS_DLQ_URL: &str = "RELAY_EVENTS_DLQ_URL";
pub const ENV_OPERATION_TIMEOUT_MS: &str = "RELAY_AWS_OPERATION_TIMEOUT_MS";
/// The S3 bucket of bodies too large to travel inline; unset: such bodies are refused (413).
pub const ENV_BODIES_BUCKET: &str = "RELAY_BODIES_BUCKET";

/// Who calls AWS, which sets how long a call may take and how it is retried (`SdkPolicy`): each
/// caller answers to its own deadline. docs/scale.md tabulates the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The receiver (and the scheduled reconcile, which queues through it): at worst a source
    /// lookup, the dedup claim, the events queue's SendMessage and the claim's confirmation, in
    /// turn, while the provider waits (GitHub gives up after 10 s; the receiver function's
    /// default timeout is 10 s).
    Receiver,
    /// The fanout: its settling after an attempt (at worst a health change's read and write,
    /// the follow-up SendMessage and the attempt log write, in turn), which must fit in
    /// `SETTLE_RESERVE` (5 s) before the Lambda deadline.
    Fanout,
    /// The CLI: an operator waits, and a retry beats a failed command.
    Admin,
}

/// Retries and timeouts of every AWS call of one caller. Standard retry mode: throttling
/// (`ThrottlingException`, `ProvisionedThroughputExceededException`, `RequestThrottled`, ...),
/// `RequestTimeout`, HTTP 500/502/503/504, timeouts and connection errors are retried with
/// jittered exponential backoff, drawing on the client's retry quota. Not adaptive: a Lambda
/// environment lives too briefly and sends too little for a client-side rate limiter to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkPolicy {
    /// Tries per operation, the first included.
    pub max_attempts: u32,
    /// The first backoff after a retryable error (doubling, jittered, up to `max_backoff`).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// One try, connecting included.
    pub attempt_timeout: Duration,
    /// Every try and backoff of one operation together: the caller's budget per call.
    pub operation_timeout: Duration,
}

impl Caller {
    pub const fn policy(self) -> SdkPolicy {
        match self {
            // Four calls in turn, 1.5 s each at worst, leave the provider's 10 s 4 s of margin;
            // a hung call gets two tries, a quick 5xx or throttle three.
            Caller::Receiver => SdkPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(400),
                connect_timeout: Duration::from_millis(500),
                attempt_timeout: Duration::from_millis(600),
                operation_timeout: Duration::from_millis(1500),
            },
            // Four calls in turn, 1.2 s each at worst, fit the 5 s settle reserve.
            Caller::Fanout => SdkPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(400),
                connect_timeout: Duration::from_millis(400),
                attempt_timeout: Duration::from_millis(500),
                operation_timeout: Duration::from_millis(1200),
            },
            Caller::Admin => SdkPolicy {
                max_attempts: 5,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(3),
                attempt_timeout: Duration::from_secs(10),
                operation_timeout: Duration::from_secs(30),
            },
        }
    }
}

impl SdkPolicy {
    /// The policy with another budget per operation (`RELAY_AWS_OPERATION_TIMEOUT_MS`, for a
    /// slow network or an emulator): the try and connect timeouts keep their share of it, so
    /// the same number of tries fits.
    pub fn with_operation_timeout(self, operation_timeout: Duration) -> Self {
        let (new, old) = (
            operation_timeout.as_nanos(),
            self.operation_timeout.as_nanos().max(1),
        );
        let scaled = |timeout: Duration| {
            let nanos = u64::try_from(timeout.as_nanos() * new / old).unwrap_or(u64::MAX);
            Duration::from_nanos(nanos).min(operation_timeout)
        };
        Self {
            operation_timeout,
            attempt_timeout: scaled(self.attempt_timeout),
            connect_timeout: scaled(self.connect_timeout),
            ..self
        }
    }

    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }
}

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
    pub failing_deliveries_queue_url: Option<String>,
    /// `RELAY_AWS_OPERATION_TIMEOUT_MS`: replaces the caller's budget per operation.
    pub operation_timeout: Option<Duration>,
    /// `RELAY_BODIES_BUCKET`: where bodies over the inline limit are kept.
    pub bodies_bucket: Option<String>,
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
            failing_deliveries_queue_url: None,
            operation_timeout: None,
            bodies_bucket: None,
        }
    }

    /// The SDK policy of `caller`, with the configured budget per operation if any.
    pub fn sdk_policy(&self, caller: Caller) -> SdkPolicy {
        let policy = caller.policy();
        match self.operation_timeout {
            Some(timeout) => policy.with_operation_timeout(timeout),
            None => policy,
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
        let operation_timeout = get(ENV_OPERATION_TIMEOUT_MS)
            .map(|raw| parse_timeout_ms(&raw))
            .transpose()?;
        Ok(Self {
            table,
            events_queue_url: get(ENV_EVENTS_QUEUE_URL),
            deliveries_queue_url: get(ENV_DELIVERIES_QUEUE_URL),
            deliveries_dlq_url: get(ENV_DELIVERIES_DLQ_URL),
            events_dlq_url: get(ENV_EVENTS_DLQ_URL),
            failing_deliveries_queue_url: get(ENV_FAILING_DELIVERIES_QUEUE_URL),
            operation_timeout,
            bodies_bucket: get(ENV_BODIES_BUCKET),
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
/// `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_DYNAMODB`, profiles), with `policy`'s retries and
/// timeouts for every client built from it.
pub async fn load_sdk_config(policy: &SdkPolicy) -> aws_config::SdkConfig {
    sdk_config_loader(policy).load().await
}

/// The loader behind `load_sdk_config`, for callers that pin a region, endpoint or credentials.
pub fn sdk_config_loader(policy: &SdkPolicy) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(policy.timeout_config())
        .retry_config(policy.retry_config())
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
            (ENV_BODIES_BUCKET, "b"),
            (ENV_FAILING_DELIVERIES_QUEUE_URL, "f"),
        ]))
        .unwrap();
        assert_eq!(s.table, "t");
        assert_eq!(s.bodies_bucket.as_deref(), Some("b"));
        assert_eq!(s.failing_deliveries_queue_url.as_deref(), Some("f"));
        assert_eq!(s.require_events_queue_url().unwrap(), "e");
        assert_eq!(s.require_deliveries_queue_url().unwrap(), "d");
        assert_eq!(s.require_deliveries_dlq_url().unwrap(), "dd");
        assert_eq!(s.require_events_dlq_url().unwrap(), "ed");
        assert_eq!(s.operation_timeout, Some(Duration::from_millis(1500)));
        let fanout = s.sdk_policy(Caller::Fanout);
        assert_eq!(fanout.operation_timeout, Duration::from_millis(1500));
        assert_eq!(fanout.attempt_timeout, Duration::from_millis(625));
    }

    #[test]
    fn optional_queues_name_their_variable_when_required() {
        let s =
            AwsSettings::from_lookup(lookup(&[(ENV_TABLE, "t"), (ENV_DELIVERIES_QUEUE_URL, " ")]))
                .unwrap();
        assert_eq!(s.operation_timeout, None);
        assert_eq!(s.sdk_policy(Caller::Admin), Caller::Admin.policy());
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

    /// The rows of docs/scale.md's retry table: (caller, attempts, initial backoff ms, max
    /// backoff ms, connect ms, attempt ms, operation ms).
    const TABLE: [(Caller, u32, u64, u64, u64, u64, u64); 3] = [
        (Caller::Receiver, 3, 100, 400, 500, 600, 1_500),
        (Caller::Fanout, 3, 100, 400, 400, 500, 1_200),
        (Caller::Admin, 5, 200, 5_000, 3_000, 10_000, 30_000),
    ];

    #[test]
    fn each_caller_gets_the_documented_retries_and_timeouts() {
        for (caller, attempts, initial, max, connect, attempt, operation) in TABLE {
            let policy = caller.policy();
            let retry = policy.retry_config();
            assert_eq!(
                retry.mode(),
                aws_config::retry::RetryMode::Standard,
                "{caller:?}"
            );
            assert_eq!(retry.max_attempts(), attempts, "{caller:?}");
            assert_eq!(retry.initial_backoff(), Duration::from_millis(initial));
            assert_eq!(retry.max_backoff(), Duration::from_millis(max));
            let timeouts = policy.timeout_config();
            assert_eq!(
                timeouts.connect_timeout(),
                Some(Duration::from_millis(connect))
            );
            assert_eq!(
                timeouts.operation_attempt_timeout(),
                Some(Duration::from_millis(attempt))
            );
            assert_eq!(
                timeouts.operation_timeout(),
                Some(Duration::from_millis(operation))
            );
        }
    }

    /// The sum of a caller's backoffs at their ceiling: what retries add to the tries.
    fn longest_backoffs(policy: &SdkPolicy) -> Duration {
        (0..policy.max_attempts - 1)
            .map(|retry| (policy.initial_backoff * 2u32.pow(retry)).min(policy.max_backoff))
            .sum()
    }

    #[test]
    fn every_budget_fits_its_callers_deadline() {
        let receiver = Caller::Receiver.policy();
        // Source, claim, send and confirm in turn, inside the provider's 10 s with 4 s to spare.
        assert!(4 * receiver.operation_timeout <= Duration::from_secs(6));
        let fanout = Caller::Fanout.policy();
        // Health read and write, follow-up and attempt log inside the settle reserve.
        assert!(4 * fanout.operation_timeout < relay_core::fanout::SETTLE_RESERVE);
        for caller in [Caller::Receiver, Caller::Fanout, Caller::Admin] {
            let policy = caller.policy();
            assert!(
                policy.connect_timeout <= policy.attempt_timeout,
                "{caller:?}"
            );
            assert!(
                policy.attempt_timeout <= policy.operation_timeout,
                "{caller:?}"
            );
            // Quick failures (a 5xx, a throttle) get every try inside the budget.
            assert!(
                longest_backoffs(&policy) < policy.operation_timeout,
                "{caller:?}"
            );
        }
    }

    #[test]
    fn a_configured_budget_scales_each_try() {
        let policy = Caller::Admin
            .policy()
            .with_operation_timeout(Duration::from_millis(1200));
        assert_eq!(policy.operation_timeout, Duration::from_millis(1200));
        assert_eq!(policy.attempt_timeout, Duration::from_millis(400));
        assert_eq!(policy.connect_timeout, Duration::from_millis(120));
        assert_eq!(policy.max_attempts, 5);
        let slow = Caller::Receiver
            .policy()
            .with_operation_timeout(Duration::from_secs(6));
        assert_eq!(slow.attempt_timeout, Duration::from_millis(2400));
        assert_eq!(slow.connect_timeout, Duration::from_secs(2));
    }
}
