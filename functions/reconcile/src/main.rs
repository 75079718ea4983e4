use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use reconcile::{DEFAULT_LOOKBACK, Request, Sweeper};
use relay_aws::lambda::{deadline_instant, env_lookup};
use relay_aws::metrics::EmfMetrics;

#[tokio::main]
async fn main() -> Result<(), Error> {
    relay_aws::logging::init_lambda_logging();
    let settings = relay_aws::AwsSettings::from_env()?;
    // Clients are built once per cold start.
    // Reconcile queues what it finds through the receiver's claim and send.
    let sdk = relay_aws::load_sdk_config(&settings.sdk_policy(relay_aws::Caller::Receiver)).await;
    let aws = relay_aws::adapters_from_sdk_config(&sdk, &settings);
    let clock = relay_core::ports::clock::system();
    let receiver = relay_aws::wiring::receiver(
        aws.store.clone(),
        aws.queue.clone(),
        &settings,
        &env_lookup,
        clock.clone(),
    )?;
    // An event found over the inline limit is stored in the bodies bucket, as the receiver does.
    let receiver = match aws.bodies.clone() {
        Some(bodies) => receiver.with_bodies(Arc::new(bodies)),
        None => receiver,
    };
    let lookback = match env_lookup("RELAY_RECONCILE_LOOKBACK") {
        Some(text) => relay_core::domain::retry::parse_duration(&text)
            .map_err(|e| format!("RELAY_RECONCILE_LOOKBACK {text:?}: {e}"))?,
        None => DEFAULT_LOOKBACK,
    };
    let sweeper = Arc::new(Sweeper {
        store: aws.store,
        receiver,
        credentials: relay_aws::AwsCredentials::from_sdk_config(&sdk),
        clock,
        lookback,
        metrics: EmfMetrics::from_lookup(&env_lookup).map(Arc::new),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let sweeper = Arc::clone(&sweeper);
        let deadline = deadline_instant(event.context.deadline);
        async move {
            // Fields other than the request's (a scheduled event's own) are ignored.
            let request: Request = serde_json::from_value(event.payload)
                .map_err(|e| format!("the input is not a reconcile request: {e}"))?;
            let response = sweeper.handle(request, deadline).await;
            sweeper.flush_metrics();
            Ok::<_, Error>(serde_json::to_value(response?)?)
        }
    }))
    .await
}
