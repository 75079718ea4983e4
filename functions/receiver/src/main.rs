use std::sync::Arc;

use lambda_http::{Error, service_fn};
use relay_core::receive::Receiver;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = relay_aws::lambda::start(
        relay_aws::Caller::Receiver,
        relay_aws::wiring::receiver,
        Receiver::with_bodies,
        Receiver::with_tally,
    )
    .await?;
    let (receiver, metrics) = (start.use_case, start.metrics);
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
