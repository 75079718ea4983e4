//! A retry due hours out crosses the local deliveries queue the way it crosses SQS: as a chain
//! of new delayed messages (hops) carrying the same task, never as one message hidden for hours.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{T0, depth_pair, pinned, receive_now, source, task};
use relay_core::fanout::{Fanout, FanoutConfig};
use relay_core::outbound::delivery::Outcome;
use relay_core::testkit::ScriptedDeliverer;
use relay_core::{Catalog, Disposition, EventArchive, Queue, QueueMessage};
use relay_local::LocalQueueName as Q;

const VIS: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_two_hour_wait_hops_through_fresh_delayed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, clock) = pinned(dir.path());
    backend.put_source(&source("gh")).await.unwrap();
    backend
        .put_subscription(&relay_core::testkit::contract::subscription("sub_1", "gh"))
        .await
        .unwrap();
    let deliverer = Arc::new(ScriptedDeliverer::new(
        Duration::from_secs(5),
        [ScriptedDeliverer::answer(Outcome::Delivered {
            status: 200,
        })],
    ));
    let backend = Arc::new(backend);
    let fanout = Fanout::with_deliverer(
        backend.clone(),
        backend.clone(),
        deliverer.clone(),
        clock.clone(),
        FanoutConfig {
            cache_ttl: Duration::ZERO,
            ..FanoutConfig::default()
        },
    );

    // As the fanout sends a retry due in 2 h: at the queue's maximum delay.
    let due_ms = T0 * 1000 + 7_200_000;
    let retry = relay_core::DeliveryTask {
        not_before: due_ms,
        ..task("evt_1", 2)
    };
    backend.send_delivery(&retry, 900).await.unwrap();

    let mut wakes = 0;
    let mut now = T0;
    while deliverer.seen().is_empty() {
        assert!(wakes < 20, "never delivered");
        now += 900;
        clock.set_secs(now);
        // Nothing shows up before the hop's delay is over.
        clock.set_secs(now - 1);
        assert!(
            receive_now(&backend, Q::Deliveries, 10, VIS)
                .await
                .unwrap()
                .is_empty()
        );
        clock.set_secs(now);
        let got = receive_now(&backend, Q::Deliveries, 10, VIS).await.unwrap();
        assert_eq!(got.len(), 1, "one message at wake-up {wakes}");
        // A fresh message every time: none was held in flight since the last wake-up.
        assert_eq!(got[0].receive_count, 1);
        let carried: QueueMessage = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(carried, QueueMessage::Delivery(retry.clone()));
        let disposition = fanout.handle_message(&got[0], None).await;
        assert_eq!(disposition, Disposition::Delete, "at wake-up {wakes}");
        assert!(
            backend
                .delete(Q::Deliveries, &got[0].receipt)
                .await
                .unwrap()
        );
        wakes += 1;
    }
    assert_eq!(wakes, 8, "2 h in 15-minute hops");
    assert_eq!(now * 1000, due_ms);
    assert_eq!(deliverer.seen()[0].attempt, 2);
    assert_eq!(depth_pair(&backend, Q::Deliveries).await.unwrap(), (0, 0));
    let attempts = backend.event_attempts("evt_1").await.unwrap();
    assert_eq!(attempts.len(), 1, "the early wake-ups logged no attempt");
    assert_eq!(attempts[0].attempt, 2);
}
