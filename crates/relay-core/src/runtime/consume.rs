//! Consuming a queue through the `QueueConsumer` port: receive, hand to the fanout, settle each
//! message as its disposition says (`Settle::for_disposition`). `consume` runs for as long as it
//! is polled (`relay dev`); `pump` is one receive and one batch (the end-to-end tests' stand-in
//! for Lambda's event source). The fanout Lambda receives through its event source mapping and
//! maps dispositions with the same `Settle::for_disposition`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{error, warn};

use crate::domain::model::{Disposition, ReceivedMessage};
use crate::fanout::Fanout;
use crate::ports::{QueueConsumer, QueueError, QueueName, Settle};

/// How `consume` takes messages from one queue.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    pub queue: QueueName,
    /// Hides each received message this long: longer than its slowest handling.
    pub visibility: Duration,
    /// Messages handled at once.
    pub max_in_flight: usize,
    /// Most messages taken in one receive.
    pub receive_max: usize,
    /// How long one receive waits for a message.
    pub wait: Duration,
    /// Pause after a failed receive, so a broken queue is not hammered.
    pub retry_pause: Duration,
}

impl ConsumeOptions {
    pub fn new(queue: QueueName, visibility: Duration) -> Self {
        Self {
            queue,
            visibility,
            max_in_flight: 256,
            receive_max: 64,
            wait: Duration::from_secs(1),
            retry_pause: Duration::from_millis(500),
        }
    }
}

/// Settles one handled message; a failure is logged (the message then comes back after its
/// visibility timeout, and the fanout skips what it already settled).
pub async fn settle(
    consumer: &dyn QueueConsumer,
    queue: QueueName,
    message: &ReceivedMessage,
    disposition: Disposition,
) -> Result<Settle, QueueError> {
    let action = Settle::for_disposition(disposition);
    if let Err(e) = consumer.settle(queue, &message.receipt, action).await {
        warn!(queue = %queue, message_id = %message.name(), action = ?action, error = %e, "could not settle a message");
        return Err(e);
    }
    Ok(action)
}

/// What one message of a `pump` came to.
#[derive(Debug, Clone)]
pub struct Pumped {
    pub message: ReceivedMessage,
    pub disposition: Disposition,
    /// The settle applied; `None` when it failed.
    pub settled: Option<Settle>,
}

/// One receive of up to `max` messages (waiting up to `wait`), the batch through
/// `Fanout::handle_batch` (by `deadline`, if any), then each message settled.
pub async fn pump(
    consumer: &dyn QueueConsumer,
    fanout: &Fanout,
    queue: QueueName,
    max: usize,
    wait: Duration,
    visibility: Duration,
    deadline: Option<Instant>,
) -> Result<Vec<Pumped>, QueueError> {
    let messages = consumer.receive(queue, max, wait, visibility).await?;
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let dispositions = fanout.handle_batch(messages.clone(), deadline).await;
    let mut pumped = Vec::with_capacity(messages.len());
    for message in messages {
        let disposition = dispositions
            .iter()
            .find(|(receipt, _)| *receipt == message.receipt)
            .map_or(Disposition::Retry, |(_, d)| *d);
        let settled = settle(consumer, queue, &message, disposition).await.ok();
        pumped.push(Pumped {
            message,
            disposition,
            settled,
        });
    }
    Ok(pumped)
}

/// Receives from one queue for as long as it is polled. Each message is handled on its own and
/// settled as soon as its own handling ends, so a subscriber that hangs until the delivery
/// timeout holds back only its own messages; new messages are taken while slow ones are in
/// flight, up to `max_in_flight`. A handling that panics is logged and its message left for its
/// visibility timeout (the max receive count moves it to the DLQ if it keeps failing). Dropping
/// the future abandons the messages in flight, which the queue hands out again later.
pub async fn consume(
    consumer: Arc<dyn QueueConsumer>,
    fanout: Arc<Fanout>,
    options: ConsumeOptions,
) {
    let queue = options.queue;
    let max_in_flight = options.max_in_flight.max(1);
    let permits = Arc::new(Semaphore::new(max_in_flight));
    // Dropped with this future: aborts the handlings in flight.
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        let Ok(first) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let free = 1 + permits.available_permits();
        let received = consumer
            .receive(
                queue,
                free.min(options.receive_max.max(1)),
                options.wait,
                options.visibility,
            )
            .await;
        let messages = match received {
            Ok(messages) => messages,
            Err(e) => {
                drop(first);
                warn!(queue = %queue, error = %e, "receive failed; retrying");
                tokio::time::sleep(options.retry_pause).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        // An attempt ends before the message shows again (a subscription's own timeout may be
        // longer than the delivery timeout the visibility was chosen for).
        let visible_again = std::time::Instant::now() + options.visibility;
        let mut first = Some(first);
        for message in messages {
            // No more were received than there were free permits, and only this loop takes
            // them, so this does not wait.
            let permit = match first.take() {
                Some(permit) => permit,
                None => match Arc::clone(&permits).acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let consumer = Arc::clone(&consumer);
            let fanout = Arc::clone(&fanout);
            in_flight.spawn(async move {
                handle_and_settle(consumer.as_ref(), &fanout, queue, message, visible_again).await;
                drop(permit);
            });
        }
    }
}

async fn handle_and_settle(
    consumer: &dyn QueueConsumer,
    fanout: &Fanout,
    queue: QueueName,
    message: ReceivedMessage,
    deadline: std::time::Instant,
) {
    let handled = AssertUnwindSafe(fanout.handle_message(&message, Some(deadline)))
        .catch_unwind()
        .await;
    match handled {
        Ok(disposition) => {
            let _ = settle(consumer, queue, &message, disposition).await;
        }
        Err(panic) => {
            error!(
                queue = %queue,
                message_id = %message.name(),
                panic = %panic_text(panic.as_ref()),
                "handling a message panicked; it is left for its visibility timeout"
            );
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::model::DeliveryTask;
    use crate::fanout::FanoutConfig;
    use crate::ports::clock::FixedClock;
    use crate::ports::{Catalog, Queue};
    use crate::testkit::contract::{event, source, subscription};
    use crate::testkit::{MemoryQueue, MemoryStore, ScriptedDeliverer};

    const NOW: i64 = 1_700_000_000;

    async fn setup() -> (Arc<MemoryQueue>, Arc<Fanout>, Arc<FixedClock>) {
        let clock = FixedClock::at_secs(NOW);
        let store = Arc::new(MemoryStore::new());
        store.put_source(&source("gh")).await.unwrap();
        store
            .put_subscription(&subscription("sub_1", "gh"))
            .await
            .unwrap();
        let queue = Arc::new(MemoryQueue::new(clock.clone()));
        let deliverer = Arc::new(ScriptedDeliverer::new(Duration::from_secs(5), []));
        let fanout = Arc::new(Fanout::with_deliverer(
            store,
            queue.clone(),
            deliverer,
            clock.clone(),
            FanoutConfig::default(),
        ));
        (queue, fanout, clock)
    }

    /// One pump of the deliveries queue, taking what is visible without waiting.
    async fn pump_deliveries(queue: &MemoryQueue, fanout: &Fanout) -> Vec<Pumped> {
        pump(
            queue,
            fanout,
            QueueName::Deliveries,
            10,
            Duration::ZERO,
            Duration::from_secs(30),
            None,
        )
        .await
        .unwrap()
    }

    fn early_task(not_before_millis: i64) -> DeliveryTask {
        DeliveryTask {
            event: event("evt_1", NOW * 1000),
            subscription_id: "sub_1".into(),
            attempt: 2,
            schedule_step: 1,
            not_before: not_before_millis,
        }
    }

    #[tokio::test]
    async fn pump_deletes_what_the_fanout_delivered() {
        let (queue, fanout, _clock) = setup().await;
        queue.send_delivery(&early_task(0), 0).await.unwrap();
        let pumped = pump_deliveries(&queue, &fanout).await;
        assert_eq!(pumped.len(), 1);
        assert_eq!(pumped[0].settled, Some(Settle::Delete));
        assert_eq!(queue.depth(QueueName::Deliveries).await.unwrap().total(), 0);
    }

    #[tokio::test]
    async fn an_early_delivery_hops_and_holds_nothing_in_flight() {
        let (queue, fanout, clock) = setup().await;
        // Due in ten minutes: it woke early and is sent again, delayed for what is left.
        let due = (NOW + 600) * 1000;
        queue.send_delivery(&early_task(due), 0).await.unwrap();
        let pumped = pump_deliveries(&queue, &fanout).await;
        assert!(matches!(pumped[0].settled, Some(Settle::Delete)));
        let depth = queue.depth(QueueName::Deliveries).await.unwrap();
        assert_eq!((depth.visible, depth.in_flight, depth.delayed), (0, 0, 1));
        clock.set_secs(NOW + 601);
        assert_eq!(queue.depth(QueueName::Deliveries).await.unwrap().visible, 1);
    }

    #[tokio::test]
    async fn consume_settles_each_message_and_stops_when_dropped() {
        let (queue, fanout, _clock) = setup().await;
        for _ in 0..3 {
            queue.send_delivery(&early_task(0), 0).await.unwrap();
        }
        let options = ConsumeOptions {
            wait: Duration::from_millis(20),
            ..ConsumeOptions::new(QueueName::Deliveries, Duration::from_secs(30))
        };
        let running = tokio::spawn(consume(queue.clone(), fanout, options));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while queue.depth(QueueName::Deliveries).await.unwrap().total() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not consumed in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running.abort();
    }
}
