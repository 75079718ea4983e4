//! The fanout Lambda's adapter: an SQS batch from any of its queues in, the core `Fanout` in the
//! middle, a partial batch response out (failed records stay on their queue).

use std::collections::HashMap;
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use relay_core::fanout::Fanout;
use relay_core::{ReceivedMessage, Settle};

/// Handles one batch. Dispositions are applied as the core maps them (`Settle::for_disposition`),
/// the way the event source mapping allows: a delete is a record not reported, anything else is
/// a batch item failure, which SQS hands out again after the queue's visibility timeout.
/// `deadline` is the invocation's: attempts are cut short so that the batch is answered in time.
pub async fn handle(
    fanout: &Fanout,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    // By receipt (what the fanout answers by): the message id a failure is reported by.
    let mut message_ids = HashMap::with_capacity(event.records.len());
    let mut messages = Vec::with_capacity(event.records.len());
    for record in event.records {
        let (Some(id), Some(body)) = (record.message_id, record.body) else {
            continue;
        };
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        // Nothing here settles by receipt handle; without one the message id names the record.
        let receipt = record.receipt_handle.unwrap_or_else(|| id.clone());
        message_ids.insert(receipt.clone(), id.clone());
        messages.push(ReceivedMessage {
            receipt,
            message_id: Some(id),
            body,
            receive_count,
        });
    }
    let mut response = SqsBatchResponse::default();
    for (receipt, disposition) in fanout.handle_batch(messages, deadline).await {
        if Settle::for_disposition(disposition) == Settle::Delete {
            continue;
        }
        if let Some(id) = message_ids.remove(&receipt) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
pub use relay_aws::lambda::deadline_instant;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use relay_core::domain::model::QueueMessage;
    use relay_core::fanout::FanoutConfig;
    use relay_core::outbound::delivery::Outcome;
    use relay_core::ports::Catalog;
    use relay_core::ports::clock::FixedClock;
    use relay_core::testkit::contract::{event, source, subscription};
    use relay_core::testkit::{MemoryStore, RecordingQueue, ScriptedDeliverer};

    use super::*;

    async fn fanout_answering(outcome: Outcome, queue: Arc<RecordingQueue>) -> Fanout {
        let store = Arc::new(MemoryStore::with_sources([source("gh")]));
        store
            .put_subscription(&subscription("sub_1", "gh"))
            .await
            .unwrap();
        let deliverer =
            ScriptedDeliverer::new(Duration::from_secs(5), [ScriptedDeliverer::answer(outcome)]);
        Fanout::with_deliverer(
            store,
            queue,
            Arc::new(deliverer),
            FixedClock::at_secs(1_700_000_000),
            FanoutConfig::default(),
        )
    }

    /// One record from the events queue, as the event source mapping hands it over.
    fn batch_of_one_event(message_id: &str) -> SqsEvent {
        let body = serde_json::to_string(&QueueMessage::Event(event("evt_1", 0))).unwrap();
        serde_json::from_value(serde_json::json!({ "Records": [{
            "messageId": message_id,
            "receiptHandle": format!("receipt-of-{message_id}"),
            "body": body,
            "attributes": { "ApproximateReceiveCount": "1" },
        }]}))
        .unwrap()
    }

    fn reported(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_delivered_record_is_not_reported() {
        let queue = Arc::new(RecordingQueue::default());
        let fanout = fanout_answering(Outcome::Delivered { status: 200 }, queue).await;
        let response = handle(&fanout, batch_of_one_event("m-1"), None).await;
        assert_eq!(reported(&response), Vec::<&str>::new());
    }

    #[tokio::test]
    async fn a_record_left_for_retry_is_reported_by_its_message_id() {
        // The attempt times out and its retry cannot be queued: the event must come back.
        let queue = Arc::new(RecordingQueue::default());
        queue.fail_sends(true);
        let fanout = fanout_answering(Outcome::Timeout, queue).await;
        let response = handle(&fanout, batch_of_one_event("m-1"), None).await;
        assert_eq!(reported(&response), ["m-1"]);
    }
}
