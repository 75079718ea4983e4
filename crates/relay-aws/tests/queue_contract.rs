//! The queue contract suite (`relay_core::testkit::queue_contract`) on SQS: a moto server
//! (`MOTO_ENDPOINT=http://127.0.0.1:5000`), four fresh queues per test made as the stack makes
//! them. Time passes for real here (visibility timeouts of 1-2 s). Without `MOTO_ENDPOINT` every
//! test fails: a queue rule must never pass unchecked.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use relay_aws::SqsQueue;
use relay_aws::provision::EVENTS_MAX_RECEIVE;
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
    SqsQueues(common::fresh_sqs_queue("the SQS queue contract", "relay-qc").await)
}

relay_core::queue_contract_tests!(fresh_queues());
