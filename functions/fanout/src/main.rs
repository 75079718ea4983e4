use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = relay_aws::AwsSettings::from_env()?;
    // Clients, the HTTP connection pool and the caches live for the whole warm container.
    let aws = relay_aws::connect(&settings).await;
    let fanout = Arc::new(relay_aws::wiring::fanout(
        aws.store,
        aws.queue,
        &settings,
        &lookup,
        relay_core::clock::system(),
    )?);
    let admin = Arc::new(aws.admin);
    let deliveries_url = settings.require_deliveries_queue_url()?.to_owned();
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
