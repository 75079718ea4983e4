use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use relay_core::fanout::Fanout;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = relay_aws::lambda::start(
        relay_aws::Caller::Fanout,
        relay_aws::wiring::fanout,
        Fanout::with_bodies,
        Fanout::with_tally,
    )
    .await?;
    let (fanout, metrics) = (start.use_case, start.metrics);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (fanout, metrics) = (Arc::clone(&fanout), metrics.clone());
        let deadline = fanout::deadline_instant(event.context.deadline);
        async move {
            let response = fanout::handle(&fanout, event.payload, deadline).await;
            if let Some(metrics) = metrics {
                metrics.flush();
            }
            Ok::<_, Error>(response)
        }
    }))
    .await
}
