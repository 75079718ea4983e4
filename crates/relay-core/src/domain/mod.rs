//! What the relay is about, as plain data and rules: events, sources and subscriptions as stored
//! and queued (`model`), delivery attempts, ids and secrets, event-type patterns and content
//! filters, the retry schedule, the event search's filters, what the relay counts (`metrics`),
//! and the bounds of what is carried. Nothing here imports a use case or a port.

pub mod attempt;
pub mod civil;
pub mod filter;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod patterns;
pub mod policy;
pub mod retry;
pub mod search;
