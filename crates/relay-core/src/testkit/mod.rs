//! Test support: an in-memory `Store` and the contract suite every `Store` adapter runs
//! (`store_contract_tests!`), in-memory queues and the contract suite every `QueueConsumer`
//! adapter runs (`queue_contract_tests!`), a recording queue producer and a scripted deliverer.
//! Behind the `testkit` feature, off by default.

pub mod contract;
mod memory;
mod memory_queue;
pub mod queue_contract;
mod scripted;
mod search_contract;

pub use memory::MemoryStore;
pub use memory_queue::MemoryQueue;
pub use queue_contract::QueueFixture;
pub use scripted::{RecordingQueue, ScriptedDeliverer, SeenAttempt};
