//! The relay's logic: provider verification, Standard Webhooks signing, routing, retry policy and
//! delivery, written against small ports (`ports`) so that Lambda, `relay dev` and tests call the
//! same use cases (`receive`, `fanout`, and the operators' `admin`) over different adapters.

pub mod admin;
pub mod attempt;
pub mod bodies;
pub mod cache;
pub mod civil;
pub mod clock;
pub mod consume;
pub mod delivery;
pub mod fanout;
pub mod filter;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod netguard;
pub mod patterns;
pub mod ports;
pub mod providers;
pub mod receive;
pub mod reconcile;
pub mod retry;
pub mod search;
pub mod settings;
pub mod signing;
pub mod subscriptions;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use clock::{Clock, FixedClock, SystemClock};
pub use model::*;
pub use ports::{
    ActivityCounts, BodyStore, BodyStoreError, Catalog, DedupLedger, Deliverer, EventArchive,
    EventCursor, EventPage, EventQuery, EventSummary, Queue, QueueConsumer, QueueDepth, QueueError,
    QueueName, RecentActivity, Settle, Store, StoreError,
};
