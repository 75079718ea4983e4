//! Four SQS-like queues in one `messages` table: visibility timeouts, receive counts, redrive to
//! a DLQ after too many receives, receipt handles that go stale on the next receive.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use relay_core::{
    DeliveryLane, DeliveryTask, EventEnvelope, Queue, QueueConsumer, QueueDepth, QueueError,
    ReceivedMessage, Settle, StoreError,
};
use rusqlite::{Transaction, params};

use crate::backend::LocalBackend;
use crate::db::DbResult;

/// How often `wait_for_messages` looks at the file for messages sent by other processes.
const POLL_INTERVAL: Duration = Duration::from_millis(150);

/// The five local queues are the core's five queues.
pub use relay_core::ports::QueueName as LocalQueueName;

use relay_core::domain::model::QueueMessageRef;

/// A parsed receipt handle: `"<rowid>:<receipt>"`.
#[derive(Debug, Clone, Copy)]
struct Handle {
    id: i64,
    receipt: i64,
}

impl Handle {
    fn parse(handle: &str) -> Result<Handle, StoreError> {
        let bad = || StoreError::Conflict(format!("invalid receipt handle {handle:?}"));
        let (id, receipt) = handle.split_once(':').ok_or_else(bad)?;
        Ok(Handle {
            id: id.parse().map_err(|_| bad())?,
            receipt: receipt.parse().map_err(|_| bad())?,
        })
    }
}

/// A fresh receipt: random, positive and never 0 (0 marks a message nobody holds).
fn new_receipt() -> i64 {
    (rand::random::<u64>() >> 1) as i64 | 1
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_queue_error(e: StoreError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

fn insert_message(
    tx: &Transaction<'_>,
    queue: LocalQueueName,
    body: &str,
    visible_at: i64,
    sent_at: i64,
) -> DbResult<()> {
    tx.prepare_cached(
        "INSERT INTO messages (queue, body, visible_at, receive_count, receipt, sent_at) \
         VALUES (?1, ?2, ?3, 0, 0, ?4)",
    )?
    .execute(params![queue.as_str(), body, visible_at, sent_at])?;
    Ok(())
}

impl LocalBackend {
    /// The redrive threshold of a queue; `None` for a DLQ (messages stay there).
    fn max_receive_count(&self, queue: LocalQueueName) -> Option<u32> {
        let options = &self.inner.options;
        match queue {
            LocalQueueName::Events => Some(options.events_max_receive_count),
            LocalQueueName::Deliveries | LocalQueueName::FailingDeliveries => {
                Some(options.deliveries_max_receive_count)
            }
            LocalQueueName::EventsDlq | LocalQueueName::DeliveriesDlq => None,
        }
    }

    /// Puts a raw body on a queue, visible after `delay`; returns once it is durable.
    pub async fn send(
        &self,
        queue: LocalQueueName,
        body: String,
        delay: Duration,
    ) -> Result<(), StoreError> {
        let now = self.now_millis();
        let visible_at = now.saturating_add(millis(delay));
        self.write(move |tx| insert_message(tx, queue, &body, visible_at, now))
            .await?;
        // One consumer is enough for one message; waking them all would make each run a receive.
        self.notify(queue).notify_one();
        Ok(())
    }

    /// Takes up to `max` visible messages, oldest first, hiding each for `visibility`. A message
    /// that has already been received the queue's maximum number of times moves to the DLQ
    /// instead of being returned, as an SQS redrive policy does.
    async fn take_visible(
        &self,
        queue: LocalQueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now_millis();
        let hidden_until = now.saturating_add(millis(visibility));
        let redrive = self.max_receive_count(queue).zip(queue.dlq());
        let (received, moved) = self
            .write(move |tx| {
                let mut select = tx.prepare_cached(
                    "SELECT id, body, receive_count FROM messages \
                     WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
                )?;
                let mut take = tx.prepare_cached(
                    "UPDATE messages SET visible_at = ?2, receive_count = receive_count + 1, \
                     receipt = ?3 WHERE id = ?1",
                )?;
                let mut dead_letter = tx.prepare_cached(
                    "UPDATE messages SET queue = ?2, visible_at = ?3, receipt = 0 WHERE id = ?1",
                )?;
                let mut received: Vec<ReceivedMessage> = Vec::with_capacity(max.min(64));
                let mut taken_ids: Vec<i64> = Vec::new();
                let mut moved = 0usize;
                // Messages moved to the DLQ leave gaps: look again until full or none is left.
                loop {
                    let want = max - received.len();
                    let rows = select
                        .query_map(
                            params![queue.as_str(), now, i64::try_from(want).unwrap_or(i64::MAX)],
                            |row| {
                                Ok((
                                    row.get::<_, i64>(0)?,
                                    row.get::<_, String>(1)?,
                                    row.get::<_, i64>(2)?,
                                ))
                            },
                        )?
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut moved_now = 0usize;
                    for (id, body, count) in rows {
                        // With a zero visibility a taken message is still visible: skip it.
                        if taken_ids.contains(&id) {
                            continue;
                        }
                        match redrive {
                            Some((limit, dlq)) if count >= i64::from(limit) => {
                                dead_letter.execute(params![id, dlq.as_str(), now])?;
                                moved_now += 1;
                            }
                            _ => {
                                let receipt = new_receipt();
                                take.execute(params![id, hidden_until, receipt])?;
                                taken_ids.push(id);
                                received.push(ReceivedMessage {
                                    receipt: format!("{id}:{receipt}"),
                                    message_id: Some(id.to_string()),
                                    body,
                                    receive_count: u32::try_from(count.saturating_add(1))
                                        .unwrap_or(u32::MAX),
                                });
                            }
                        }
                    }
                    moved += moved_now;
                    if moved_now == 0 || received.len() >= max {
                        break;
                    }
                }
                Ok((received, moved))
            })
            .await?;
        if let (true, Some(dlq)) = (moved > 0, queue.dlq()) {
            tracing::warn!(queue = %queue, dlq = %dlq, moved, "messages exceeded the max receive count");
            self.notify(dlq).notify_waiters();
        }
        Ok(received)
    }

    /// Deletes a received message; false when the handle is stale (the message was received
    /// again since, redriven, or is already gone).
    pub async fn delete(&self, queue: LocalQueueName, handle: &str) -> Result<bool, StoreError> {
        Ok(self.delete_many(queue, &[handle]).await? == 1)
    }

    /// Deletes several received messages in one commit; returns how many were deleted.
    pub async fn delete_many<S: AsRef<str>>(
        &self,
        queue: LocalQueueName,
        handles: &[S],
    ) -> Result<u64, StoreError> {
        let handles = handles
            .iter()
            .map(|h| Handle::parse(h.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if handles.is_empty() {
            return Ok(0);
        }
        self.write(move |tx| {
            let mut delete = tx.prepare_cached(
                "DELETE FROM messages WHERE id = ?1 AND receipt = ?2 AND queue = ?3",
            )?;
            let mut deleted = 0u64;
            for h in &handles {
                deleted += delete.execute(params![h.id, h.receipt, queue.as_str()])? as u64;
            }
            Ok(deleted)
        })
        .await
    }

    /// Waits until a message of `queue` may be visible, or `timeout` passes; true in the first
    /// case. Sends from this process wake it at once; messages from other processes, and delayed
    /// or hidden ones coming due, are noticed by looking at the file every ~150 ms (or at the
    /// earliest due time, when sooner).
    pub async fn wait_for_messages(
        &self,
        queue: LocalQueueName,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = Instant::now() + timeout;
        let notify = self.notify(queue);
        loop {
            // Registered before looking, so a send between the look and the sleep still wakes us.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let earliest = self.earliest_visible_at(queue).await?;
            let now = self.now_millis();
            let due_in = match earliest {
                Some(at) if at <= now => return Ok(true),
                Some(at) => Some(Duration::from_millis(u64::try_from(at - now).unwrap_or(0))),
                None => None,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let nap = due_in
                .map_or(POLL_INTERVAL, |d| d.min(POLL_INTERVAL))
                .min(left);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn earliest_visible_at(&self, queue: LocalQueueName) -> Result<Option<i64>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT MIN(visible_at) FROM messages WHERE queue = ?1")?
                .query_row([queue.as_str()], |row| row.get(0))?)
        })
        .await
    }
}

/// Waits are served by `wait_for_messages`; a stale receipt settles nothing (`delete` matches
/// the receipt of the latest receive only).
#[async_trait]
impl QueueConsumer for LocalBackend {
    async fn receive(
        &self,
        queue: LocalQueueName,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            let received = self
                .take_visible(queue, max, visibility)
                .await
                .map_err(to_queue_error)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !received.is_empty() || left.is_zero() {
                return Ok(received);
            }
            if !self
                .wait_for_messages(queue, left)
                .await
                .map_err(to_queue_error)?
            {
                return Ok(Vec::new());
            }
        }
    }

    async fn settle(
        &self,
        queue: LocalQueueName,
        receipt: &str,
        action: Settle,
    ) -> Result<(), QueueError> {
        let settled = match action {
            Settle::Delete => self.delete(queue, receipt).await.map(|_| ()),
            Settle::Leave => Ok(()),
        };
        settled.map_err(to_queue_error)
    }

    /// Moves every message of the DLQ to its source queue in one transaction, visible now with
    /// its receive count reset.
    async fn redrive(&self, dlq: LocalQueueName) -> Result<u64, QueueError> {
        let target = dlq
            .source_queue()
            .ok_or_else(|| QueueError::Unavailable(format!("{dlq} is not a dead-letter queue")))?;
        let now = self.now_millis();
        let moved = self
            .write(move |tx| {
                let n = tx
                    .prepare_cached(
                        "UPDATE messages SET queue = ?2, visible_at = ?3, receive_count = 0, \
                         receipt = 0 WHERE queue = ?1",
                    )?
                    .execute(params![dlq.as_str(), target.as_str(), now])?;
                Ok(n as u64)
            })
            .await
            .map_err(to_queue_error)?;
        if moved > 0 {
            self.notify(target).notify_waiters();
        }
        Ok(moved)
    }

    /// A hidden message never received is delayed; one received is in flight (a redrive starts
    /// its receive count again, visible at once).
    async fn depth(&self, queue: LocalQueueName) -> Result<QueueDepth, QueueError> {
        let now = self.now_millis();
        self.read(move |conn| {
            let (visible, in_flight, delayed, oldest_sent_at): (i64, i64, i64, Option<i64>) = conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(visible_at <= ?2), 0), \
                     COALESCE(SUM(visible_at > ?2 AND receive_count > 0), 0), \
                     COALESCE(SUM(visible_at > ?2 AND receive_count = 0), 0), \
                     MIN(sent_at) \
                     FROM messages WHERE queue = ?1",
                )?
                .query_row(params![queue.as_str(), now], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(QueueDepth {
                visible: count(visible),
                in_flight: count(in_flight),
                delayed: count(delayed),
                oldest_age_secs: oldest_sent_at
                    .map(|sent_at| count(now.saturating_sub(sent_at) / 1000)),
            })
        })
        .await
        .map_err(to_queue_error)
    }
}

impl LocalBackend {
    /// Encodes `message` and sends it; `what` names it when it cannot be encoded.
    async fn send_message(
        &self,
        queue: LocalQueueName,
        message: &QueueMessageRef<'_>,
        what: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message)
            .map_err(|e| QueueError::Unavailable(format!("cannot encode the {what}: {e}")))?;
        self.send(queue, body, delay).await.map_err(to_queue_error)
    }
}

#[async_trait]
impl Queue for LocalBackend {
    async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError> {
        self.send_message(
            LocalQueueName::Events,
            &QueueMessageRef::Event(event),
            "event",
            Duration::ZERO,
        )
        .await
    }

    async fn send_delivery_on(
        &self,
        lane: DeliveryLane,
        task: &DeliveryTask,
        delay_secs: u32,
    ) -> Result<(), QueueError> {
        // Refused like SQS would, so `relay dev` catches what would fail in AWS.
        let delay = relay_core::domain::limits::queue_delay(delay_secs)?;
        self.send_message(
            lane.queue(),
            &QueueMessageRef::Delivery(task),
            "delivery",
            delay,
        )
        .await
    }

    async fn dead_letter_delivery(&self, task: &DeliveryTask) -> Result<(), QueueError> {
        self.send_message(
            LocalQueueName::DeliveriesDlq,
            &QueueMessageRef::Delivery(task),
            "delivery",
            Duration::ZERO,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn queue_names_round_trip() {
        for q in LocalQueueName::ALL {
            assert_eq!(q.as_str().parse::<LocalQueueName>().unwrap(), q);
            assert_eq!(LocalQueueName::ALL[q.index()], q);
        }
        assert!("nope".parse::<LocalQueueName>().is_err());
        assert_eq!(
            LocalQueueName::Events.dlq(),
            Some(LocalQueueName::EventsDlq)
        );
        assert_eq!(
            LocalQueueName::DeliveriesDlq.source_queue(),
            Some(LocalQueueName::Deliveries)
        );
    }

    #[test]
    fn handles_parse_and_reject_garbage() {
        let h = Handle::parse("12:345").unwrap();
        assert_eq!((h.id, h.receipt), (12, 345));
        assert!(Handle::parse("12").is_err());
        assert!(Handle::parse("a:b").is_err());
        assert!(new_receipt() > 0);
    }
}
