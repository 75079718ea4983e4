//! Embedded SQLite adapters of the relay's ports, used by `relay dev` and the admin CLI.
//!
//! One file (`DIR/relay.db`) holds the store and four SQS-like queues (`events`, `events-dlq`,
//! `deliveries`, `deliveries-dlq`); several processes may share it. Writes go through one
//! writer thread per process that commits in groups (see `writer`), reads through a small pool
//! of read-only connections. WAL mode keeps readers and the writer out of each other's way, and
//! `synchronous=FULL` makes every acknowledged write survive a crash, as the SQS contract needs.

mod activity;
mod backend;
pub mod bodies;
mod db;
pub mod prometheus;
mod queue;
mod store;
mod turns;
pub mod wiring;
mod writer;

pub use backend::{DB_FILE, LocalBackend, LocalOptions};
pub use bodies::LocalBodies;
pub use queue::LocalQueueName;
pub use wiring::{LocalRelay, LocalSettings, wire};
pub use writer::WriterStats;
