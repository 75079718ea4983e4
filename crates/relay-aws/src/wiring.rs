//! The relay's use cases over the AWS adapters, built in one place from settings: both Lambda
//! mains and the end-to-end tests get the same `Receiver` and `Fanout`.

use std::sync::Arc;

use anyhow::Context;
use relay_core::fanout::Fanout;
use relay_core::outbound::delivery::DeliveryClient;
use relay_core::ports::clock::SharedClock;
use relay_core::receive::Receiver;

use crate::{AwsSettings, DynamoStore, SqsQueue};

/// The receiver over `store` and `queue`, tuned by the `RELAY_*` variables `lookup` reads. Fails
/// when a variable is invalid or the events queue URL is missing, so a cold start fails instead
/// of a request.
pub fn receiver(
    store: DynamoStore,
    queue: SqsQueue,
    settings: &AwsSettings,
    lookup: &dyn Fn(&str) -> Option<String>,
    clock: SharedClock,
) -> anyhow::Result<Receiver> {
    let config =
        relay_core::runtime::settings::receiver_config(lookup).map_err(anyhow::Error::msg)?;
    settings.require_events_queue_url()?;
    Ok(Receiver::new(
        Arc::new(store),
        Arc::new(queue),
        clock,
        config,
    ))
}

/// The fanout over `store` and `queue`, with the fanout's and the delivery client's `RELAY_*`
/// tunables. Fails when a variable is invalid or a deliveries queue URL is missing.
pub fn fanout(
    store: DynamoStore,
    queue: SqsQueue,
    settings: &AwsSettings,
    lookup: &dyn Fn(&str) -> Option<String>,
    clock: SharedClock,
) -> anyhow::Result<Fanout> {
    let (fanout_config, delivery_config) =
        relay_core::runtime::settings::fanout_config(lookup).map_err(anyhow::Error::msg)?;
    settings.require_deliveries_queue_url()?;
    settings.require_deliveries_dlq_url()?;
    let client =
        DeliveryClient::new(delivery_config).context("cannot build the delivery client")?;
    Ok(Fanout::new(
        Arc::new(store),
        Arc::new(queue),
        client,
        clock,
        fanout_config,
    ))
}
