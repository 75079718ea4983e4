//! The relay's use cases over the local backend, built in one place from settings: `relay dev`,
//! the bench and tests get the same `Receiver`, `Fanout` and queue ports.

use std::sync::{Arc, Mutex};

use relay_core::domain::metrics::Tally;
use relay_core::fanout::{Fanout, FanoutConfig};
use relay_core::outbound::delivery::{DeliveryClient, DeliveryClientError, DeliveryConfig};
use relay_core::ports::clock::SharedClock;
use relay_core::receive::{Receiver, ReceiverConfig};
use relay_core::{BodyStore, Queue, QueueConsumer};

use crate::{LocalBackend, LocalBodies};

/// Everything the use cases are tuned with.
#[derive(Debug, Clone, Default)]
pub struct LocalSettings {
    pub receiver: ReceiverConfig,
    pub fanout: FanoutConfig,
    pub delivery: DeliveryConfig,
}

impl LocalSettings {
    /// The same `RELAY_*` tunables the Lambdas read (`relay_core::runtime::settings`); unset ones keep
    /// their defaults.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, relay_core::runtime::settings::SettingError> {
        let receiver = relay_core::runtime::settings::receiver_config(lookup)?;
        let (fanout, delivery) = relay_core::runtime::settings::fanout_config(lookup)?;
        Ok(Self {
            receiver,
            fanout,
            delivery,
        })
    }
}

/// The receiver, the fanout and the queue ports over one local backend.
#[derive(Clone)]
pub struct LocalRelay {
    pub backend: LocalBackend,
    pub receiver: Arc<Receiver>,
    pub fanout: Arc<Fanout>,
    pub producer: Arc<dyn Queue>,
    pub consumer: Arc<dyn QueueConsumer>,
    /// Bodies too large to travel inline (`events show` reads them).
    pub bodies: Arc<dyn BodyStore>,
    /// What the receiver answered and the fanout attempted (`relay dev` serves it at /metrics).
    pub tally: Arc<Mutex<Tally>>,
}

/// Why the use cases could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Delivery(#[from] DeliveryClientError),
    #[error(transparent)]
    Bodies(#[from] relay_core::BodyStoreError),
}

/// Builds the use cases over `backend` from `settings`, large bodies kept in the data dir
/// (`LocalBodies`) for the event retention; fails when the delivery client or the bodies
/// directory cannot be set up.
pub fn wire(
    backend: &LocalBackend,
    settings: LocalSettings,
    clock: SharedClock,
) -> Result<LocalRelay, WireError> {
    let data_dir = backend.path().parent().unwrap_or(std::path::Path::new("."));
    let retention =
        std::time::Duration::from_secs(u64::try_from(settings.fanout.retention_secs).unwrap_or(0));
    let bodies: Arc<dyn BodyStore> = Arc::new(LocalBodies::open(data_dir, retention)?);
    let store = Arc::new(backend.clone());
    let producer: Arc<dyn Queue> = Arc::new(backend.clone());
    let tally = Arc::new(Mutex::new(Tally::new()));
    let receiver = Arc::new(
        Receiver::new(
            Arc::clone(&store),
            Arc::clone(&producer),
            Arc::clone(&clock),
            settings.receiver,
        )
        .with_bodies(Arc::clone(&bodies))
        .with_tally(Arc::clone(&tally)),
    );
    let fanout = Arc::new(
        Fanout::new(
            store,
            Arc::clone(&producer),
            DeliveryClient::new(settings.delivery)?,
            clock,
            settings.fanout,
        )
        .with_bodies(Arc::clone(&bodies))
        .with_tally(Arc::clone(&tally)),
    );
    Ok(LocalRelay {
        backend: backend.clone(),
        receiver,
        fanout,
        producer,
        consumer: Arc::new(backend.clone()),
        bodies,
        tally,
    })
}
