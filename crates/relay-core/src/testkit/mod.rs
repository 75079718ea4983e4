//! Test support for the store port: an in-memory `Store` and the contract suite every `Store`
//! adapter runs (`store_contract_tests!`). Behind the `testkit` feature, off by default.

pub mod contract;
mod memory;

pub use memory::MemoryStore;
