//! From the receiver to the subscriber: the real `receiver::handle` and `fanout::handle` over
//! SQS and DynamoDB on moto, a poller in the role of Lambda's SQS event source, and deliveries to
//! `tests/sink.py`, which checks each signature with the official Standard Webhooks library.
//!
//! Needs `MOTO_ENDPOINT` and `python3` with `standardwebhooks`; without `MOTO_ENDPOINT` every
//! test fails saying so. Each test makes its own table, queues and sink.

mod harness;

use std::time::Duration;

use harness::*;
use relay_core::domain::model::QueueMessage;
use relay_core::ports::{Catalog, EventArchive, Queue, QueueConsumer, QueueName};

#[tokio::test]
async fn signed_push_is_delivered_byte_identical_and_verified() {
    let stack = Stack::new("signed_push_is_delivered_byte_identical_and_verified").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    stack
        .add_subscription("github", &sink.url("/ok/push"), &whsec)
        .await;
    let receiver = stack.receiver();
    let poller = stack.poller("1s").await;

    // A text body, as function URLs pass JSON.
    let answer = invoke_receiver(
        &receiver,
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
    let first_id = accepted_id(answer).await;
    assert!(first_id.starts_with("evt_"), "{first_id}");

    // The same kind of body base64-encoded by the function URL (isBase64Encoded: true): the
    // signature covers the decoded bytes, and those bytes are what the subscriber gets.
    let binary_body =
        "{\"ref\":\"refs/heads/dev\",\r\n\"emoji\":\"🚀\",\"bytes\":\"\\u0000\\u00ff\"}\n"
            .as_bytes();
    let answer = invoke_receiver(
        &receiver,
        github_request(
            "github",
            GITHUB_SECRET,
            &unique(),
            "push",
            binary_body,
            true,
        ),
    )
    .await;
    let second_id = accepted_id(answer).await;

    // Signing the base64 text instead of the decoded bytes must not verify.
    let wrong = function_url_request(
        "POST",
        "/github",
        &[
            ("content-type", "application/json"),
            ("x-github-delivery", &unique()),
            ("x-github-event", "push"),
            (
                "x-hub-signature-256",
                &github_signature(GITHUB_SECRET, b64(binary_body).as_bytes()),
            ),
        ],
        Some(binary_body),
        true,
    );
    assert_eq!(invoke_receiver(&receiver, wrong).await.status, 401);

    let delivered = poller
        .run_until(Duration::from_secs(20), async || {
            sink.received_on("/ok/push").await.len() >= 2
        })
        .await;
    assert!(delivered, "sink got {:?}", sink.received().await);
    poller.run_for(Duration::from_secs(1)).await;
    let received = sink.received_on("/ok/push").await;
    assert_eq!(received.len(), 2, "{received:?}");
    for (id, body) in [(&first_id, PUSH_BODY.as_bytes()), (&second_id, binary_body)] {
        let got = received
            .iter()
            .find(|r| r.header("webhook-id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no delivery with webhook-id {id}: {received:?}"));
        assert_eq!(got.body(), body, "body of {id} is not byte-identical");
        assert_eq!(got.verified_with, vec![whsec.clone()], "signature of {id}");
        assert_eq!(attempt_header(got), "1");
        assert_eq!(got.header("x-relay-source"), Some("github"));
        assert_eq!(got.header("x-relay-event-type"), Some("push"));
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert!(
            got.header("user-agent")
                .is_some_and(|ua| ua.starts_with("webhook-relay/")),
            "user-agent {:?}",
            got.header("user-agent")
        );
        assert_eq!(got.status, 200);
        assert_eq!(
            attempt_log(&stack, id, &only_subscription(&stack, "github").await).await,
            owned(&[(1, "ok", "done")])
        );
    }
    assert_eq!(poller.stats().failures, 0);
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 0);
}

#[tokio::test]
async fn fixtures_go_through_both_handlers() {
    let stack = Stack::new("fixtures_go_through_both_handlers").await;
    let root = repo_root();
    let receiver_fixture =
        std::fs::read_to_string(root.join("events/receiver-github-push.json")).expect("fixture");
    let fanout_fixture =
        std::fs::read_to_string(root.join("events/fanout-sqs-event.json")).expect("fixture");
    let fixture_body: serde_json::Value = serde_json::from_str(&receiver_fixture).expect("JSON");
    let fixture_body = fixture_body["body"].as_str().expect("body").to_owned();

    // events/README.md: the fixture is signed for source `github` with this secret.
    stack
        .add_github_source("github", "fixture-github-secret")
        .await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    stack
        .add_subscription("github", &sink.url("/ok/fixture"), &whsec)
        .await;
    let receiver = stack.receiver();
    let request = || lambda_http::request::from_str(&receiver_fixture).expect("payload 2.0");

    let id = accepted_id(invoke_receiver(&receiver, request()).await).await;

    let poller = stack.poller("1s").await;
    assert!(
        poller
            .run_until(Duration::from_secs(20), async || {
                !sink.received_on("/ok/fixture").await.is_empty()
            })
            .await
    );
    let got = sink.received_on("/ok/fixture").await;
    assert_eq!(got[0].body(), fixture_body.as_bytes());
    assert_eq!(got[0].header("webhook-id"), Some(id.as_str()));
    assert_eq!(got[0].verified_with, vec![whsec.clone()]);
    // The same delivery again, once the fanout has stored the event (which confirms the
    // receiver's claim): a duplicate of it.
    poller.run_for(Duration::from_secs(1)).await;
    let again = invoke_receiver(&receiver, request()).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        again.json(),
        serde_json::json!({ "id": id, "duplicate": true })
    );

    // The SQS fixture, handed to the fanout handler as Lambda would (its receipt handle is
    // made up, and nothing needs it: the record succeeds).
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&fanout_fixture).expect("SqsEvent fixture");
    let fanout = stack.fanout("1s");
    let response = fanout::handle(&fanout, event, None).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let got = sink.received_on("/ok/fixture").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body(), br#"{"ref":"refs/heads/main"}"#);
    assert_eq!(
        got[1].header("webhook-id"),
        Some("evt_0192f0c0a0b07c3e8d1e2f3a4b5c6d7e")
    );
    assert_eq!(got[1].verified_with, vec![whsec]);
}

#[tokio::test]
async fn failing_subscription_is_retried_alone() {
    let stack = Stack::new("failing_subscription_is_retried_alone").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let healthy = stack
        .add_subscription("github", &sink.url("/ok/healthy"), &whsec)
        .await;
    let flaky = stack
        .add_subscription("github", &sink.url("/fail/1/flaky"), &whsec)
        .await;
    let receiver = stack.receiver();
    let poller = stack.poller("1s").await;

    let id = accepted_id(
        invoke_receiver(
            &receiver,
            github_request(
                "github",
                GITHUB_SECRET,
                &unique(),
                "push",
                PUSH_BODY.as_bytes(),
                false,
            ),
        )
        .await,
    )
    .await;

    // The event: attempt 1 to both, inline; the flaky one's retry goes to the deliveries queue
    // and the event message is deleted.
    let pumped = poller.pump(&poller.events_url, 2).await;
    assert_eq!(pumped.received, 1, "{pumped:?}");
    assert!(pumped.failed.is_empty(), "{pumped:?}");
    assert_eq!(pumped.deleted.len(), 1);
    assert_eq!(sink.received_on("/ok/healthy").await.len(), 1);
    assert_eq!(sink.received_on("/fail/1/flaky").await.len(), 1);
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 1);
    assert_eq!(
        attempt_log(&stack, &id, &flaky).await,
        owned(&[(1, "http_status", "retry_scheduled")])
    );

    assert!(
        poller
            .run_until(Duration::from_secs(20), async || {
                sink.received_on("/fail/1/flaky").await.len() >= 2
            })
            .await,
        "no second attempt: {:?}",
        sink.received().await
    );
    // Anything scheduled twice would arrive within this.
    poller.run_for(Duration::from_secs(3)).await;

    let healthy_got = sink.received_on("/ok/healthy").await;
    let flaky_got = sink.received_on("/fail/1/flaky").await;
    assert_eq!(healthy_got.len(), 1, "healthy: {healthy_got:?}");
    assert_eq!(flaky_got.len(), 2, "flaky: {flaky_got:?}");
    assert_eq!(
        flaky_got.iter().map(attempt_header).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(
        flaky_got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 200]
    );
    for got in healthy_got.iter().chain(&flaky_got) {
        assert_eq!(got.header("webhook-id"), Some(id.as_str()));
        assert_eq!(got.verified_with, vec![whsec.clone()]);
        assert_eq!(got.body(), PUSH_BODY.as_bytes());
    }
    // "1s" with 20% jitter: never sooner than 0.8 s.
    let gap = flaky_got[1].at - flaky_got[0].at;
    assert!(gap >= 0.75, "retry came after {gap:.3} s");
    assert_eq!(
        attempt_log(&stack, &id, &healthy).await,
        owned(&[(1, "ok", "done")])
    );
    assert_eq!(
        attempt_log(&stack, &id, &flaky).await,
        owned(&[(1, "http_status", "retry_scheduled"), (2, "ok", "done")])
    );
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 0);
    assert_eq!(stack.depth(&stack.queues.deliveries_dlq).await.total(), 0);
}

#[tokio::test]
async fn spent_schedule_dead_letters_and_redrive_delivers() {
    let stack = Stack::new("spent_schedule_dead_letters_and_redrive_delivers").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    // Fails the first three requests: attempt 1 and the two retries of "1s,1s".
    let path = "/fail/3/dlq";
    let sub = stack
        .add_subscription("github", &sink.url(path), &whsec)
        .await;
    let receiver = stack.receiver();
    let poller = stack.poller("1s,1s").await;
    let dlq = stack.queues.deliveries_dlq.clone();

    let id = accepted_id(
        invoke_receiver(
            &receiver,
            github_request(
                "github",
                GITHUB_SECRET,
                &unique(),
                "push",
                PUSH_BODY.as_bytes(),
                false,
            ),
        )
        .await,
    )
    .await;
    let parked = poller
        .run_until(Duration::from_secs(30), async || {
            stack.depth(&dlq).await.total() >= 1
        })
        .await;
    assert!(
        parked,
        "not dead-lettered; sink got {:?}",
        sink.received().await
    );
    poller.run_for(Duration::from_secs(2)).await;

    let got = sink.received_on(path).await;
    assert_eq!(
        got.iter().map(attempt_header).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(got.iter().all(|r| r.status == 500));
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 0);
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);
    assert_eq!(
        attempt_log(&stack, &id, &sub).await,
        owned(&[
            (1, "http_status", "retry_scheduled"),
            (2, "http_status", "retry_scheduled"),
            (3, "http_status", "dead_lettered"),
        ])
    );

    // The parked message: the next attempt (4) of this event for this subscription, due now.
    let messages = stack
        .admin()
        .receive(&dlq, 10, 1, 5)
        .await
        .expect("receive from the DLQ");
    assert_eq!(messages.len(), 1, "{messages:?}");
    match serde_json::from_str::<QueueMessage>(&messages[0].body).expect("queue message") {
        QueueMessage::Delivery(task) => {
            assert_eq!(task.event.id, id);
            assert_eq!(task.subscription_id, sub);
            assert_eq!(task.attempt, 4);
            assert_eq!(task.schedule_step, 0);
            assert_eq!(task.not_before, 0);
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
    stack
        .admin()
        .change_visibility(&dlq, &messages[0].receipt_handle, 0)
        .await
        .expect("make it visible again");

    let moved = stack
        .aws
        .queue
        .redrive(QueueName::DeliveriesDlq)
        .await
        .expect("redrive");
    assert_eq!(moved, 1);
    assert_eq!(stack.depth(&dlq).await.total(), 0);

    assert!(
        poller
            .run_until(Duration::from_secs(20), async || {
                sink.received_on(path).await.len() >= 4
            })
            .await,
        "redriven delivery never came: {:?}",
        sink.received().await
    );
    poller.run_for(Duration::from_secs(2)).await;
    let got = sink.received_on(path).await;
    assert_eq!(got.len(), 4, "{got:?}");
    let last = &got[3];
    assert_eq!(attempt_header(last), "4");
    assert_eq!(last.status, 200);
    assert_eq!(last.header("webhook-id"), Some(id.as_str()));
    assert_eq!(last.verified_with, vec![whsec]);
    assert_eq!(last.body(), PUSH_BODY.as_bytes());
    assert_eq!(
        attempt_log(&stack, &id, &sub).await,
        owned(&[
            (1, "http_status", "retry_scheduled"),
            (2, "http_status", "retry_scheduled"),
            (3, "http_status", "dead_lettered"),
            (4, "ok", "done"),
        ])
    );
    for url in [&stack.queues.deliveries, &dlq, &stack.queues.events] {
        assert_eq!(stack.depth(url).await.total(), 0, "{url}");
    }
}

#[tokio::test]
async fn unqueueable_retry_keeps_the_event_without_repeating_the_healthy_delivery() {
    let stack =
        Stack::new("unqueueable_retry_keeps_the_event_without_repeating_the_healthy_delivery")
            .await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let healthy = stack
        .add_subscription("github", &sink.url("/ok/healthy"), &whsec)
        .await;
    let flaky = stack
        .add_subscription("github", &sink.url("/fail/1/flaky"), &whsec)
        .await;
    let id = accepted_id(
        invoke_receiver(
            &stack.receiver(),
            github_request(
                "github",
                GITHUB_SECRET,
                &unique(),
                "push",
                PUSH_BODY.as_bytes(),
                false,
            ),
        )
        .await,
    )
    .await;
    let env = [
        ("RELAY_RETRY_SCHEDULE", "1s"),
        ("RELAY_ALLOW_PRIVATE_DESTINATIONS", "true"),
    ];

    // The deliveries queue is unreachable: the failed subscription's retry cannot be queued,
    // so the event message must stay (a batch item failure) ...
    let broken = harness::Poller::new(
        &stack,
        stack.fanout_over(stack.queue_at(&harness::closed_endpoint()), &env),
    )
    .await
    .with_visibility(1);
    let first = broken.pump(&broken.events_url, 2).await;
    assert_eq!(first.received, 1);
    assert_eq!(
        first.failed.len(),
        1,
        "the event must stay on the queue: {first:?}"
    );
    assert_eq!(sink.received_on("/ok/healthy").await.len(), 1);
    assert_eq!(sink.received_on("/fail/1/flaky").await.len(), 1);
    assert_eq!(
        attempt_log(&stack, &id, &healthy).await,
        owned(&[(1, "ok", "done")])
    );

    // ... and when it comes back with the queue up, only the failed subscription gets it.
    let poller = stack.poller_with_env(&env).await.with_visibility(1);
    assert!(
        poller
            .run_until(Duration::from_secs(15), async || {
                sink.received_on("/fail/1/flaky").await.len() >= 2
            })
            .await
    );
    poller.run_for(Duration::from_secs(2)).await;
    assert_eq!(
        sink.received_on("/ok/healthy").await.len(),
        1,
        "healthy got it twice"
    );
    let flaky_got = sink.received_on("/fail/1/flaky").await;
    assert_eq!(flaky_got.len(), 2);
    assert_eq!(flaky_got[1].status, 200);
    assert_eq!(flaky_got[1].header("webhook-id"), Some(id.as_str()));
    // The attempt that could not be handed off is logged, and the number runs on.
    assert_eq!(flaky_got[1].header("x-relay-attempt"), Some("2"));
    assert_eq!(
        attempt_log(&stack, &id, &flaky).await,
        owned(&[(1, "http_status", "fanout_retry"), (2, "ok", "done")])
    );
    for url in [
        &stack.queues.events,
        &stack.queues.deliveries,
        &stack.queues.events_dlq,
    ] {
        assert_eq!(stack.depth(url).await.total(), 0, "{url}");
    }
}

#[tokio::test]
async fn unreadable_event_message_ends_in_the_events_dlq() {
    let stack = Stack::new("unreadable_event_message_ends_in_the_events_dlq").await;
    let poller = stack.poller("1s").await.with_visibility(1);
    stack
        .admin()
        .send_raw(&stack.queues.events, "{\"kind\":\"nonsense\"}", 0)
        .await
        .expect("send");
    // Left on the queue on every receive, until the redrive policy (maxReceiveCount 5) moves
    // it to the DLQ, intact.
    let parked = poller
        .run_until(Duration::from_secs(30), async || {
            stack.depth(&stack.queues.events_dlq).await.total() >= 1
        })
        .await;
    assert!(parked, "{:?}", poller.stats());
    let stats = poller.stats();
    assert_eq!(stats.events_handled, 5, "{stats:?}");
    assert_eq!(stats.failures, 5, "{stats:?}");
    let messages = stack
        .admin()
        .receive(&stack.queues.events_dlq, 10, 1, 5)
        .await
        .expect("receive");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "{\"kind\":\"nonsense\"}");
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);
}

#[tokio::test]
async fn largest_bodies_fit_every_hop() {
    let stack = Stack::new("largest_bodies_fit_every_hop").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    // The first two requests (attempt 1 of each event) fail, so each body also travels inside
    // a retry message on the deliveries queue.
    let path = "/fail/2/big";
    let sub = stack
        .add_subscription("github", &sink.url(path), &whsec)
        .await;
    let receiver = stack.receiver();
    // The largest body that travels inside the messages (larger ones go through the bucket).
    let limit = relay_core::ports::bodies::INLINE_BODY_MAX_BYTES;

    // Exactly at the limit, and as costly as possible to escape: every character of the string
    // doubles in the JSON envelope.
    let mut escaped = b"{\"s\":\"".to_vec();
    while escaped.len() < limit - 2 {
        escaped.extend_from_slice(b"\\\"");
    }
    escaped.truncate(limit - 2);
    if escaped.ends_with(b"\\") && !escaped.ends_with(b"\\\\") {
        escaped.pop();
        escaped.push(b'x');
    }
    escaped.extend_from_slice(b"\"}");
    escaped.resize(limit, b' ');
    serde_json::from_slice::<serde_json::Value>(&escaped).expect("valid JSON");
    assert_eq!(escaped.len(), limit);
    let text_id = accepted_id(
        invoke_receiver(
            &receiver,
            github_request("github", GITHUB_SECRET, &unique(), "push", &escaped, false),
        )
        .await,
    )
    .await;

    // Binary at the limit: base64 in the function URL event, in the envelope and in the store.
    let binary = binary_bytes(limit);
    let signature = github_signature(GITHUB_SECRET, &binary);
    let binary_id = accepted_id(
        invoke_receiver(
            &receiver,
            function_url_request(
                "POST",
                "/github",
                &[
                    ("content-type", "application/octet-stream"),
                    ("x-github-delivery", &unique()),
                    ("x-github-event", "push"),
                    ("x-hub-signature-256", &signature),
                ],
                Some(&binary),
                true,
            ),
        )
        .await,
    )
    .await;

    let poller = stack.poller("1s").await;
    assert!(
        poller
            .run_until(Duration::from_secs(30), async || {
                sink.received_on(path).await.len() >= 4
            })
            .await,
        "got {} requests",
        sink.received_on(path).await.len()
    );
    poller.run_for(Duration::from_secs(2)).await;
    let got = sink.received_on(path).await;
    assert_eq!(got.len(), 4);
    for (id, body, content_type) in [
        (&text_id, &escaped, "application/json"),
        (&binary_id, &binary, "application/octet-stream"),
    ] {
        let mine: Vec<&Received> = got
            .iter()
            .filter(|r| r.header("webhook-id") == Some(id.as_str()))
            .collect();
        assert_eq!(
            mine.iter().map(|r| attempt_header(r)).collect::<Vec<_>>(),
            ["1", "2"],
            "attempts of {id}"
        );
        for r in &mine {
            assert!(r.body() == *body, "body of {id} changed on the way");
            assert_eq!(r.header("content-type"), Some(content_type));
            assert!(signed_with(r, &whsec), "signature of {id}");
        }
        let stored = stack
            .aws
            .store
            .get_event(id)
            .await
            .expect("get event")
            .expect("event stored");
        assert!(stored.body_bytes().expect("body") == body.as_slice());
        assert_eq!(
            attempt_log(&stack, id, &sub).await,
            owned(&[(1, "http_status", "retry_scheduled"), (2, "ok", "done")])
        );
    }
    // The text body also passes the official library.
    assert!(
        got.iter()
            .filter(|r| r.header("webhook-id") == Some(text_id.as_str()))
            .all(|r| r.verified_with == vec![whsec.clone()])
    );
    for url in [
        &stack.queues.events,
        &stack.queues.deliveries,
        &stack.queues.events_dlq,
    ] {
        assert_eq!(stack.depth(url).await.total(), 0, "{url}");
    }
}

#[tokio::test]
async fn early_delivery_hops_until_due() {
    let stack = Stack::new("early_delivery_hops_until_due").await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let sub = stack
        .add_subscription("github", &sink.url("/ok/early"), &whsec)
        .await;
    let poller = stack.poller("1s").await;

    // A retry message woken before its time, as after an SQS delay shorter than the schedule's.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let event = relay_core::domain::model::EventEnvelope {
        id: relay_core::domain::ids::new_event_id(),
        source: "github".into(),
        event_type: "push".into(),
        content_type: Some("application/json".into()),
        received_at: now_ms,
        body: PUSH_BODY.into(),
        body_encoding: relay_core::domain::model::BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    };
    let due = now_ms + 3_000;
    let task = relay_core::domain::model::DeliveryTask {
        event: event.clone(),
        subscription_id: sub.clone(),
        attempt: 2,
        schedule_step: 1,
        not_before: due,
    };
    stack
        .admin()
        .send_raw(
            &stack.queues.deliveries,
            serde_json::to_string(&QueueMessage::Delivery(task)).expect("JSON"),
            0,
        )
        .await
        .expect("send");

    let first = poller.pump(&poller.deliveries_url, 1).await;
    assert_eq!(first.received, 1);
    assert!(
        first.failed.is_empty(),
        "an early record is sent on and deleted: {first:?}"
    );
    assert!(
        sink.received().await.is_empty(),
        "delivered before its time"
    );
    // Sent on as a new message delayed for the rest of the wait: nothing in flight.
    let depth = stack.depth(&stack.queues.deliveries).await;
    assert_eq!((depth.in_flight, depth.delayed), (0, 1), "{depth:?}");
    let again = poller.pump(&poller.deliveries_url, 1).await;
    assert_eq!(again.received, 0, "not delayed: {again:?}");

    assert!(
        poller
            .run_until(Duration::from_secs(10), async || {
                !sink.received_on("/ok/early").await.is_empty()
            })
            .await,
        "never delivered"
    );
    let got = sink.received_on("/ok/early").await;
    assert_eq!(got.len(), 1);
    let at_ms = (got[0].at * 1000.0) as i64;
    assert!(at_ms >= due - 50, "delivered {} ms early", due - at_ms);
    assert_eq!(
        attempt_header(&got[0]),
        "2",
        "the early wake-up counted as an attempt"
    );
    assert_eq!(got[0].verified_with, vec![whsec]);
    assert_eq!(
        attempt_log(&stack, &event.id, &sub).await,
        owned(&[(2, "ok", "done")])
    );
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 0);
}

/// Issue 9's in-flight cap: a retry due hours out must wait as a delayed message, never as one
/// hidden after a receive (a standard queue holds about 120,000 in flight, then every receive
/// fails). Checked on the first send and on the wake-up after SQS's 15-minute maximum delay.
#[tokio::test]
async fn a_retry_due_in_two_hours_holds_nothing_in_flight() {
    let stack = Stack::new("a_retry_due_in_two_hours_holds_nothing_in_flight").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let sub = stack
        .add_subscription("github", &sink.url("/fail/100/far"), &whsec)
        .await;
    let poller = stack.poller("2h").await;
    let (id, _) = one_event_through(&stack, &poller).await;
    assert_eq!(
        attempt_log(&stack, &id, &sub).await,
        owned(&[(1, "http_status", "retry_scheduled")])
    );
    let after_failure = stack.depth(&stack.queues.deliveries).await;
    println!(
        "deliveries queue after the failing first attempt: ApproximateNumberOfMessagesNotVisible={} ApproximateNumberOfMessagesDelayed={}",
        after_failure.in_flight, after_failure.delayed
    );
    assert_eq!(
        (after_failure.in_flight, after_failure.delayed),
        (0, 1),
        "{after_failure:?}"
    );

    // The same retry as it wakes after its first 15 minutes (moto cannot skip the wait: a copy
    // sent without delay stands in for it), 1 h 45 min before it is due.
    let event = stack
        .aws
        .store
        .get_event(&id)
        .await
        .expect("get event")
        .expect("event stored");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let woken = relay_core::domain::model::DeliveryTask {
        event,
        subscription_id: sub.clone(),
        attempt: 2,
        schedule_step: 1,
        not_before: now_ms + 7_200_000 - 900_000,
    };
    stack
        .admin()
        .send_raw(
            &stack.queues.deliveries,
            serde_json::to_string(&QueueMessage::Delivery(woken)).expect("JSON"),
            0,
        )
        .await
        .expect("send");
    let pumped = poller.pump(&poller.deliveries_url, 1).await;
    assert_eq!(
        (pumped.received, pumped.deleted.len()),
        (1, 1),
        "{pumped:?}"
    );
    let after_wake_up = stack.depth(&stack.queues.deliveries).await;
    println!(
        "deliveries queue after the early wake-up: ApproximateNumberOfMessagesNotVisible={} ApproximateNumberOfMessagesDelayed={} ApproximateNumberOfMessages={}",
        after_wake_up.in_flight, after_wake_up.delayed, after_wake_up.visible
    );
    assert_eq!(
        (
            after_wake_up.in_flight,
            after_wake_up.delayed,
            after_wake_up.visible
        ),
        (0, 2, 0),
        "the woken copy must hop, not hide: {after_wake_up:?}"
    );
    assert_eq!(sink.received_on("/fail/100/far").await.len(), 1);
    assert_eq!(
        attempt_log(&stack, &id, &sub).await,
        owned(&[(1, "http_status", "retry_scheduled")]),
        "the early wake-up counted as an attempt"
    );
}

#[tokio::test]
async fn gone_subscriber_is_disabled_without_retries() {
    let stack = Stack::new("gone_subscriber_is_disabled_without_retries").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let sub = stack
        .add_subscription("github", &sink.url("/status/410/gone"), &whsec)
        .await;
    let receiver = stack.receiver();
    let poller = stack.poller("1s").await;
    let id = accepted_id(
        invoke_receiver(
            &receiver,
            github_request(
                "github",
                GITHUB_SECRET,
                &unique(),
                "push",
                PUSH_BODY.as_bytes(),
                false,
            ),
        )
        .await,
    )
    .await;
    assert!(
        poller
            .run_until(Duration::from_secs(15), async || {
                !sink.received_on("/status/410/").await.is_empty()
            })
            .await
    );
    poller.run_for(Duration::from_secs(3)).await;
    assert_eq!(sink.received_on("/status/410/").await.len(), 1);
    let stored = stack
        .aws
        .store
        .get_subscription(&sub)
        .await
        .expect("get subscription")
        .expect("kept, disabled");
    assert!(!stored.enabled);
    assert!(stored.disabled_reason.is_some());
    assert_eq!(
        attempt_log(&stack, &id, &sub).await,
        owned(&[(1, "gone", "disabled")])
    );
    for url in [
        &stack.queues.events,
        &stack.queues.deliveries,
        &stack.queues.deliveries_dlq,
    ] {
        assert_eq!(stack.depth(url).await.total(), 0, "{url}");
    }
}

#[tokio::test]
async fn lambda_defaults_refuse_loopback_destinations() {
    let stack = Stack::new("lambda_defaults_refuse_loopback_destinations").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let by_ip = stack
        .add_subscription("github", &sink.url("/ok/ip"), &whsec)
        .await;
    let by_name = stack
        .add_subscription(
            "github",
            &format!("http://localhost:{}/ok/name", sink.port),
            &whsec,
        )
        .await;
    let receiver = stack.receiver();
    // No RELAY_* variables: what the fanout Lambda does unless AllowPrivateDestinations is set.
    let poller = stack
        .poller_with_env(&[("RELAY_RETRY_SCHEDULE", "1s")])
        .await;
    let id = accepted_id(
        invoke_receiver(
            &receiver,
            github_request(
                "github",
                GITHUB_SECRET,
                &unique(),
                "push",
                PUSH_BODY.as_bytes(),
                false,
            ),
        )
        .await,
    )
    .await;
    let handled = poller
        .run_until(Duration::from_secs(15), async || {
            poller.stats().events_handled >= 1
        })
        .await;
    assert!(handled);
    poller.run_for(Duration::from_secs(2)).await;
    assert!(
        sink.received().await.is_empty(),
        "{:?}",
        sink.received().await
    );
    for sub in [&by_ip, &by_name] {
        assert_eq!(
            attempt_log(&stack, &id, sub).await,
            owned(&[(1, "refused_destination", "dropped")]),
            "{sub}"
        );
        // Stored with the subscription in the table, for `relay status`.
        let stored = stack
            .aws
            .store
            .get_subscription(sub)
            .await
            .unwrap()
            .unwrap();
        let refused = stored
            .refused
            .unwrap_or_else(|| panic!("{sub}: no refusal stored"));
        assert!(
            refused.reason.contains("loopback address"),
            "{sub}: {refused:?}"
        );
        assert!(stored.enabled && stored.failing_since.is_none(), "{sub}");
    }
    for url in [
        &stack.queues.events,
        &stack.queues.deliveries,
        &stack.queues.deliveries_dlq,
    ] {
        assert_eq!(stack.depth(url).await.total(), 0, "{url}");
    }
}

/// One hanging subscriber holds its event batch only for the first-attempt timeout, not the
/// delivery timeout: its delivery moves to the deliveries queue and the sibling is done.
#[tokio::test]
async fn hanging_subscriber_leaves_the_event_batch_at_the_first_attempt_timeout() {
    let stack =
        Stack::new("hanging_subscriber_leaves_the_event_batch_at_the_first_attempt_timeout").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let (hanging_url, _holder) = silent_endpoint().await;
    let healthy = stack
        .add_subscription("github", &sink.url("/ok/sibling"), &whsec)
        .await;
    let hanging = stack
        .add_subscription("github", &format!("{hanging_url}/hook"), &whsec)
        .await;
    let fanout = stack.fanout_with_env(&[
        ("RELAY_RETRY_SCHEDULE", "1s"),
        ("RELAY_ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("RELAY_DELIVERY_TIMEOUT_SECS", "60"),
        ("RELAY_FIRST_ATTEMPT_TIMEOUT_SECS", "1"),
    ]);
    let poller = Poller::new(&stack, fanout).await;
    let (id, held) = one_event_through(&stack, &poller).await;
    // Bounded by the first-attempt timeout (1 s) plus store and queue calls, never the 60 s
    // delivery timeout.
    assert!(
        held < Duration::from_secs(30),
        "the batch was held {held:?}"
    );
    assert_eq!(
        attempt_log(&stack, &id, &healthy).await,
        owned(&[(1, "ok", "done")])
    );
    assert_eq!(
        attempt_log(&stack, &id, &hanging).await,
        owned(&[(1, "timeout", "retry_scheduled")])
    );
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 1);
}

/// A delivery timeout longer than what the invocation has left is cut to fit, so the batch is
/// answered (and its outcomes written) before Lambda's deadline.
#[tokio::test]
async fn attempts_fit_the_invocation_deadline() {
    let stack = Stack::new("attempts_fit_the_invocation_deadline").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let (hanging_url, _holder) = silent_endpoint().await;
    let hanging = stack
        .add_subscription("github", &format!("{hanging_url}/hook"), &whsec)
        .await;
    let fanout = stack.fanout_with_env(&[
        ("RELAY_RETRY_SCHEDULE", "1s"),
        ("RELAY_ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("RELAY_DELIVERY_TIMEOUT_SECS", "60"),
    ]);
    // A 7 s function: 5 s are kept for settling, so the attempt gets 2 s.
    let poller = Poller::new(&stack, fanout)
        .await
        .with_invocation_timeout(Duration::from_secs(7));
    let (id, held) = one_event_through(&stack, &poller).await;
    assert!(
        held < Duration::from_secs(7),
        "the batch outlived its deadline: {held:?}"
    );
    assert_eq!(
        attempt_log(&stack, &id, &hanging).await,
        owned(&[(1, "timeout", "retry_scheduled")])
    );
}

/// Accepts one signed push and hands the events queue's batch to the fanout once; returns the
/// event id and how long the handler held the batch.
async fn one_event_through(stack: &Stack, poller: &Poller) -> (String, Duration) {
    let id = accepted_id(
        invoke_receiver(
            &stack.receiver(),
            github_request("github", GITHUB_SECRET, &unique(), "push", b"{}", false),
        )
        .await,
    )
    .await;
    let started = std::time::Instant::now();
    let pumped = poller.pump(&poller.events_url, 2).await;
    let held = started.elapsed();
    assert_eq!(
        (pumped.received, pumped.deleted.len()),
        (1, 1),
        "{pumped:?}"
    );
    (id, held)
}

/// A subscription whose first attempt failed: its retry (attempt 2) is on the deliveries queue.
struct RetryPending {
    poller: Poller,
    sink: Sink,
    id: String,
    sub: String,
    deliveries: String,
    /// A fanout with the retry schedule `1s`, for handling the retry by hand.
    fanout: relay_core::fanout::Fanout,
}

/// Sends a new event to a subscription at `path` of a fresh sink and fails its first attempt.
async fn first_attempt_failed(stack: &Stack, path: &str) -> RetryPending {
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let poller = stack.poller("1s").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let sub = stack
        .add_subscription("github", &sink.url(path), &whsec)
        .await;
    let id = accepted_id(
        invoke_receiver(
            &stack.receiver(),
            github_request(
                "github",
                GITHUB_SECRET,
                &unique(),
                "push",
                PUSH_BODY.as_bytes(),
                false,
            ),
        )
        .await,
    )
    .await;
    for _ in 0..30 {
        poller.pump(&poller.events_url, 1).await;
        if !sink.received_on(path).await.is_empty() {
            return RetryPending {
                poller,
                sink,
                id,
                sub,
                deliveries: stack.queues.deliveries.clone(),
                fanout: stack.fanout("1s"),
            };
        }
    }
    panic!("the first attempt never came: {:?}", sink.received().await);
}

/// The next message on `queue_url`, waiting up to 30 s for it (its delay included).
async fn next_message(stack: &Stack, queue_url: &str) -> relay_aws::SqsMessage {
    for _ in 0..15 {
        if let Some(message) = stack
            .admin()
            .receive(queue_url, 1, 2, 60)
            .await
            .expect("ReceiveMessage")
            .pop()
        {
            return message;
        }
    }
    panic!("no message on {queue_url}");
}

/// Handles a received message as the event source would, but without deleting it (the delete is
/// lost), then makes it visible at once instead of after its visibility timeout.
async fn handle_and_lose_the_delete(
    stack: &Stack,
    fanout: &relay_core::fanout::Fanout,
    queue_url: &str,
    message: &relay_aws::SqsMessage,
) -> relay_core::domain::model::Disposition {
    let disposition = fanout.handle_message(&message.to_received(), None).await;
    stack
        .admin()
        .change_visibility(queue_url, &message.receipt_handle, 0)
        .await
        .expect("make it visible again");
    disposition
}

#[tokio::test]
async fn a_delivery_whose_delete_was_lost_is_not_delivered_again() {
    let stack = Stack::new("a_delivery_whose_delete_was_lost_is_not_delivered_again").await;
    let path = "/fail/1/lost-delete";
    let RetryPending {
        poller: _,
        sink,
        id,
        sub,
        deliveries,
        fanout,
    } = first_attempt_failed(&stack, path).await;

    let first = next_message(&stack, &deliveries).await;
    let disposition = handle_and_lose_the_delete(&stack, &fanout, &deliveries, &first).await;
    assert_eq!(disposition, relay_core::domain::model::Disposition::Delete);
    assert_eq!(sink.received_on(path).await.len(), 2, "attempt 2 made");

    // The same message comes back: dropped, not attempted again.
    let again = next_message(&stack, &deliveries).await;
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.receive_count, 2);
    let disposition = fanout.handle_message(&again.to_received(), None).await;
    assert_eq!(disposition, relay_core::domain::model::Disposition::Delete);
    stack
        .admin()
        .delete(&deliveries, &again.receipt_handle)
        .await
        .expect("delete");

    let got = sink.received_on(path).await;
    assert_eq!(
        got.iter().map(attempt_header).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(got[1].status, 200);
    assert_eq!(stack.depth(&deliveries).await.total(), 0, "no second chain");
    assert_eq!(
        attempt_log(&stack, &id, &sub).await,
        owned(&[(1, "http_status", "retry_scheduled"), (2, "ok", "done")])
    );
}

#[tokio::test]
async fn a_hop_whose_delete_was_lost_is_attempted_once() {
    let stack = Stack::new("a_hop_whose_delete_was_lost_is_attempted_once").await;
    let path = "/fail/1/lost-hop";
    let RetryPending {
        poller,
        sink,
        id,
        sub,
        deliveries,
        fanout,
    } = first_attempt_failed(&stack, path).await;

    // Attempt 2's message, due 15 s from now: received before then, it hops.
    let retry = next_message(&stack, &deliveries).await;
    let QueueMessage::Delivery(mut task) = serde_json::from_str(&retry.body).expect("task") else {
        panic!("not a delivery: {}", retry.body);
    };
    task.not_before = now_millis() + 15_000;
    stack
        .aws
        .queue
        .send_delivery(&task, 0)
        .await
        .expect("send the early task");
    stack
        .admin()
        .delete(&deliveries, &retry.receipt_handle)
        .await
        .expect("delete");
    let early = next_message(&stack, &deliveries).await;
    let disposition = handle_and_lose_the_delete(&stack, &fanout, &deliveries, &early).await;
    assert_eq!(
        disposition,
        relay_core::domain::model::Disposition::Delete,
        "hopped"
    );
    // The early message comes back and hops again: two messages now carry attempt 2.
    let again = next_message(&stack, &deliveries).await;
    assert_eq!(again.message_id, early.message_id);
    let disposition = fanout.handle_message(&again.to_received(), None).await;
    assert_eq!(
        disposition,
        relay_core::domain::model::Disposition::Delete,
        "hopped"
    );
    stack
        .admin()
        .delete(&deliveries, &again.receipt_handle)
        .await
        .expect("delete");
    assert_eq!(stack.depth(&deliveries).await.total(), 2);

    // Both copies run: the first makes the attempt, the second (due later) finds its record.
    let drained = poller
        .run_until(Duration::from_secs(90), async || {
            stack.depth(&deliveries).await.total() == 0
        })
        .await;
    assert!(drained, "the copies were not handled");
    let got = sink.received_on(path).await;
    assert_eq!(
        got.iter().map(attempt_header).collect::<Vec<_>>(),
        ["1", "2"],
        "attempt 2 made once"
    );
    assert_eq!(
        attempt_log(&stack, &id, &sub).await,
        owned(&[(1, "http_status", "retry_scheduled"), (2, "ok", "done")])
    );
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[tokio::test]
async fn a_filtered_subscription_skips_events_its_filter_does_not_match() {
    let stack = Stack::new("a_filtered_subscription_skips_events_its_filter_does_not_match").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let filter = relay_core::domain::filter::Filter::parse(
        r#"{"body":{"ref":"refs/heads/main","pusher":{"name":{"$startsWith":"Zoë"}}}}"#,
    )
    .expect("filter");
    let main_only = stack
        .add_filtered_subscription("github", &sink.url("/ok/main"), &whsec, Some(filter))
        .await;
    let every = stack
        .add_subscription("github", &sink.url("/ok/every"), &whsec)
        .await;
    let receiver = stack.receiver();
    let poller = stack.poller("1s").await;

    let send = async |body: &[u8]| {
        accepted_id(
            invoke_receiver(
                &receiver,
                github_request("github", GITHUB_SECRET, &unique(), "push", body, false),
            )
            .await,
        )
        .await
    };
    let main = send(PUSH_BODY.as_bytes()).await;
    let dev_branch = send(br#"{"ref":"refs/heads/dev","pusher":{"name":"Zo\u00eb"}}"#).await;
    // GitHub's form content type: payload=<JSON>, a body that is not JSON.
    let form_body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D";
    let form = function_url_request(
        "POST",
        "/github",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-github-delivery", &unique()),
            ("x-github-event", "push"),
            (
                "x-hub-signature-256",
                &github_signature(GITHUB_SECRET, form_body),
            ),
        ],
        Some(form_body),
        false,
    );
    let not_json = accepted_id(invoke_receiver(&receiver, form).await).await;

    // Each round attempts every subscription that takes its event and deletes the message.
    let delivered = poller
        .run_until(Duration::from_secs(20), async || {
            sink.received_on("/ok/every").await.len() >= 3
        })
        .await;
    assert!(delivered, "sink got {:?}", sink.received().await);
    assert_eq!(stack.depth(&stack.queues.events).await.total(), 0);
    let got = sink.received_on("/ok/main").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].header("webhook-id"), Some(main.as_str()));
    assert_eq!(got[0].body(), PUSH_BODY.as_bytes());
    assert_eq!(
        attempt_log(&stack, &main, &main_only).await,
        owned(&[(1, "ok", "done")])
    );
    for skipped in [&dev_branch, &not_json] {
        // Skipped without a trace: no attempt, no retry, nothing queued.
        assert_eq!(attempt_log(&stack, skipped, &main_only).await, owned(&[]));
        assert_eq!(
            attempt_log(&stack, skipped, &every).await,
            owned(&[(1, "ok", "done")])
        );
    }
    assert_eq!(stack.depth(&stack.queues.deliveries).await.total(), 0);
    assert_eq!(poller.stats().failures, 0);
}

/// A subscriber answering 429 with Retry-After is paused on the stored subscription (one
/// write); its retry and a later event wait as delayed messages, nothing in flight; after the
/// pause one probe delivers and clears it.
#[tokio::test]
async fn a_429_with_retry_after_pauses_the_subscription_until_a_probe_delivers() {
    let stack =
        Stack::new("a_429_with_retry_after_pauses_the_subscription_until_a_probe_delivers").await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let path = "/throttle/1/4/b";
    let sub = stack
        .add_subscription("github", &sink.url(path), &whsec)
        .await;
    let poller = stack.poller("1s").await;
    let send = async || {
        accepted_id(
            invoke_receiver(
                &stack.receiver(),
                github_request("github", GITHUB_SECRET, &unique(), "push", b"{}", false),
            )
            .await,
        )
        .await
    };

    let first = send().await;
    let clock = relay_core::ports::clock::SystemClock;
    let before = relay_core::ports::clock::Clock::now_millis(&clock);
    let pumped = poller.pump(&poller.events_url, 2).await;
    assert_eq!(
        (pumped.received, pumped.deleted.len()),
        (1, 1),
        "{pumped:?}"
    );
    assert_eq!(
        attempt_log(&stack, &first, &sub).await,
        owned(&[(1, "http_status", "retry_scheduled")])
    );
    let stored = stack.stored_subscription(&sub).await;
    let paused_until = stored.paused_until.expect("paused after the 429");
    let after = relay_core::ports::clock::Clock::now_millis(&clock);
    assert!(
        (before + 4_000..=after + 4_000).contains(&paused_until),
        "paused until {paused_until}, attempted between {before} and {after}"
    );

    // During the pause a new event is handed off, not attempted; nothing is held in flight.
    let second = send().await;
    poller.pump(&poller.events_url, 2).await;
    assert_eq!(
        attempt_log(&stack, &second, &sub).await,
        owned(&[(1, "deferred", "retry_scheduled")])
    );
    let deliveries = stack.depth(&stack.queues.deliveries).await;
    assert_eq!(deliveries.in_flight, 0, "{deliveries:?}");
    assert_eq!(sink.received_on(path).await.len(), 1);

    assert!(
        poller
            .run_until(room(Duration::from_secs(40)), async || {
                sink.received_on(path).await.len() >= 3
            })
            .await,
        "not delivered after the pause: {:?}",
        sink.received().await
    );
    let got = sink.received_on(path).await;
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200, 200]
    );
    // Nothing attempted before the Retry-After was over.
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= 3.5,
        "first request after the 429 came {gap:.3} s later"
    );
    assert_eq!(
        attempt_log(&stack, &first, &sub).await,
        owned(&[(1, "http_status", "retry_scheduled"), (2, "ok", "done")])
    );
    assert_eq!(
        attempt_log(&stack, &second, &sub).await,
        owned(&[(1, "ok", "done")])
    );
    let stored = stack.stored_subscription(&sub).await;
    assert_eq!((stored.paused_until, stored.failing_since), (None, None));
}

/// The most arrivals within any `window` seconds.
fn busiest_window(arrivals: &[f64], window: f64) -> usize {
    arrivals
        .iter()
        .enumerate()
        .map(|(i, start)| {
            arrivals[i..]
                .iter()
                .take_while(|at| **at < start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A subscription's `--rate` holds per fanout process: with `workers` fanouts (each its own
/// Lambda environment) over the same queues, the subscriber sees up to `workers` times the rate.
/// Prints the figures docs/scale.md quotes; asserts what per-process spacing guarantees.
async fn rate_across_workers(workers: usize) {
    const RATE: f64 = 4.0;
    const EVENTS: usize = 36;
    let test = format!("rate_across_{workers}_workers");
    let stack = Stack::new(&test).await;
    stack.add_github_source("github", GITHUB_SECRET).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let sink = Sink::start(&whsec).await;
    let path = format!("/ok/{test}");
    let sub = stack
        .add_subscription("github", &sink.url(&path), &whsec)
        .await;
    relay_core::ports::subscriptions::modify_subscription(&stack.aws.store, &sub, |s| {
        s.policy.rate = Some(RATE);
        true
    })
    .await
    .expect("set the rate")
    .expect("stored");
    let receiver = stack.receiver();
    for _ in 0..EVENTS {
        accepted_id(
            invoke_receiver(
                &receiver,
                github_request("github", GITHUB_SECRET, &unique(), "push", b"{}", false),
            )
            .await,
        )
        .await;
    }
    let mut pollers = Vec::new();
    for _ in 0..workers {
        pollers.push(stack.poller("1s").await);
    }
    let delivered = async || sink.received_on(&path).await.len() >= EVENTS;
    let runs = pollers
        .iter()
        .map(|poller| poller.run_until(Duration::from_secs(90), delivered));
    let done = futures::future::join_all(runs).await;
    assert!(
        done.iter().any(|d| *d),
        "not all delivered: {}",
        sink.received_on(&path).await.len()
    );

    let got = sink.received_on(&path).await;
    let ids: std::collections::HashSet<_> =
        got.iter().filter_map(|r| r.header("webhook-id")).collect();
    assert_eq!((got.len(), ids.len()), (EVENTS, EVENTS), "each event once");
    let mut arrivals: Vec<f64> = got.iter().map(|r| r.at).collect();
    arrivals.sort_by(f64::total_cmp);
    let span = arrivals[EVENTS - 1] - arrivals[0];
    let observed = (EVENTS - 1) as f64 / span;
    let busiest = busiest_window(&arrivals, 1.0);
    println!(
        "rate {RATE}/s per process, {workers} worker(s), {EVENTS} events: {observed:.2}/s over {span:.2} s \
         ({:.2} x the rate); busiest 1 s window {busiest}",
        observed / RATE
    );
    // Each process lets one delivery go per 1/RATE s: at most RATE + 1 in any second each
    // (one more for the network's jitter between the fanout and the sink).
    let bound = workers * (RATE as usize + 1) + 1;
    assert!(
        busiest <= bound,
        "{busiest} deliveries in one second, bound {bound}"
    );
}

#[tokio::test]
async fn a_rate_holds_per_fanout_process_one_worker() {
    rate_across_workers(1).await;
}

#[tokio::test]
async fn a_rate_holds_per_fanout_process_three_workers() {
    rate_across_workers(3).await;
}
