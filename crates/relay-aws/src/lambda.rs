//! The cold start both Lambda mains share: logging, settings, adapters, the use case and, where
//! enabled, EMF metrics counting into it.

use std::sync::{Arc, Mutex};

use relay_core::BodyStore;
use relay_core::domain::metrics::Tally;
use relay_core::ports::clock::SharedClock;

use crate::metrics::EmfMetrics;
use crate::{AwsSettings, Caller, DynamoStore, SqsQueue, connect, logging};

/// The error a Lambda main returns (the runtime's own `Error` type).
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// What a cold start builds; it lives for the whole warm container.
pub struct LambdaStart<T> {
    pub use_case: Arc<T>,
    pub settings: AwsSettings,
    pub metrics: Option<Arc<EmfMetrics>>,
}

/// Reads the process environment, as the `RELAY_*` settings do on Lambda.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Builds the use case with `build` (a `wiring` function) over the adapters (with `caller`'s
/// retries and timeouts) and the system clock, attaches the bodies bucket (when configured) with
/// `with_bodies` and, when metrics are enabled, their tally with `with_tally`.
pub async fn start<T>(
    caller: Caller,
    build: impl FnOnce(
        DynamoStore,
        SqsQueue,
        &AwsSettings,
        &dyn Fn(&str) -> Option<String>,
        SharedClock,
    ) -> anyhow::Result<T>,
    with_bodies: impl FnOnce(T, Arc<dyn BodyStore>) -> T,
    with_tally: impl FnOnce(T, Arc<Mutex<Tally>>) -> T,
) -> Result<LambdaStart<T>, StartError> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL.
    logging::init_lambda_logging();
    let settings = AwsSettings::from_env()?;
    // Clients, the HTTP connection pool and the caches are built once per cold start.
    let aws = connect(&settings, caller).await;
    let use_case = build(
        aws.store,
        aws.queue,
        &settings,
        &env_lookup,
        relay_core::ports::clock::system(),
    )?;
    let use_case = match aws.bodies {
        Some(bodies) => with_bodies(use_case, Arc::new(bodies)),
        None => use_case,
    };
    let metrics = EmfMetrics::from_lookup(&env_lookup).map(Arc::new);
    let use_case = match &metrics {
        Some(metrics) => with_tally(use_case, metrics.tally()),
        None => use_case,
    };
    Ok(LambdaStart {
        use_case: Arc::new(use_case),
        settings,
        metrics,
    })
}

/// The invocation deadline (milliseconds since the epoch, from the runtime API) as an instant.
pub fn deadline_instant(deadline_ms: u64) -> Option<std::time::Instant> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    let left = u64::try_from(u128::from(deadline_ms).checked_sub(now_ms)?).ok()?;
    std::time::Instant::now().checked_add(std::time::Duration::from_millis(left))
}
