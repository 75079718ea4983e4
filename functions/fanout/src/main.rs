use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use relay_core::delivery::DeliveryClient;
use relay_core::fanout::Fanout;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL.
    relay_aws::logging::init_lambda_logging();
    let lookup = |name: &str| std::env::var(name).ok();
    let (fanout_config, delivery_config) = relay_core::settings::fanout_config(&lookup)?;
    let settings = relay_aws::AwsSettings::from_env()?;
    let deliveries_url = settings.require_deliveries_queue_url()?.to_owned();
    settings.require_deliveries_dlq_url()?;
    // Clients, the HTTP connection pool and the caches live for the whole warm container.
    let aws = relay_aws::connect(&settings).await;
    let fanout = Arc::new(Fanout::new(
        Arc::new(aws.store),
        Arc::new(aws.queue),
        DeliveryClient::new(delivery_config)?,
        relay_core::clock::system(),
        fanout_config,
    ));
    let admin = Arc::new(aws.admin);
    let urls = Arc::new(fanout::queue_urls([deliveries_url.as_str()]));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (fanout, admin, urls) = (Arc::clone(&fanout), Arc::clone(&admin), Arc::clone(&urls));
        let deadline = fanout::deadline_instant(event.context.deadline);
        async move {
            Ok::<_, Error>(fanout::handle(&fanout, &admin, &urls, event.payload, deadline).await)
        }
    }))
    .await
}
