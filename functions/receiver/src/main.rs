use std::sync::Arc;

use lambda_http::{Error, service_fn};
use relay_core::receive::Receiver;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL.
    relay_aws::logging::init_lambda_logging();
    let lookup = |name: &str| std::env::var(name).ok();
    let config = relay_core::settings::receiver_config(&lookup)?;
    let settings = relay_aws::AwsSettings::from_env()?;
    settings.require_events_queue_url()?;
    // Clients are built once per cold start and shared by every invocation.
    let aws = relay_aws::connect(&settings).await;
    let receiver = Arc::new(Receiver::new(
        Arc::new(aws.store),
        Arc::new(aws.queue),
        relay_core::clock::system(),
        config,
    ));
    lambda_http::run(service_fn(move |request| {
        let receiver = Arc::clone(&receiver);
        async move { receiver::handle(&receiver, request).await }
    }))
    .await
}
