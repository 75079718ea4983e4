//! The relay's use cases over the local backend, built in one place from settings: `relay dev`,
//! the bench and tests get the same `Receiver`, `Fanout` and queue ports.

use std::sync::{Arc, Mutex};

use relay_core::domain::metrics::Tally;
use relay_core::fanout::{Fanout, FanoutConfig};
use relay_core::outbound::delivery::{DeliveryClient, DeliveryClientError, DeliveryConfig};
use relay_core::ports::clock::SharedClock;
use relay_core::receive::{Receiver, ReceiverConfig};
use relay_core::{Queue, QueueConsumer};

use crate::LocalBackend;

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
    /// What the receiver answered and the fanout attempted (`relay dev` serves it at /metrics).
    pub tally: Arc<Mutex<Tally>>,
}

/// Builds the use cases over `backend` from `settings`; fails when the delivery client cannot
/// be built.
pub fn wire(
    backend: &LocalBackend,
    settings: LocalSettings,
    clock: SharedClock,
) -> Result<LocalRelay, DeliveryClientError> {
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
        .with_tally(Arc::clone(&tally)),
    );
    Ok(LocalRelay {
        backend: backend.clone(),
        receiver,
        fanout,
        producer,
        consumer: Arc::new(backend.clone()),
        tally,
    })
}
