//! Redrive: which dead-letter queues an operator's redrive empties, and in what order. Moving
//! the messages is the queue adapter's part.

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
}

/// The queues to redrive: the one named, or both, events first.
pub fn queues_to_redrive(named: Option<RedriveQueue>) -> Vec<RedriveQueue> {
    match named {
        Some(queue) => vec![queue],
        None => vec![RedriveQueue::Events, RedriveQueue::Deliveries],
    }
}
