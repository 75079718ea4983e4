//! Redrive: which dead-letter queues an operator's redrive empties, in what order, through the
//! `QueueConsumer` port. Moving the messages is the queue adapter's part.

use super::AdminError;
use crate::ports::{QueueConsumer, QueueName};

/// A queue with a dead-letter queue that redrive moves back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedriveQueue {
    Events,
    Deliveries,
}

impl RedriveQueue {
    pub fn name(self) -> &'static str {
        match self {
            RedriveQueue::Events => "events",
            RedriveQueue::Deliveries => "deliveries",
        }
    }

    /// The dead-letter queue that redrive empties into this queue.
    pub fn dead_letter_queue(self) -> QueueName {
        match self {
            RedriveQueue::Events => QueueName::EventsDlq,
            RedriveQueue::Deliveries => QueueName::DeliveriesDlq,
        }
    }
}

/// The queues to redrive: the one named, or both, events first.
pub fn queues_to_redrive(named: Option<RedriveQueue>) -> Vec<RedriveQueue> {
    match named {
        Some(queue) => vec![queue],
        None => vec![RedriveQueue::Events, RedriveQueue::Deliveries],
    }
}

/// Moves the dead letters of the queue named (of both, events first, when none is) back to
/// their queue. `moved` hears each queue's count as soon as that queue is done, so what was
/// moved is known even when a later queue fails.
pub async fn redrive(
    consumer: &dyn QueueConsumer,
    named: Option<RedriveQueue>,
    mut moved: impl FnMut(RedriveQueue, u64),
) -> Result<(), AdminError> {
    for queue in queues_to_redrive(named) {
        let count = consumer.redrive(queue.dead_letter_queue()).await?;
        moved(queue, count);
    }
    Ok(())
}
