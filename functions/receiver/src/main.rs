use std::sync::Arc;

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL.
    lambda_http::tracing::init_default_subscriber();
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = relay_aws::AwsSettings::from_env()?;
    // Clients are built once per cold start and shared by every invocation.
    let aws = relay_aws::connect(&settings).await;
    let receiver = Arc::new(relay_aws::wiring::receiver(
        aws.store,
        aws.queue,
        &settings,
        &lookup,
        relay_core::clock::system(),
    )?);
    lambda_http::run(service_fn(move |request| {
        let receiver = Arc::clone(&receiver);
        async move { receiver::handle(&receiver, request).await }
    }))
    .await
}
