//! Recovering an outage on SQS and DynamoDB (moto): the event search by subscription and state
//! over the table's `EVENTS#<shard>` items, and the bulk replay (relay-core's use case, as
//! `relay --aws replay --subscription ID --since T` runs it) delivered by the real fanout.
//! A dead letter of a pair the bulk replay delivered is dropped when redriven.
//!
//! Needs `MOTO_ENDPOINT` and `python3` with `standardwebhooks` (tests/sink.py).

mod harness;

use std::time::Duration;

use harness::*;
use relay_core::admin::bulk_replay::{BulkReplay, BulkTarget, plan_bulk_replay, queue_bulk_replay};
use relay_core::admin::events::{list_events, subscription_query};
use relay_core::domain::search::{DeliveryState, StatusFilter};
use relay_core::ports::{EventQuery, QueueConsumer, QueueName};

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The ids of `subscription`'s events in `status`, newest first, each with its state.
async fn search(
    stack: &Stack,
    subscription: &str,
    status: Option<StatusFilter>,
) -> Vec<(String, Option<DeliveryState>)> {
    let query = subscription_query(
        &stack.aws.store,
        EventQuery::newest(50, now_millis()),
        subscription,
        status,
    )
    .await
    .expect("subscription query");
    list_events(&stack.aws.store, &query)
        .await
        .expect("search")
        .events
        .into_iter()
        .map(|e| (e.id, e.delivery))
        .collect()
}

#[tokio::test]
async fn an_outage_is_found_and_recovered_with_one_bulk_replay() {
    let stack = Stack::new("an_outage_is_found_and_recovered_with_one_bulk_replay").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    // Fails 6 requests: the three events' two attempts each under "1s", which dead-letter.
    let down_path = "/fail/6/down";
    let down = stack
        .add_subscription("github", &sink.url(down_path), &whsec)
        .await;
    let healthy = stack
        .add_subscription("github", &sink.url("/ok/healthy"), &whsec)
        .await;
    let receiver = stack.receiver();
    let poller = stack.poller("1s").await;
    let dlq = stack.queues.deliveries_dlq.clone();

    let mut sent = Vec::new();
    for _ in 0..3 {
        let request = github_request(
            "github",
            GITHUB_SECRET,
            &unique(),
            "push",
            PUSH_BODY.as_bytes(),
            false,
        );
        sent.push(accepted_id(invoke_receiver(&receiver, request).await).await);
    }
    let parked = poller
        .run_until(Duration::from_secs(60), async || {
            stack.depth(&dlq).await.total() >= 3
        })
        .await;
    assert!(
        parked,
        "not dead-lettered; sink got {:?}",
        sink.received().await
    );
    poller.run_for(Duration::from_secs(2)).await;
    assert_eq!(sink.received_on(down_path).await.len(), 6);

    // The search reads each subscription's state from the attempt items.
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    let dead = search(&stack, &down, Some(StatusFilter::Dead)).await;
    assert_eq!(
        dead,
        newest_first
            .iter()
            .map(|id| (id.clone(), Some(DeliveryState::Dead)))
            .collect::<Vec<_>>()
    );
    assert!(
        search(&stack, &down, Some(StatusFilter::Delivered))
            .await
            .is_empty()
    );
    let delivered: Vec<String> = search(&stack, &healthy, Some(StatusFilter::Delivered))
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(delivered, newest_first);

    // The bulk replay of what `down` missed in the last ten minutes.
    let request = BulkReplay {
        target: BulkTarget::Subscription(down.clone()),
        since_millis: now_millis() - 600_000,
        until_millis: None,
        status: Some(StatusFilter::Failed),
        types: Vec::new(),
        now_millis: now_millis(),
    };
    let plan_replay = async || {
        plan_bulk_replay(
            &stack.aws.store,
            &stack.aws.store,
            None,
            &request,
            &mut |_| {},
        )
        .await
        .expect("plan")
    };
    let plan = plan_replay().await;
    assert_eq!(plan.pairs.len(), 3);
    assert!(plan.pairs.iter().all(|p| p.attempt == 3));
    assert_eq!(
        stack.depth(&stack.queues.deliveries).await.total(),
        0,
        "a plan sends nothing"
    );
    let outcome = queue_bulk_replay(&stack.aws.store, &stack.aws.queue, &plan, &mut |_| {})
        .await
        .expect("queue the replay");
    assert_eq!((outcome.matched, outcome.enqueued), (3, 3));
    assert!(
        poller
            .run_until(Duration::from_secs(30), async || {
                sink.received_on(down_path).await.len() >= 9
            })
            .await,
        "replayed deliveries never came: {:?}",
        sink.received().await
    );
    let replayed = &sink.received_on(down_path).await[6..];
    let mut ids: Vec<&str> = replayed
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default())
        .collect();
    ids.sort();
    let mut expected: Vec<&str> = sent.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(ids, expected);
    for got in replayed {
        assert_eq!((got.status, attempt_header(got)), (200, "3"));
        assert_eq!(got.verified_with, vec![whsec.clone()]);
        assert_eq!(got.body(), PUSH_BODY.as_bytes());
    }
    let again = plan_replay().await;
    assert!(
        again.pairs.is_empty(),
        "delivered pairs match no more: {again:?}"
    );

    // The dead letters are the same pairs' attempt 3: redriven, they find it logged.
    let moved = stack
        .aws
        .queue
        .redrive(QueueName::DeliveriesDlq)
        .await
        .expect("redrive");
    assert_eq!(moved, 3);
    poller.run_for(Duration::from_secs(3)).await;
    assert_eq!(
        sink.received_on(down_path).await.len(),
        9,
        "no pair delivered twice"
    );
    for id in &sent {
        assert_eq!(
            attempt_log(&stack, id, &down).await,
            owned(&[
                (1, "http_status", "retry_scheduled"),
                (2, "http_status", "dead_lettered"),
                (3, "ok", "done"),
            ])
        );
    }
    for url in [&stack.queues.deliveries, &dlq, &stack.queues.events] {
        assert_eq!(stack.depth(url).await.total(), 0, "{url}");
    }
}
