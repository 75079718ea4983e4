//! Test support: an in-memory `Store` and the contract suite every `Store` adapter runs
//! (`store_contract_tests!`), in-memory queues and the contract suite every `QueueConsumer`
//! adapter runs (`queue_contract_tests!`), a recording queue producer and a scripted deliverer.
//! Behind the `testkit` feature, off by default.

pub mod body_contract;
pub mod contract;
mod memory;
mod memory_bodies;
mod memory_queue;
pub mod queue_contract;
mod scripted;
mod search_contract;

pub use memory::MemoryStore;
pub use memory_bodies::MemoryBodies;
pub use memory_queue::MemoryQueue;
pub use queue_contract::QueueFixture;
pub use scripted::{RecordingQueue, ScriptedDeliverer, SeenAttempt};

/// An attempt record of `evt_1` to `sub_1` (attempt 1, no status), for the metrics' tests.
pub fn attempt_record(
    outcome: crate::domain::model::AttemptOutcome,
    next: crate::domain::model::NextStep,
    at: i64,
    latency_ms: u64,
) -> crate::domain::model::AttemptRecord {
    crate::domain::model::AttemptRecord {
        event_id: "evt_1".into(),
        subscription_id: "sub_1".into(),
        attempt: 1,
        at,
        status: None,
        outcome,
        latency_ms,
        response_excerpt: String::new(),
        next,
    }
}
