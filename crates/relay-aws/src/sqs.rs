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
use relay_core::ports::{Queue, QueueConsumer, QueueError, QueueName, Settle};
use serde::Serialize;

use crate::config::{
    AwsSettings, ENV_DELIVERIES_DLQ_URL, ENV_DELIVERIES_QUEUE_URL, ENV_EVENTS_DLQ_URL,
    ENV_EVENTS_QUEUE_URL,
};
use crate::describe_sdk_error;

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
        }
    }

    /// The URL of one of the four queues.
    pub fn url(&self, queue: QueueName) -> Result<&str, QueueError> {
        match queue {
            QueueName::Events => configured(&self.events_url, ENV_EVENTS_QUEUE_URL),
            QueueName::EventsDlq => configured(&self.events_dlq_url, ENV_EVENTS_DLQ_URL),
            QueueName::Deliveries => configured(&self.deliveries_url, ENV_DELIVERIES_QUEUE_URL),
            QueueName::DeliveriesDlq => {
                configured(&self.deliveries_dlq_url, ENV_DELIVERIES_DLQ_URL)
            }
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
        send_message(&self.client, url, body, delay_secs)
            .await
            .map(|_| ())
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

    async fn send_delivery(&self, task: &DeliveryTask, delay_secs: u32) -> Result<(), QueueError> {
        let url = configured(&self.deliveries_url, ENV_DELIVERIES_QUEUE_URL)?;
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
) -> Result<String, QueueError> {
    let delay = i32::try_from(delay_secs.min(MAX_DELAY_SECS)).unwrap_or(0);
    let out = client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .delay_seconds(delay)
        .send()
        .await
        .map_err(|e| unavailable("SendMessage", &e))?;
    Ok(out.message_id.unwrap_or_default())
}

/// One received SQS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMessage {
    pub message_id: String,
    /// Needed to delete the message or change its visibility; valid for this receive only.
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
}

impl SqsMessage {
    /// The core's view of the message: settled by its receipt handle, named by its message id.
    pub fn to_received(&self) -> ReceivedMessage {
        ReceivedMessage {
            receipt: self.receipt_handle.clone(),
            message_id: Some(self.message_id.clone()),
            body: self.body.clone(),
            receive_count: self.receive_count,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedriveMethod {
    /// SQS's own message move task.
    MoveTask,
    /// Receive, send to the destination, then delete (where move tasks are unavailable).
    Copy,
}

/// Reported while a redrive runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RedriveProgress {
    pub method: RedriveMethod,
    /// Moved so far, by every method.
    pub moved: u64,
    /// When SQS knows it.
    pub to_move: Option<u64>,
}

/// SQS calls by queue URL, for what `QueueConsumer` does not cover: any queue (not only the
/// relay's four, e.g. a redrive's destination), raw bodies and message ids, a stale receipt
/// answered as an error rather than ignored, a message made visible again at once, and the
/// choice of the copy redrive with its progress (the port's redrive falls back to it where
/// StartMessageMoveTask is unavailable or stops early; only here can it be asked for). The
/// relay's queues' depth and redrive go through `SqsQueue`'s port, which makes its SQS calls
/// here. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsAdmin {
    client: Client,
    operation_timeout: Duration,
}

impl SqsAdmin {
    /// Each call is bounded by the client's operation timeout (`load_sdk_config`); long polls
    /// get their wait on top.
    pub fn new(client: Client) -> Self {
        let operation_timeout = client
            .config()
            .timeout_config()
            .and_then(|t| t.operation_timeout())
            .unwrap_or(crate::Caller::Admin.policy().operation_timeout);
        Self {
            client,
            operation_timeout,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Receives up to `max` (1..=10) messages, long-polling up to `wait_secs` (<= 20) and hiding
    /// them for `visibility_secs` (<= 12 h).
    pub async fn receive(
        &self,
        queue_url: &str,
        max: u32,
        wait_secs: u32,
        visibility_secs: u32,
    ) -> Result<Vec<SqsMessage>, QueueError> {
        let wait = wait_secs.min(MAX_WAIT_SECS);
        // The client-wide timeout is shorter than a long poll; give this call the wait on top.
        let budget = self.operation_timeout + Duration::from_secs(u64::from(wait));
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(budget)
            .operation_attempt_timeout(budget)
            .build();
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(to_i32(max.clamp(1, MAX_RECEIVE)))
            .wait_time_seconds(to_i32(wait))
            .visibility_timeout(to_i32(visibility_secs.min(MAX_VISIBILITY_SECS)))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", &e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Some(SqsMessage {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }

    /// Deletes a received message; a stale receipt is an error here (unlike `QueueConsumer`).
    pub async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError> {
        by_receipt(&self.client, queue_url, receipt_handle, ByReceipt::Delete)
            .await
            .map_err(SettleFailure::into_error)
    }

    /// Hides a received message for `secs` more (clamped to 12 h); a stale receipt is an error.
    pub async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        secs: u32,
    ) -> Result<(), QueueError> {
        by_receipt(
            &self.client,
            queue_url,
            receipt_handle,
            ByReceipt::HideFor(secs),
        )
        .await
        .map_err(SettleFailure::into_error)
    }

    /// Sends a raw body (delay clamped to 900 s); returns the message id.
    pub async fn send_raw(
        &self,
        queue_url: &str,
        body: impl Into<String>,
        delay_secs: u32,
    ) -> Result<String, QueueError> {
        send_message(&self.client, queue_url, body.into(), delay_secs).await
    }

    pub async fn queue_arn(&self, queue_url: &str) -> Result<String, QueueError> {
        self.queue_attributes(queue_url, &[QueueAttributeName::QueueArn])
            .await?
            .remove(&QueueAttributeName::QueueArn)
            .ok_or_else(|| QueueError::Unavailable("GetQueueAttributes: no QueueArn".to_owned()))
    }

    /// The port's `depth` of the queue at `queue_url`.
    pub(crate) async fn queue_depth(&self, queue_url: &str) -> Result<QueueDepth, QueueError> {
        let attributes = self
            .queue_attributes(
                queue_url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                ],
            )
            .await?;
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            // ApproximateAgeOfOldestMessage is a CloudWatch metric, not a queue attribute.
            oldest_age_secs: None,
        })
    }

    /// The named attributes of one queue (those SQS leaves out are absent).
    async fn queue_attributes(
        &self,
        queue_url: &str,
        names: &[QueueAttributeName],
    ) -> Result<HashMap<QueueAttributeName, String>, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", &e))?;
        Ok(out.attributes.unwrap_or_default())
    }

    /// The port's `redrive`: moves every message of `dlq_url` back to `dest_url` and returns how
    /// many moved. Uses an SQS message move task when the service offers one, otherwise (or when
    /// the task stops early) copies: send to the destination, then delete from the DLQ, so a
    /// failure leaves a message in the DLQ (or, rarely, in both) but never loses it.
    pub(crate) async fn redrive(&self, dlq_url: &str, dest_url: &str) -> Result<u64, QueueError> {
        let mut progress = |progress: &RedriveProgress| {
            tracing::debug!(method = ?progress.method, moved = progress.moved, "redrive");
        };
        let source_arn = self.queue_arn(dlq_url).await?;
        let dest_arn = self.queue_arn(dest_url).await?;
        // One try: where move tasks are unavailable (an emulator, a missing permission) retries
        // only delay the copy.
        let started = self
            .client
            .start_message_move_task()
            .source_arn(&source_arn)
            .destination_arn(&dest_arn)
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await;
        let moved = match started {
            Ok(out) => {
                let outcome = self
                    .watch_move_task(&source_arn, out.task_handle.as_deref(), &mut progress)
                    .await?;
                match outcome {
                    MoveTaskOutcome::Completed(moved) => return Ok(moved),
                    MoveTaskOutcome::Stopped(moved) => moved,
                }
            }
            Err(err) => {
                tracing::info!(
                    reason = %describe_sdk_error("StartMessageMoveTask", &err),
                    "message move task unavailable; copying messages instead"
                );
                0
            }
        };
        self.copy_messages(dlq_url, dest_url, moved, &mut progress)
            .await
    }

    /// The copy fallback of `redrive` on its own: moves every message of `dlq_url` to
    /// `dest_url` by receive, send (same body), delete; returns how many moved.
    pub async fn redrive_by_copy(
        &self,
        dlq_url: &str,
        dest_url: &str,
        mut progress: impl FnMut(&RedriveProgress) + Send,
    ) -> Result<u64, QueueError> {
        self.copy_messages(dlq_url, dest_url, 0, &mut progress)
            .await
    }

    async fn watch_move_task(
        &self,
        source_arn: &str,
        handle: Option<&str>,
        progress: &mut (impl FnMut(&RedriveProgress) + Send),
    ) -> Result<MoveTaskOutcome, QueueError> {
        loop {
            tokio::time::sleep(MOVE_TASK_POLL).await;
            let out = self
                .client
                .list_message_move_tasks()
                .source_arn(source_arn)
                .max_results(10)
                .send()
                .await
                .map_err(|e| unavailable("ListMessageMoveTasks", &e))?;
            let results = out.results.unwrap_or_default();
            let entry = match handle {
                Some(handle) => results.iter().find(|r| r.task_handle() == Some(handle)),
                // Without a handle the newest task is ours (SQS runs one per source at a time).
                None => results.iter().max_by_key(|r| r.started_timestamp()),
            };
            let Some(entry) = entry else {
                return Ok(MoveTaskOutcome::Stopped(0));
            };
            let moved = u64::try_from(entry.approximate_number_of_messages_moved()).unwrap_or(0);
            progress(&RedriveProgress {
                method: RedriveMethod::MoveTask,
                moved,
                to_move: entry
                    .approximate_number_of_messages_to_move()
                    .and_then(|n| u64::try_from(n).ok()),
            });
            match entry.status() {
                Some("COMPLETED") => return Ok(MoveTaskOutcome::Completed(moved)),
                Some("RUNNING") | Some("CANCELLING") => continue,
                status => {
                    tracing::warn!(
                        status = status.unwrap_or("unknown"),
                        "message move task stopped; copying the rest"
                    );
                    return Ok(MoveTaskOutcome::Stopped(moved));
                }
            }
        }
    }

    /// The copy fallback. Stops when two receives in a row come back empty, or after as many
    /// messages as the DLQ held at the start (plus a margin), so a consumer that dead-letters
    /// redriven messages straight back cannot keep it going forever. A message whose send fails
    /// stays in the DLQ, made visible again for the next redrive, and the redrive fails after
    /// its batch.
    async fn copy_messages(
        &self,
        dlq_url: &str,
        dest_url: &str,
        already_moved: u64,
        progress: &mut (impl FnMut(&RedriveProgress) + Send),
    ) -> Result<u64, QueueError> {
        let cap = self.queue_depth(dlq_url).await?.total() + 10;
        let mut copied = 0u64;
        let mut empty_receives = 0;
        while empty_receives < 2 && copied < cap {
            let max = u32::try_from((cap - copied).min(u64::from(MAX_RECEIVE))).unwrap_or(1);
            let batch = self.receive(dlq_url, max, 1, COPY_VISIBILITY_SECS).await?;
            if batch.is_empty() {
                empty_receives += 1;
                continue;
            }
            empty_receives = 0;
            let results = futures::future::join_all(batch.into_iter().map(|m| async move {
                // Sent before deleted: a failure in between leaves it in both, never in neither.
                if let Err(e) = self.send_raw(dest_url, m.body, 0).await {
                    if let Err(release) = self.change_visibility(dlq_url, &m.receipt_handle, 0).await {
                        tracing::warn!(error = %release, "unsent message stays hidden in the DLQ until its visibility timeout");
                    }
                    return Err(e);
                }
                self.delete(dlq_url, &m.receipt_handle).await
            }))
            .await;
            let mut first_error = None;
            for result in results {
                match result {
                    Ok(()) => copied += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            progress(&RedriveProgress {
                method: RedriveMethod::Copy,
                moved: already_moved + copied,
                to_move: None,
            });
            if let Some(err) = first_error {
                return Err(err);
            }
        }
        Ok(already_moved + copied)
    }
}

enum MoveTaskOutcome {
    Completed(u64),
    Stopped(u64),
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
