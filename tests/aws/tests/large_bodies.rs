//! Bodies over the inline limit (256 KiB) through the real handlers on moto: stored once in the
//! bodies bucket (S3), the messages and the event item carrying the key and SHA-256, delivered
//! byte for byte and checked by the sink with the official Standard Webhooks library; an object
//! gone before delivery gives `payload_expired` and a dead letter; a failed enqueue after the
//! object write leaves neither a message nor the object.

mod harness;

use std::time::Duration;

use harness::*;
use relay_core::ports::{BodyStore, EventArchive};

/// A JSON body of exactly `len` bytes, its content pseudo-random (hex of `binary_bytes`).
fn json_body(len: usize) -> Vec<u8> {
    let (head, tail) = (&b"{\"action\":\"opened\",\"blob\":\""[..], &b"\"}"[..]);
    let mut body = head.to_vec();
    let blob = hex::encode(binary_bytes((len - head.len() - tail.len()).div_ceil(2)));
    body.extend_from_slice(&blob.as_bytes()[..len - head.len() - tail.len()]);
    body.extend_from_slice(tail);
    assert_eq!(body.len(), len);
    body
}

async fn objects(stack: &Stack) -> Vec<String> {
    let bucket = stack.settings.bodies_bucket.clone().expect("bucket");
    relay_aws::S3Bodies::client(&stack.sdk)
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("ListObjectsV2")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_5_mb_body_is_delivered_byte_identical_through_the_bucket() {
    let stack = Stack::new("a_5_mb_body_is_delivered_byte_identical_through_the_bucket").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let sub = stack
        .add_subscription("github", &sink.url("/ok/large"), &whsec)
        .await;
    let receiver = stack.receiver();
    let body = json_body(5 * 1024 * 1024);
    let event_id = accepted_id(
        invoke_receiver(
            &receiver,
            github_request("github", GITHUB_SECRET, &unique(), "push", &body, false),
        )
        .await,
    )
    .await;

    // The object is written before the 202, under the event's key; the message is small.
    assert_eq!(objects(&stack).await, [format!("bodies/{event_id}")]);
    let message = stack
        .admin()
        .receive(&stack.queues.events, 1, 1, 0)
        .await
        .expect("receive");
    let queued = &message.first().expect("the event's message").body;
    assert!(queued.len() < 1024, "{} bytes on the queue", queued.len());

    let poller = stack.poller("1s").await;
    assert!(
        poller
            .run_until(room(Duration::from_secs(60)), async || {
                !sink.received_on("/ok/large").await.is_empty()
            })
            .await,
        "nothing delivered"
    );
    let got = sink.received_on("/ok/large").await;
    let delivered = &got[0];
    assert!(delivered.body() == body, "body changed on the way");
    assert_eq!(delivered.header("webhook-id"), Some(event_id.as_str()));
    assert!(signed_with(delivered, &whsec));
    // The sink's check with the official Standard Webhooks library.
    assert_eq!(delivered.verified_with, vec![whsec.clone()]);
    assert_eq!(
        attempt_log(&stack, &event_id, &sub).await,
        owned(&[(1, "ok", "done")])
    );
    // The event item carries the claim check, not the body.
    let stored = stack
        .aws
        .store
        .get_event(&event_id)
        .await
        .expect("get event")
        .expect("event stored");
    let claim = stored.stored_body.expect("claim check");
    assert_eq!(claim.key, format!("bodies/{event_id}"));
    assert_eq!(claim.bytes, body.len() as u64);
    assert_eq!(claim.sha256, relay_core::ports::bodies::sha256_hex(&body));
    assert!(stored.body.is_empty());
}

#[tokio::test]
async fn a_body_gone_before_delivery_is_dead_lettered_as_payload_expired() {
    let stack = Stack::new("a_body_gone_before_delivery_is_dead_lettered_as_payload_expired").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let sub = stack
        .add_subscription("github", &sink.url("/ok/expired"), &whsec)
        .await;
    let receiver = stack.receiver();
    let body = json_body(300_000);
    let event_id = accepted_id(
        invoke_receiver(
            &receiver,
            github_request("github", GITHUB_SECRET, &unique(), "push", &body, false),
        )
        .await,
    )
    .await;
    // The object expires (here: is deleted) before the fanout gets to the event.
    let bodies = stack.aws.bodies.clone().expect("bucket");
    bodies
        .delete(&relay_core::ports::bodies::body_key(&event_id))
        .await
        .expect("delete");

    let poller = stack.poller("1s").await;
    let pumped = poller.pump(&poller.events_url, 2).await;
    assert_eq!(pumped.received, 1);
    assert!(pumped.failed.is_empty(), "not retried: {pumped:?}");
    assert_eq!(
        attempt_log(&stack, &event_id, &sub).await,
        owned(&[(1, "payload_expired", "dead_lettered")])
    );
    assert!(sink.received().await.is_empty(), "nothing sent");
    let parked = stack
        .admin()
        .receive(&stack.queues.deliveries_dlq, 1, 2, 0)
        .await
        .expect("receive");
    let task: serde_json::Value =
        serde_json::from_str(&parked.first().expect("a dead letter").body).expect("JSON");
    assert_eq!(task["event"]["id"], event_id.as_str());
    assert_eq!(task["attempt"], 2);
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 0);
}

#[tokio::test]
async fn a_failed_enqueue_after_the_object_write_leaves_no_object_and_no_delivery() {
    let stack =
        Stack::new("a_failed_enqueue_after_the_object_write_leaves_no_object_and_no_delivery")
            .await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    stack
        .add_subscription("github", &sink.url("/ok/unaccepted"), &whsec)
        .await;
    // The events queue's URL points nowhere: the object is written, the send fails.
    let receiver = stack.receiver_with_queue(stack.queue_at(&closed_endpoint()));
    let body = json_body(400_000);
    let delivery = unique();
    let refused = invoke_receiver(
        &receiver,
        github_request("github", GITHUB_SECRET, &delivery, "push", &body, false),
    )
    .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(objects(&stack).await.is_empty(), "the object was removed");

    // Nothing to deliver; the provider's retry (same delivery id) is accepted and delivered.
    let poller = stack.poller("1s").await;
    poller.run_for(Duration::from_secs(2)).await;
    assert!(sink.received().await.is_empty());
    let accepted = accepted_id(
        invoke_receiver(
            &stack.receiver(),
            github_request("github", GITHUB_SECRET, &delivery, "push", &body, false),
        )
        .await,
    )
    .await;
    assert!(
        poller
            .run_until(room(Duration::from_secs(60)), async || {
                !sink.received_on("/ok/unaccepted").await.is_empty()
            })
            .await
    );
    let got = sink.received_on("/ok/unaccepted").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), Some(accepted.as_str()));
    assert!(got[0].body() == body);
}

#[tokio::test]
async fn a_body_over_6_mb_is_refused_naming_the_limit() {
    let stack = Stack::new("a_body_over_6_mb_is_refused_naming_the_limit").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let receiver = stack.receiver();
    let body = json_body(6_000_001);
    let refused = invoke_receiver(
        &receiver,
        github_request("github", GITHUB_SECRET, &unique(), "push", &body, false),
    )
    .await;
    assert_eq!(refused.status, 413);
    let error = refused.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("limit of 6000000 bytes"), "{error}");
    assert!(objects(&stack).await.is_empty());
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);
}
