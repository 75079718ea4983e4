//! `SqsAdmin`: the calls by queue URL that no port covers (receive, delete, visibility, raw
//! sends, the copy redrive with its progress), for the CLI and the tests.

use super::*;

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
        send_message(&self.client, queue_url, body.into(), delay_secs, None).await
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
