//! The relay's logic: provider verification, Standard Webhooks signing, routing, retry policy and
//! delivery, written against small ports (`ports`) so that Lambda, `relay dev` and tests call the
//! same use cases (`receive`, `fanout`, and the operators' `admin`) over different adapters.
//!
//! - `domain`: what the relay is about (events, sources, subscriptions, attempts, filters, retry
//!   schedules, what is counted); imports no use case and no port.
//! - `signing`: HMAC and Standard Webhooks signing, shared by inbound and outbound.
//! - `ports`: what the use cases need from the outside (stores, queues, the deliverer, time).
//! - `providers`: inbound verification, one file per provider.
//! - the use cases: `receive`, `fanout`, `admin`, `reconcile`.
//! - `outbound`: the HTTP client that delivers, with its address guard.
//! - `runtime`: what runs the use cases in a process (settings, the consumer loop).

pub mod admin;
pub mod domain;
pub mod fanout;
pub mod outbound;
pub mod ports;
pub mod providers;
pub mod receive;
pub mod reconcile;
pub mod runtime;
pub mod signing;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use domain::model::*;
pub use ports::clock::{Clock, FixedClock, SystemClock};
pub use ports::{
    ActivityCounts, BodyStore, BodyStoreError, Catalog, DedupLedger, Deliverer, DeliveryLane,
    EventArchive, EventCursor, EventPage, EventQuery, EventSummary, Queue, QueueConsumer,
    QueueDepth, QueueError, QueueName, RecentActivity, Settle, Store, StoreError,
};
