//! A subscription that keeps failing, with a backlog of retries, beside a healthy one: the real
//! fanout over SQS and DynamoDB on moto, pollers in the role of Lambda's event sources (one
//! per queue, as each event source mapping polls its own), deliveries to `tests/sink.py`.
//!
//! `a_failing_backlog_waits_on_its_own_lane_*` runs in the test command. `isolation_figures`
//! (ignored; `cargo test -p relay-e2e --test isolation -- --ignored --nocapture`) prints the
//! healthy subscription's lag with 10,000 failing deliveries waiting, with the lanes and with
//! every delivery on one queue (a stack without `RELAY_FAILING_DELIVERIES_QUEUE_URL`), for
//! docs/scale.md.

mod harness;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use futures::StreamExt;
use harness::*;
use relay_aws::{AwsSettings, SqsQueue};
use relay_core::Subscription;
use relay_core::domain::model::{BodyEncoding, DeliveryTask, EventEnvelope};
use relay_core::fanout::breaker::Run;
use relay_core::fanout::lane::lane;
use relay_core::ports::subscriptions::modify_subscription;
use relay_core::ports::{DeliveryLane, Queue};

/// Both subscriptions retry every second (±20 % jitter; queue delays are whole seconds).
const SCHEDULE: &str = "1s,1s,1s,1s,1s,1s";
/// The latest a 1 s step can come due: 1.2 s jittered, queued with a whole-second delay.
const LATEST_DUE_SECS: f64 = 2.0;

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The fanout's environment here: a short timeout for the loopback sink.
const FANOUT_ENV: &[(&str, &str)] = &[
    ("RELAY_ALLOW_PRIVATE_DESTINATIONS", "true"),
    ("RELAY_DELIVERY_TIMEOUT_SECS", "5"),
];

struct Scene {
    stack: Stack,
    dead_sink: Sink,
    live_sink: Sink,
    dead: Subscription,
}

/// Sources `dead` and `live`; subscription `dead` answers 500 to everything and has been
/// failing for ten minutes; subscription `live` answers 500 and 200 in turn.
async fn scene(test: &str) -> Scene {
    let stack = Stack::new(test).await;
    let whsec = relay_core::domain::ids::new_signing_secret();
    let dead_sink = Sink::start(&whsec).await;
    let live_sink = Sink::start(&whsec).await;
    let mut ids = HashMap::new();
    for (source, url) in [
        ("dead", dead_sink.url("/status/500/dead")),
        ("live", live_sink.url("/flap/live")),
    ] {
        stack.add_github_source(source, GITHUB_SECRET).await;
        let id = stack.add_subscription(source, &url, &whsec).await;
        let failing_since = (source == "dead").then(|| now_secs() as i64 - 600);
        modify_subscription(&stack.aws.store, &id, |s| {
            s.policy.retry_schedule = Some(SCHEDULE.to_owned());
            s.failing_since = failing_since;
            true
        })
        .await
        .expect("set the schedule")
        .expect("stored");
        ids.insert(source, id);
    }
    let dead = stack.stored_subscription(&ids["dead"]).await;
    Scene {
        stack,
        dead_sink,
        live_sink,
        dead,
    }
}

/// `count` retries of the failing subscription, each of its own event, due now, queued where
/// the fanout queues them (`lane`: the failing lane, or the deliveries queue when `queue` has
/// none). Returns the lane used.
async fn backlog(queue: &SqsQueue, dead: &Subscription, count: usize) -> DeliveryLane {
    let now_ms = (now_secs() * 1000.0) as i64;
    let lane = lane(dead, Run::default(), now_ms);
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |n| async move {
            let task = DeliveryTask {
                event: EventEnvelope {
                    id: format!("evt_backlog_{n:05}_{}", unique()),
                    source: "dead".into(),
                    event_type: "push".into(),
                    content_type: Some("application/json".into()),
                    received_at: now_ms,
                    body: "{}".into(),
                    body_encoding: BodyEncoding::Utf8,
                    reconciled: false,
                    stored_body: None,
                },
                subscription_id: dead.id.clone(),
                attempt: 2,
                schedule_step: 1,
                not_before: now_ms,
            };
            queue
                .send_delivery_on(lane, &task, 0)
                .await
                .expect("queue a backlog delivery");
        })
        .await;
    lane
}

/// The stack's queue adapter, without the failing lane when `lanes` is false (a stack from
/// before it: every delivery on the deliveries queue).
fn queue_for(stack: &Stack, lanes: bool) -> SqsQueue {
    let settings = AwsSettings {
        failing_deliveries_queue_url: lanes.then(|| stack.queues.failing_deliveries.clone()),
        ..stack.settings.clone()
    };
    SqsQueue::new(aws_sdk_sqs::Client::new(&stack.sdk), &settings)
}

struct Figures {
    backlog_secs: f64,
    first_lag_ms: Vec<f64>,
    retry_gaps: Vec<f64>,
    undelivered: usize,
    dead_attempts: usize,
    elapsed_secs: f64,
}

/// Queues `backlog_size` failing deliveries, then sends `events` to `live`, one every
/// `spacing`, while `pollers` pollers run, until each is delivered (or `limit` passes).
async fn run(
    scene: &Scene,
    lanes: bool,
    backlog_size: usize,
    events: usize,
    spacing: Duration,
    pollers: usize,
    limit: Duration,
) -> Figures {
    let stack = &scene.stack;
    let queue = queue_for(stack, lanes);
    let started = now_secs();
    let used = backlog(&queue, &scene.dead, backlog_size).await;
    assert_eq!(
        used,
        DeliveryLane::Failing,
        "failing for ten minutes: its lane is the failing one"
    );
    let backlog_secs = now_secs() - started;
    let (on_deliveries, on_lane) = (
        stack.depth(&stack.queues.deliveries).await.total(),
        stack.depth(&stack.queues.failing_deliveries).await.total(),
    );
    if lanes {
        assert_eq!((on_deliveries, on_lane), (0, backlog_size as u64));
    } else {
        assert_eq!((on_deliveries, on_lane), (backlog_size as u64, 0));
    }

    let mut workers = Vec::new();
    for _ in 0..pollers {
        workers.push(Poller::new(stack, stack.fanout_over(queue.clone(), FANOUT_ENV)).await);
    }
    let receiver = stack.receiver();
    let accepted: std::sync::Mutex<HashMap<String, f64>> = Default::default();
    let send = async {
        for n in 0..events {
            let answer = invoke_receiver(
                &receiver,
                github_request(
                    "live",
                    GITHUB_SECRET,
                    &format!("live-{n}-{}", unique()),
                    "push",
                    b"{}",
                    false,
                ),
            )
            .await;
            let id = accepted_id(answer).await;
            accepted.lock().expect("accepted").insert(id, now_secs());
            tokio::time::sleep(spacing).await;
        }
    };
    let delivered_all = async || {
        let count = accepted.lock().expect("accepted").len();
        count == events && delivered(&scene.live_sink.received_on("/flap/live").await) >= events
    };
    let run_started = now_secs();
    let polls = workers
        .iter()
        .map(|worker| worker.run_until(limit, delivered_all));
    let (_, _) = tokio::join!(send, futures::future::join_all(polls));
    let elapsed_secs = now_secs() - run_started;

    let live = scene.live_sink.received_on("/flap/live").await;
    let mut arrivals: HashMap<String, Vec<f64>> = HashMap::new();
    for request in &live {
        if let Some(id) = request.header("webhook-id") {
            arrivals.entry(id.to_owned()).or_default().push(request.at);
        }
    }
    let accepted = accepted.into_inner().expect("accepted");
    let mut first_lag_ms: Vec<f64> = accepted
        .iter()
        .filter_map(|(id, at)| Some((arrivals.get(id)?.first()? - at) * 1000.0))
        .collect();
    first_lag_ms.sort_by(f64::total_cmp);
    let mut retry_gaps: Vec<f64> = arrivals
        .values()
        .flat_map(|times| times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>())
        .collect();
    retry_gaps.sort_by(f64::total_cmp);
    let undelivered = events.saturating_sub(delivered(&live));
    let dead_attempts = scene.dead_sink.received_on("/status/500/dead").await.len();
    Figures {
        backlog_secs,
        first_lag_ms,
        retry_gaps,
        undelivered,
        dead_attempts,
        elapsed_secs,
    }
}

/// How many requests the flapping sink answered 200 (every second one on its path).
fn delivered(received: &[Received]) -> usize {
    received.iter().filter(|r| r.status == 200).count()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test]
async fn a_failing_backlog_waits_on_its_own_lane_and_a_healthy_retry_goes_first() {
    const BACKLOG: usize = 1_000;
    let scene = scene("a_failing_backlog_waits_on_its_own_lane").await;
    let figures = run(
        &scene,
        true,
        BACKLOG,
        4,
        Duration::from_millis(200),
        1,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(figures.undelivered, 0, "each healthy event delivered");
    assert!(
        !figures.retry_gaps.is_empty(),
        "the flapping subscriber was retried"
    );
    // Its retries did not wait for the failing backlog: it was delivered while most of the
    // backlog (1,000 deliveries, 10 a batch) was still waiting on its own lane.
    assert!(
        figures.dead_attempts < BACKLOG,
        "{} failing attempts before the healthy retries were delivered",
        figures.dead_attempts
    );
    let waiting = scene
        .stack
        .depth(&scene.stack.queues.failing_deliveries)
        .await;
    assert!(waiting.total() > 0, "the backlog is still on its lane");
    assert_eq!(
        scene
            .stack
            .depth(&scene.stack.queues.deliveries)
            .await
            .total(),
        0,
        "nothing of the failing subscription on the deliveries queue"
    );
    // Each delivery names its subscription as its SQS fair-queue tenant.
    let got = aws_sdk_sqs::Client::new(&scene.stack.sdk)
        .receive_message()
        .queue_url(&scene.stack.queues.failing_deliveries)
        .max_number_of_messages(1)
        .visibility_timeout(0)
        .wait_time_seconds(5)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .expect("ReceiveMessage");
    let group = got
        .messages()
        .first()
        .and_then(|m| m.attributes())
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    assert_eq!(group.as_deref(), Some(scene.dead.id.as_str()));
}

#[tokio::test]
#[ignore = "figures for docs/scale.md; minutes on moto"]
async fn isolation_figures() {
    let backlog: usize = std::env::var("ISOLATION_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let pollers: usize = std::env::var("ISOLATION_POLLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // Each layout runs until the healthy events are delivered or this long (stretched by the
    // machine's load): moto drains a 10,000-delivery backlog at tens per second.
    let limit_secs: u64 = std::env::var("ISOLATION_LIMIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    println!(
        "| layout | failing backlog | queued in | healthy events | first attempt lag p50 / p99 | retries | retry gap p50 / p99 / max | beyond schedule (2 s) p99 | failing attempts meanwhile | run |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for lanes in [false, true] {
        let scene = scene(&format!("isolation_figures_{lanes}")).await;
        let f = run(
            &scene,
            lanes,
            backlog,
            30,
            Duration::from_millis(500),
            pollers,
            Duration::from_secs(limit_secs),
        )
        .await;
        let beyond: Vec<f64> = f
            .retry_gaps
            .iter()
            .map(|g| (g - LATEST_DUE_SECS).max(0.0))
            .collect();
        println!(
            "| {} | {backlog} | {:.0} s | 30 ({} undelivered) | {:.0} / {:.0} ms | {} | {:.2} / {:.2} / {:.2} s | {:.2} s | {} | {:.0} s, {pollers} pollers |",
            if lanes {
                "lane per health state"
            } else {
                "one deliveries queue"
            },
            f.backlog_secs,
            f.undelivered,
            quantile(&f.first_lag_ms, 0.5),
            quantile(&f.first_lag_ms, 0.99),
            f.retry_gaps.len(),
            quantile(&f.retry_gaps, 0.5),
            quantile(&f.retry_gaps, 0.99),
            quantile(&f.retry_gaps, 1.0),
            quantile(&beyond, 0.99),
            f.dead_attempts,
            f.elapsed_secs,
        );
    }
}
