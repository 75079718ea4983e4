//! The five queues in memory, producer and consumer side, following the rules of the
//! `QueueConsumer` doc comment (the queue contract suite checks it like SQLite and SQS):
//! visibility timeouts, receive counts, a DLQ after the maximum receives, delays and receipts
//! that go stale on the next receive. Time comes from a `Clock`, so a test moves it instead of
//! sleeping.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::domain::limits::queue_delay;
use crate::domain::model::{DeliveryTask, EventEnvelope, QueueMessageRef, ReceivedMessage};
use crate::ports::clock::SharedClock;
use crate::ports::{DeliveryLane, Queue, QueueConsumer, QueueDepth, QueueError, QueueName, Settle};

#[derive(Debug, Clone)]
struct Stored {
    id: u64,
    queue: QueueName,
    body: String,
    /// Milliseconds since the epoch.
    visible_at: i64,
    receive_count: u32,
    /// The receipt of the latest receive; 0 while nobody holds it.
    receipt: u64,
    /// Milliseconds since the epoch it was first sent (kept through dead-lettering and redrive).
    sent_at: i64,
}

#[derive(Debug, Default)]
struct State {
    /// In send order.
    messages: Vec<Stored>,
    next_id: u64,
    next_receipt: u64,
}

/// Four SQS-like queues in memory. The main queues dead-letter after `events_max_receives` /
/// `deliveries_max_receives` receives (5 and 10 by default, as the SAM template's).
pub struct MemoryQueue {
    state: Mutex<State>,
    clock: SharedClock,
    events_max_receives: u32,
    deliveries_max_receives: u32,
    sent: Notify,
}

impl MemoryQueue {
    pub fn new(clock: SharedClock) -> Self {
        Self::with_max_receives(clock, 5, 10)
    }

    pub fn with_max_receives(clock: SharedClock, events: u32, deliveries: u32) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock,
            events_max_receives: events,
            deliveries_max_receives: deliveries,
            sent: Notify::new(),
        }
    }

    /// The maximum receive count of a main queue; `None` for a DLQ.
    pub fn max_receives(&self, queue: QueueName) -> Option<u32> {
        match queue {
            QueueName::Events => Some(self.events_max_receives),
            QueueName::Deliveries | QueueName::FailingDeliveries => {
                Some(self.deliveries_max_receives)
            }
            QueueName::EventsDlq | QueueName::DeliveriesDlq => None,
        }
    }

    /// Puts a raw body on a queue, visible after `delay`.
    pub fn send_raw(&self, queue: QueueName, body: impl Into<String>, delay: Duration) {
        let now = self.clock.now_millis();
        let visible_at = now.saturating_add(millis(delay));
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.messages.push(Stored {
            id,
            queue,
            body: body.into(),
            visible_at,
            receive_count: 0,
            receipt: 0,
            sent_at: now,
        });
        drop(state);
        self.sent.notify_waiters();
    }

    /// The bodies on a queue, in send order, whatever their visibility.
    pub fn bodies(&self, queue: QueueName) -> Vec<String> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.queue == queue)
            .map(|m| m.body.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves whole messages behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, queue: QueueName, max: usize, visibility: Duration) -> Vec<ReceivedMessage> {
        let now = self.clock.now_millis();
        let hidden_until = now.saturating_add(millis(visibility));
        let redrive = self.max_receives(queue).zip(queue.dlq());
        let mut state = self.lock();
        let mut order: Vec<usize> = (0..state.messages.len())
            .filter(|&i| state.messages[i].queue == queue && state.messages[i].visible_at <= now)
            .collect();
        order.sort_by_key(|&i| (state.messages[i].visible_at, state.messages[i].id));
        let mut received = Vec::new();
        for i in order {
            if received.len() >= max {
                break;
            }
            state.next_receipt += 1;
            let receipt = state.next_receipt;
            let message = &mut state.messages[i];
            match redrive {
                Some((limit, dlq)) if message.receive_count >= limit => {
                    message.queue = dlq;
                    message.visible_at = now;
                    message.receipt = 0;
                }
                _ => {
                    message.receive_count += 1;
                    message.visible_at = hidden_until;
                    message.receipt = receipt;
                    received.push(ReceivedMessage {
                        receipt: format!("{}:{receipt}", message.id),
                        message_id: Some(message.id.to_string()),
                        body: message.body.clone(),
                        receive_count: message.receive_count,
                    });
                }
            }
        }
        received
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn encode(message: &QueueMessageRef<'_>) -> Result<String, QueueError> {
    serde_json::to_string(message)
        .map_err(|e| QueueError::Unavailable(format!("cannot encode the message: {e}")))
}

/// A receipt as `take` writes it: `<message id>:<receipt>`.
fn parse_receipt(receipt: &str) -> Option<(u64, u64)> {
    let (id, receipt) = receipt.split_once(':')?;
    Some((id.parse().ok()?, receipt.parse().ok()?))
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError> {
        self.send_raw(
            QueueName::Events,
            encode(&QueueMessageRef::Event(event))?,
            Duration::ZERO,
        );
        Ok(())
    }

    async fn send_delivery_on(
        &self,
        lane: DeliveryLane,
        task: &DeliveryTask,
        delay_secs: u32,
    ) -> Result<(), QueueError> {
        let delay = queue_delay(delay_secs)?;
        self.send_raw(
            lane.queue(),
            encode(&QueueMessageRef::Delivery(task))?,
            delay,
        );
        Ok(())
    }

    async fn dead_letter_delivery(&self, task: &DeliveryTask) -> Result<(), QueueError> {
        self.send_raw(
            QueueName::DeliveriesDlq,
            encode(&QueueMessageRef::Delivery(task))?,
            Duration::ZERO,
        );
        Ok(())
    }
}

#[async_trait]
impl QueueConsumer for MemoryQueue {
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let notified = self.sent.notified();
        let received = self.take(queue, max, visibility);
        if !received.is_empty() || wait.is_zero() {
            return Ok(received);
        }
        // A send meanwhile is the only thing that can make a message visible on a clock that a
        // test moves; wait for one, within `wait`.
        let _ = tokio::time::timeout(wait, notified).await;
        Ok(self.take(queue, max, visibility))
    }

    async fn settle(
        &self,
        queue: QueueName,
        receipt: &str,
        action: Settle,
    ) -> Result<(), QueueError> {
        let Some((id, receipt)) = parse_receipt(receipt) else {
            return Err(QueueError::Unavailable(format!(
                "invalid receipt {receipt:?}"
            )));
        };
        let mut state = self.lock();
        // A stale receipt matches nothing and settles nothing.
        let Some(index) = state
            .messages
            .iter()
            .position(|m| m.id == id && m.queue == queue && m.receipt == receipt)
        else {
            return Ok(());
        };
        match action {
            Settle::Delete => {
                state.messages.remove(index);
            }
            Settle::Leave => {}
        }
        Ok(())
    }

    async fn redrive(&self, dlq: QueueName) -> Result<u64, QueueError> {
        let Some(target) = dlq.source_queue() else {
            return Err(QueueError::Unavailable(format!(
                "{dlq} is not a dead-letter queue"
            )));
        };
        let now = self.clock.now_millis();
        let mut moved = 0;
        for message in self.lock().messages.iter_mut().filter(|m| m.queue == dlq) {
            message.queue = target;
            message.visible_at = now;
            message.receive_count = 0;
            message.receipt = 0;
            moved += 1;
        }
        self.sent.notify_waiters();
        Ok(moved)
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        let now = self.clock.now_millis();
        let mut depth = QueueDepth::default();
        for message in self.lock().messages.iter().filter(|m| m.queue == queue) {
            let age_secs = u64::try_from(now.saturating_sub(message.sent_at) / 1000).unwrap_or(0);
            depth.oldest_age_secs = depth.oldest_age_secs.max(Some(age_secs));
            if message.visible_at <= now {
                depth.visible += 1;
            } else if message.receive_count == 0 {
                depth.delayed += 1;
            } else {
                depth.in_flight += 1;
            }
        }
        Ok(depth)
    }
}
