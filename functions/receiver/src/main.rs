use std::sync::Arc;

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL.
    relay_aws::logging::init_lambda_logging();
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = relay_aws::AwsSettings::from_env()?;
    // Clients are built once per cold start and shared by every invocation.
    let aws = relay_aws::connect(&settings).await;
    let receiver = relay_aws::wiring::receiver(
        aws.store,
        aws.queue,
        &settings,
        &lookup,
        relay_core::clock::system(),
    )?;
    let metrics = relay_aws::metrics::EmfMetrics::from_lookup(&lookup).map(Arc::new);
    let receiver = Arc::new(match &metrics {
        Some(metrics) => receiver.with_tally(metrics.tally()),
        None => receiver,
    });
    lambda_http::run(service_fn(move |request| {
        let (receiver, metrics) = (Arc::clone(&receiver), metrics.clone());
        async move {
            let response = receiver::handle(&receiver, request).await;
            if let Some(metrics) = metrics {
                metrics.flush();
            }
            response
        }
    }))
    .await
}
