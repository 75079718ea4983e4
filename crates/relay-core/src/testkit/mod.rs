//! Test support: an in-memory `Store` and the contract suite every `Store` adapter runs
//! (`store_contract_tests!`), a recording queue producer and a scripted deliverer. Behind the
//! `testkit` feature, off by default.

pub mod contract;
mod memory;
mod scripted;

pub use memory::MemoryStore;
pub use scripted::{RecordingQueue, ScriptedDeliverer, SeenAttempt};
