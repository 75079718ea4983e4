//! The queue contract suite (`relay_core::testkit::queue_contract`) on SQS: a moto server
//! (`MOTO_ENDPOINT=http://127.0.0.1:5000`), four fresh queues per test made as the stack makes
//! them. Time passes for real here (visibility timeouts of 1-2 s). Without `MOTO_ENDPOINT` every
//! test fails: a queue rule must never pass unchecked.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::Region;
use aws_sdk_sqs::config::Credentials;
use relay_aws::provision::{EVENTS_MAX_RECEIVE, create_queues};
use relay_aws::{SqsQueue, sdk_config_loader};
use relay_core::testkit::QueueFixture;
use relay_core::{Queue, QueueConsumer};

struct SqsQueues(SqsQueue);

#[async_trait]
impl QueueFixture for SqsQueues {
    fn consumer(&self) -> &dyn QueueConsumer {
        &self.0
    }
    fn producer(&self) -> &dyn Queue {
        &self.0
    }
    fn events_max_receives(&self) -> u32 {
        EVENTS_MAX_RECEIVE
    }
    async fn pass(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

async fn fresh_queues() -> SqsQueues {
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: the SQS queue contract needs a moto server")
    });
    let sdk = sdk_config_loader(Duration::from_secs(10))
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto-tests"))
        .load()
        .await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let id = relay_core::ids::new_event_id();
    let prefix = format!("relay-qc-{}", &id[id.len() - 12..]);
    let queues = create_queues(&client, &prefix)
        .await
        .unwrap_or_else(|e| panic!("creating queues {prefix}-* on moto: {e}"));
    SqsQueues(SqsQueue::new(client, &queues.settings(prefix.clone())))
}

relay_core::queue_contract_tests!(fresh_queues());
