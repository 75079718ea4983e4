//! `Queue` and `QueueConsumer` over SQS (`SqsQueue`), SQS's quotas, and what no port covers
//! (`SqsAdmin`: calls by queue URL, raw bodies, the copy redrive with its progress). Lambda
//! consumes through its SQS event source instead of `QueueConsumer::receive`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use relay_core::domain::model::{DeliveryTask, EventEnvelope, ReceivedMessage};
pub use relay_core::ports::QueueDepth;
use relay_core::ports::{DeliveryLane, Queue, QueueConsumer, QueueError, QueueName, Settle};
use serde::Serialize;

use crate::config::{
    AwsSettings, ENV_DELIVERIES_DLQ_URL, ENV_DELIVERIES_QUEUE_URL, ENV_EVENTS_DLQ_URL,
    ENV_EVENTS_QUEUE_URL, ENV_FAILING_DELIVERIES_QUEUE_URL,
};
use crate::describe_sdk_error;

mod admin;
pub use admin::{RedriveMethod, RedriveProgress, SqsAdmin, SqsMessage};

// Amazon SQS's quotas. Source: Amazon SQS Developer Guide, "Amazon SQS message quotas".
/// A message's delay (`DelaySeconds`) is at most 15 minutes.
pub const MAX_DELAY_SECS: u32 = 900;
/// A visibility timeout is at most 12 hours, counted from the receive.
pub const MAX_VISIBILITY_SECS: u32 = 12 * 3600;
/// A long poll waits at most 20 seconds.
pub const MAX_WAIT_SECS: u32 = 20;
/// A receive takes at most 10 messages.
pub const MAX_RECEIVE: u32 = 10;
/// A message is at most 1 MiB (the queues' `MaximumMessageSize` in infra/template.yaml).
pub const MAX_MESSAGE_BYTES: usize = 1_048_576;

// What the core asks of a queue fits within SQS's quotas.
const _: () = assert!(relay_core::domain::limits::MAX_QUEUE_DELAY_SECS <= MAX_DELAY_SECS);
const _: () = assert!(relay_core::domain::limits::MAX_QUEUE_MESSAGE_BYTES <= MAX_MESSAGE_BYTES);

/// While a fallback redrive copies a message it stays hidden this long; if the copy fails it
/// reappears in the DLQ, so nothing is lost.
const COPY_VISIBILITY_SECS: u32 = 60;
const MOVE_TASK_POLL: Duration = Duration::from_secs(1);

use relay_core::domain::model::QueueMessageRef as OutgoingMessage;

/// The relay's `Queue` and `QueueConsumer` over SQS. Queue URLs that a function does not need
/// may be absent; using one that is absent fails with an error naming its variable.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    admin: SqsAdmin,
    events_url: Option<String>,
    events_dlq_url: Option<String>,
    deliveries_url: Option<String>,
    deliveries_dlq_url: Option<String>,
    failing_deliveries_url: Option<String>,
}

impl SqsQueue {
    pub fn new(client: Client, settings: &AwsSettings) -> Self {
        Self {
            admin: SqsAdmin::new(client.clone()),
            client,
            events_url: settings.events_queue_url.clone(),
            events_dlq_url: settings.events_dlq_url.clone(),
            deliveries_url: settings.deliveries_queue_url.clone(),
            deliveries_dlq_url: settings.deliveries_dlq_url.clone(),
            failing_deliveries_url: settings.failing_deliveries_queue_url.clone(),
        }
    }

    /// The URL of one of the five queues.
    pub fn url(&self, queue: QueueName) -> Result<&str, QueueError> {
        match queue {
            QueueName::Events => configured(&self.events_url, ENV_EVENTS_QUEUE_URL),
            QueueName::EventsDlq => configured(&self.events_dlq_url, ENV_EVENTS_DLQ_URL),
            QueueName::Deliveries => configured(&self.deliveries_url, ENV_DELIVERIES_QUEUE_URL),
            QueueName::DeliveriesDlq => {
                configured(&self.deliveries_dlq_url, ENV_DELIVERIES_DLQ_URL)
            }
            QueueName::FailingDeliveries => configured(
                &self.failing_deliveries_url,
                ENV_FAILING_DELIVERIES_QUEUE_URL,
            ),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn send(
        &self,
        url: &str,
        message: &OutgoingMessage<'_>,
        delay_secs: u32,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| {
            QueueError::Unavailable(format!("cannot encode message ({:?})", e.classify()))
        })?;
        send_message(&self.client, url, body, delay_secs, Some(tenant(message)))
            .await
            .map(|_| ())
    }
}

/// The message's tenant for SQS fair queues (`MessageGroupId` on a standard queue): its source
/// for an event, its subscription for a delivery. When one tenant holds a disproportionate share
/// of a queue's consumers, SQS hands out the other tenants' messages first (*SQS Developer
/// Guide: fair queues*), so within a lane a large backlog of one subscription does not make
/// the others wait. Ordering and delivery are otherwise unchanged.
fn tenant<'a>(message: &'a OutgoingMessage<'_>) -> &'a str {
    match message {
        OutgoingMessage::Event(event) => &event.source,
        OutgoingMessage::Delivery(task) => &task.subscription_id,
    }
}

fn configured<'a>(url: &'a Option<String>, var: &str) -> Result<&'a str, QueueError> {
    url.as_deref()
        .ok_or_else(|| QueueError::Unavailable(format!("queue URL not configured ({var})")))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError> {
        let url = configured(&self.events_url, ENV_EVENTS_QUEUE_URL)?;
        self.send(url, &OutgoingMessage::Event(event), 0).await
    }

    async fn send_delivery_on(
        &self,
        lane: DeliveryLane,
        task: &DeliveryTask,
        delay_secs: u32,
    ) -> Result<(), QueueError> {
        // A stack without the failing lane keeps every delivery on the deliveries queue.
        let url = match (lane, &self.failing_deliveries_url) {
            (DeliveryLane::Failing, Some(url)) => url.as_str(),
            _ => configured(&self.deliveries_url, ENV_DELIVERIES_QUEUE_URL)?,
        };
        self.send(url, &OutgoingMessage::Delivery(task), delay_secs)
            .await
    }

    async fn dead_letter_delivery(&self, task: &DeliveryTask) -> Result<(), QueueError> {
        let url = configured(&self.deliveries_dlq_url, ENV_DELIVERIES_DLQ_URL)?;
        self.send(url, &OutgoingMessage::Delivery(task), 0).await
    }
}

/// SQS's rules are the port's; stale receipts: an outdated receipt's delete may be ignored (moto
/// applies it), and a receipt of a message that is gone answers `ReceiptHandleIsInvalid` or
/// `MessageNotInflight`, which settle takes as done.
#[async_trait]
impl QueueConsumer for SqsQueue {
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let url = self.url(queue)?;
        let max = u32::try_from(max.clamp(1, MAX_RECEIVE as usize)).unwrap_or(MAX_RECEIVE);
        let wait = u32::try_from(wait.as_secs()).unwrap_or(MAX_WAIT_SECS);
        let visibility = u32::try_from(visibility.as_secs()).unwrap_or(MAX_VISIBILITY_SECS);
        let messages = self.admin.receive(url, max, wait, visibility).await?;
        Ok(messages.iter().map(SqsMessage::to_received).collect())
    }

    async fn settle(
        &self,
        queue: QueueName,
        receipt: &str,
        action: Settle,
    ) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        let settled = match action {
            Settle::Delete => by_receipt(&self.client, url, receipt, ByReceipt::Delete).await,
            // Leaving a message is no call at all.
            Settle::Leave => Ok(()),
        };
        match settled {
            Ok(()) | Err(SettleFailure::StaleReceipt(_)) => Ok(()),
            Err(SettleFailure::Unavailable(e)) => Err(e),
        }
    }

    async fn redrive(&self, dlq: QueueName) -> Result<u64, QueueError> {
        let target = dlq
            .source_queue()
            .ok_or_else(|| QueueError::Unavailable(format!("{dlq} is not a dead-letter queue")))?;
        let (from, to) = (self.url(dlq)?, self.url(target)?);
        self.admin.redrive(from, to).await
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        if queue == QueueName::FailingDeliveries && self.failing_deliveries_url.is_none() {
            // No such lane: its deliveries are counted on the deliveries queue.
            return Ok(QueueDepth::default());
        }
        self.admin.queue_depth(self.url(queue)?).await
    }
}

/// Why settling a message by its receipt handle failed.
enum SettleFailure {
    /// The receipt no longer names a message in flight: it was deleted, moved or received again.
    StaleReceipt(QueueError),
    Unavailable(QueueError),
}

impl SettleFailure {
    fn of<E: ProvideErrorMetadata>(
        operation: &str,
        err: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
    ) -> Self {
        let stale = err
            .as_service_error()
            .and_then(|e| e.code())
            .is_some_and(|code| {
                code.contains("ReceiptHandleIsInvalid") || code.contains("MessageNotInflight")
            });
        if stale {
            SettleFailure::StaleReceipt(QueueError::Unavailable(describe_sdk_error(operation, err)))
        } else {
            SettleFailure::Unavailable(unavailable(operation, err))
        }
    }

    fn into_error(self) -> QueueError {
        match self {
            SettleFailure::StaleReceipt(e) | SettleFailure::Unavailable(e) => e,
        }
    }
}

/// What is done to a received message by its receipt handle.
enum ByReceipt {
    Delete,
    /// Hide it for this many seconds from now (at most 12 h; 0 makes it visible at once).
    HideFor(u32),
}

/// Deletes or hides one received message.
async fn by_receipt(
    client: &Client,
    queue_url: &str,
    receipt_handle: &str,
    action: ByReceipt,
) -> Result<(), SettleFailure> {
    match action {
        ByReceipt::Delete => client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| SettleFailure::of("DeleteMessage", &e)),
        ByReceipt::HideFor(secs) => client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(to_i32(secs.min(MAX_VISIBILITY_SECS)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| SettleFailure::of("ChangeMessageVisibility", &e)),
    }
}

/// Returns the new message's id.
async fn send_message(
    client: &Client,
    url: &str,
    body: String,
    delay_secs: u32,
    tenant: Option<&str>,
) -> Result<String, QueueError> {
    let delay = i32::try_from(delay_secs.min(MAX_DELAY_SECS)).unwrap_or(0);
    let out = client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .delay_seconds(delay)
        .set_message_group_id(tenant.map(str::to_owned))
        .send()
        .await
        .map_err(|e| unavailable("SendMessage", &e))?;
    Ok(out.message_id.unwrap_or_default())
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn unavailable<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    operation: &str,
    err: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> QueueError {
    let message = describe_sdk_error(operation, err);
    tracing::warn!(error = %message, "sqs call failed");
    QueueError::Unavailable(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn missing_urls_name_their_variable() {
        let err = configured(&None, ENV_DELIVERIES_DLQ_URL).unwrap_err();
        assert!(err.to_string().contains("RELAY_DELIVERIES_DLQ_URL"));
        assert_eq!(
            configured(&Some("u".into()), ENV_DELIVERIES_DLQ_URL).unwrap(),
            "u"
        );
    }

    #[test]
    fn depth_totals() {
        let depth = QueueDepth {
            visible: 1,
            in_flight: 2,
            delayed: 3,
            oldest_age_secs: Some(60),
        };
        assert_eq!(depth.total(), 6);
    }
}
