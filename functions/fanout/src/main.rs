use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL.
    relay_aws::logging::init_lambda_logging();
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = relay_aws::AwsSettings::from_env()?;
    // Clients, the HTTP connection pool and the caches live for the whole warm container.
    let aws = relay_aws::connect(&settings).await;
    let fanout = relay_aws::wiring::fanout(
        aws.store,
        aws.queue,
        &settings,
        &lookup,
        relay_core::clock::system(),
    )?;
    let metrics = relay_aws::metrics::EmfMetrics::from_lookup(&lookup).map(Arc::new);
    let fanout = Arc::new(match &metrics {
        Some(metrics) => fanout.with_tally(metrics.tally()),
        None => fanout,
    });
    let admin = Arc::new(aws.admin);
    let deliveries_url = settings.require_deliveries_queue_url()?.to_owned();
    let urls = Arc::new(fanout::queue_urls([deliveries_url.as_str()]));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (fanout, admin, urls) = (Arc::clone(&fanout), Arc::clone(&admin), Arc::clone(&urls));
        let metrics = metrics.clone();
        let deadline = fanout::deadline_instant(event.context.deadline);
        async move {
            let response = fanout::handle(&fanout, &admin, &urls, event.payload, deadline).await;
            if let Some(metrics) = metrics {
                metrics.flush();
            }
            Ok::<_, Error>(response)
        }
    }))
    .await
}
