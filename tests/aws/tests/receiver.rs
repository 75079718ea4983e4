//! The receiver Lambda's handler (`receiver::handle`) on function URL requests, over SQS and
//! DynamoDB on moto: refusals, deduplication, and what a queue or store outage answers.
//!
//! Needs `MOTO_ENDPOINT`; without it every test fails saying so. Each test makes its own
//! table and queues, so they run in parallel.

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use relay_core::domain::model::QueueMessage;
use relay_core::receive::MAX_DELIVERY_ID_BYTES;

/// How long GitHub waits for an answer before it counts the delivery as failed: an outage must
/// be answered (503, so the provider retries) within it.
const PROVIDER_PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn bad_requests_are_refused_and_nothing_is_queued() {
    let stack = Stack::new("bad_requests_are_refused_and_nothing_is_queued").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let receiver = stack.receiver();
    let body = PUSH_BODY.as_bytes();
    let delivery = unique();

    let wrong = invoke_receiver(
        &receiver,
        github_request("github", "not-the-secret", &delivery, "push", body, false),
    )
    .await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.body.contains("signature does not match"), "{wrong:?}");
    assert!(!wrong.body.contains(GITHUB_SECRET));
    assert!(
        !wrong
            .body
            .contains(&github_signature(GITHUB_SECRET, body)[7..])
    );

    let unsigned = invoke_receiver(
        &receiver,
        function_url_request(
            "POST",
            "/github",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", &delivery),
            ],
            Some(body),
            false,
        ),
    )
    .await;
    assert_eq!(unsigned.status, 401, "{unsigned:?}");

    let unknown = invoke_receiver(
        &receiver,
        github_request("gitlab", GITHUB_SECRET, &unique(), "push", body, false),
    )
    .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");

    let get = invoke_receiver(
        &receiver,
        function_url_request("GET", "/github", &[], None, false),
    )
    .await;
    assert_eq!(get.status, 405, "{get:?}");
    assert_eq!(
        get.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );

    // The function URL's 6 MB: the stack has a bodies bucket.
    let limit = receiver.body_limit();
    assert_eq!(limit, 6_000_000);
    let mut oversize = b"{\"pad\":\"".to_vec();
    oversize.resize(limit - 1, b'x');
    oversize.extend_from_slice(b"\"}");
    assert_eq!(oversize.len(), limit + 1);
    let too_big = invoke_receiver(
        &receiver,
        github_request("github", GITHUB_SECRET, &unique(), "push", &oversize, false),
    )
    .await;
    assert_eq!(too_big.status, 413, "{:?}", too_big.status);

    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);

    // Refused requests claim nothing: the genuine delivery with the same id is accepted.
    let genuine = invoke_receiver(
        &receiver,
        github_request("github", GITHUB_SECRET, &delivery, "push", body, false),
    )
    .await;
    assert_eq!(genuine.status, 202, "{genuine:?}");
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 1);
}

#[tokio::test]
async fn duplicate_delivery_is_answered_without_queueing_again() {
    let stack = Stack::new("duplicate_delivery_is_answered_without_queueing_again").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let receiver = stack.confirming_receiver();
    let delivery = unique();
    let send = || {
        github_request(
            "github",
            GITHUB_SECRET,
            &delivery,
            "push",
            PUSH_BODY.as_bytes(),
            false,
        )
    };

    let id = accepted_id(invoke_receiver(&receiver, send()).await).await;
    let again = invoke_receiver(&receiver, send()).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        again.json(),
        serde_json::json!({ "id": id, "duplicate": true })
    );
    // A second receiver (another Lambda instance, cold caches) agrees.
    let third = invoke_receiver(&stack.receiver(), send()).await;
    assert_eq!(third.status, 200, "{third:?}");

    let depth = stack.depth(&stack.queues.events).await;
    assert_eq!(depth.total(), 1, "{depth:?}");
    let messages = stack
        .admin()
        .receive(&stack.queues.events, 10, 1, 5)
        .await
        .expect("receive");
    assert_eq!(messages.len(), 1);
    match serde_json::from_str::<QueueMessage>(&messages[0].body).expect("queue message") {
        QueueMessage::Event(event) => {
            assert_eq!(event.id, id);
            assert_eq!(event.body.as_bytes(), PUSH_BODY.as_bytes());
        }
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn delivery_id_longer_than_a_store_key_is_refused_with_400() {
    let stack = Stack::new("delivery_id_longer_than_a_store_key_is_refused_with_400").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let receiver = stack.confirming_receiver();
    let send = |delivery: &str| {
        github_request(
            "github",
            GITHUB_SECRET,
            delivery,
            "push",
            PUSH_BODY.as_bytes(),
            false,
        )
    };
    // Over DynamoDB's 2,048-byte partition key once it is part of the dedup key: without the
    // check, every retry of this delivery got 503.
    let too_long = invoke_receiver(&receiver, send(&"d".repeat(3000))).await;
    assert_eq!(too_long.status, 400, "{too_long:?}");
    assert!(
        too_long.body.contains("the delivery id is 3000 bytes long"),
        "{too_long:?}"
    );
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);

    // The longest id the relay keeps fits the table's key and is deduplicated.
    let longest = "d".repeat(MAX_DELIVERY_ID_BYTES);
    let accepted = invoke_receiver(&receiver, send(&longest)).await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let again = invoke_receiver(&receiver, send(&longest)).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 1);
}

/// 503 within the budget, nothing queued, and the dedup claim released so the provider's
/// retry is accepted once the queue is back.
async fn queue_outage(stack: &Stack, endpoint: &str) {
    stack.add_github_source("github", GITHUB_SECRET).await;
    let delivery = unique();
    let send = || {
        github_request(
            "github",
            GITHUB_SECRET,
            &delivery,
            "push",
            PUSH_BODY.as_bytes(),
            false,
        )
    };
    let down = stack.receiver_with_queue(stack.queue_at(endpoint));

    let started = Instant::now();
    let answer = invoke_receiver(&down, send()).await;
    let took = started.elapsed();
    eprintln!("queue at {endpoint}: {} after {took:?}", answer.status);
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.body.contains("queue unavailable"), "{answer:?}");
    // The contract: the provider gets its answer before it gives up.
    assert!(took < PROVIDER_PATIENCE, "503 took {took:?}");
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);

    let up = stack.receiver();
    let retry = invoke_receiver(&up, send()).await;
    assert_eq!(retry.status, 202, "the claim was not released: {retry:?}");
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 1);
}

#[tokio::test]
async fn queue_refusing_connections_answers_503_and_releases_the_claim() {
    let stack = Stack::new("queue_refusing_connections_answers_503_and_releases_the_claim").await;
    queue_outage(&stack, &harness::closed_endpoint()).await;
}

#[tokio::test]
async fn queue_that_never_answers_gets_503_within_the_budget() {
    let stack = Stack::new("queue_that_never_answers_gets_503_within_the_budget").await;
    let (endpoint, holder) = harness::silent_endpoint().await;
    queue_outage(&stack, &endpoint).await;
    holder.abort();
}

#[tokio::test]
async fn store_outage_answers_503_and_queues_nothing() {
    let stack = Stack::new("store_outage_answers_503_and_queues_nothing").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let (silent, holder) = harness::silent_endpoint().await;
    for endpoint in [harness::closed_endpoint(), silent] {
        let down = stack.receiver_over(stack.store_at(&endpoint), stack.aws.queue.clone());
        let started = Instant::now();
        let answer = invoke_receiver(
            &down,
            github_request(
                "github",
                GITHUB_SECRET,
                &unique(),
                "push",
                PUSH_BODY.as_bytes(),
                false,
            ),
        )
        .await;
        let took = started.elapsed();
        eprintln!("store at {endpoint}: {} after {took:?}", answer.status);
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.body.contains("store unavailable"), "{answer:?}");
        assert!(took < PROVIDER_PATIENCE, "503 took {took:?}");
    }
    holder.abort();
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);
}

#[tokio::test]
async fn concurrent_copies_of_one_delivery_queue_one_event() {
    let stack = Stack::new("concurrent_copies_of_one_delivery_queue_one_event").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let delivery = unique();
    let send = || {
        github_request(
            "github",
            GITHUB_SECRET,
            &delivery,
            "push",
            PUSH_BODY.as_bytes(),
            false,
        )
    };
    // Separate receivers, as separate Lambda instances would be.
    let receivers: Vec<_> = (0..4).map(|_| stack.confirming_receiver()).collect();
    let answers =
        futures::future::join_all(receivers.iter().map(|r| invoke_receiver(r, send()))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "exactly one copy is accepted: {answers:?}"
    );
    let id = answers
        .iter()
        .find(|a| a.status == 202)
        .map(|a| a.json()["id"].clone())
        .expect("202");
    for answer in answers.iter().filter(|a| a.status != 202) {
        match answer.status {
            200 => assert_eq!(
                answer.json(),
                serde_json::json!({ "id": id, "duplicate": true })
            ),
            409 => assert!(answer.headers.contains_key("retry-after"), "{answer:?}"),
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 1);
    // After the race, every copy is a plain duplicate.
    let later = invoke_receiver(&stack.confirming_receiver(), send()).await;
    assert_eq!(later.status, 200, "{later:?}");
}
