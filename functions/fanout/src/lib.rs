//! The fanout Lambda's adapter: an SQS batch from either queue in, the core `Fanout` in the
//! middle, a partial batch response out (failed records stay on their queue).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use relay_aws::SqsAdmin;
use relay_core::fanout::Fanout;
use relay_core::{ReceivedMessage, Settle};
use tracing::warn;

/// Handles one batch. Dispositions are applied as the core maps them (`Settle::for_disposition`),
/// the way the event source mapping allows: a delete is a record not reported, a leave is a
/// batch item failure, a hide is a visibility change plus a failure (so SQS keeps the record
/// hidden for that long).
/// `deadline` is the invocation's: attempts are cut short so that the batch is answered in time.
pub async fn handle(
    fanout: &Fanout,
    admin: &SqsAdmin,
    queue_urls: &HashMap<String, String>,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    // By receipt (what the fanout answers by): the message id and the queue URL.
    let mut records = HashMap::with_capacity(event.records.len());
    let mut messages = Vec::with_capacity(event.records.len());
    let mut failures = Vec::new();
    for record in event.records {
        let (Some(id), Some(body)) = (record.message_id, record.body) else {
            continue;
        };
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let queue_url = record
            .event_source_arn
            .as_deref()
            .and_then(|arn| arn.rsplit(':').next())
            .and_then(|name| queue_urls.get(name));
        // Without a receipt handle the record cannot be hidden (no queue URL to hide it on);
        // its message id still names it.
        let (receipt, queue_url) = match record.receipt_handle {
            Some(receipt) => (receipt, queue_url.cloned()),
            None => (id.clone(), None),
        };
        records.insert(receipt.clone(), (id.clone(), queue_url));
        messages.push(ReceivedMessage {
            receipt,
            message_id: Some(id),
            body,
            receive_count,
        });
    }
    for (receipt, disposition) in fanout.handle_batch_by(messages, deadline).await {
        let Some((id, url)) = records.get(&receipt) else {
            continue;
        };
        match Settle::for_disposition(disposition) {
            Settle::Delete => {}
            Settle::Leave => failures.push(id.clone()),
            Settle::HideFor(secs) => {
                if let Some(url) = url
                    && let Err(e) = admin.change_visibility(url, &receipt, secs).await
                {
                    // Left as is, it comes back after the queue's visibility timeout.
                    warn!(message_id = %id, error = %e, "could not hide an early delivery");
                }
                failures.push(id.clone());
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// The invocation deadline (milliseconds since the epoch, from the runtime API) as an instant.
pub fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis();
    let left = u64::try_from(u128::from(deadline_ms).checked_sub(now_ms)?).ok()?;
    Instant::now().checked_add(Duration::from_millis(left))
}

/// Maps queue names (the last part of an ARN or URL) to queue URLs.
pub fn queue_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> HashMap<String, String> {
    urls.into_iter()
        .filter_map(|url| {
            let name = url.trim_end_matches('/').rsplit('/').next()?;
            Some((name.to_owned(), url.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_queue_names_to_urls() {
        let map = queue_urls(["http://127.0.0.1:5000/123456789012/relay-deliveries"]);
        assert_eq!(
            map.get("relay-deliveries").map(String::as_str),
            Some("http://127.0.0.1:5000/123456789012/relay-deliveries")
        );
    }
}
