//! Requests and capacity per event, measured on moto (`MOTO_ENDPOINT`): 1,000 signed GitHub
//! events (1 KiB JSON bodies) through the real receiver and fanout over the real SDK adapters,
//! delivered at the first try to one loopback subscriber, in each configuration of dedup and
//! event archive. An SDK interceptor on the adapters' clients records every call and the items
//! it writes and reads; write and read units follow DynamoDB's documented item-size rules
//! ("Item sizes and formats", "Read/write capacity mode": 1 write unit per 1 KB written, 1 read
//! unit per 4 KB read strongly consistent, half that eventually consistent), because moto
//! answers `ReturnConsumedCapacity` with a constant. The table is printed; `docs/cost.md`
//! prices it. The event queue's receive and delete are made by Lambda's event source mapping,
//! not by the handlers, so they are not counted here (docs/cost.md prices them per batch).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use bytes::Bytes;
use futures::StreamExt;
use relay_aws::{DynamoStore, SqsQueue, wiring};
use relay_core::domain::model::{ProviderConfig, Source};
use relay_core::ports::clock;
use relay_core::ports::{Catalog, QueueName};
use relay_core::providers::InboundRequest;
use relay_core::runtime::consume::{ConsumeOptions, consume};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Events of the two configurations the budget is set for; the other two run fewer.
const EVENTS: usize = 1_000;
const FEWER_EVENTS: usize = 250;
const SECRET: &str = "cost-test-secret";

/// What one operation came to over a run.
#[derive(Debug, Default, Clone)]
struct OperationTotals {
    calls: u64,
    write_units: f64,
    read_units: f64,
    /// SQS bills each 64 KB of a request's payload as one request.
    billed_requests: u64,
}

#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<BTreeMap<String, OperationTotals>>>);

impl Recorder {
    fn take(&self) -> BTreeMap<String, OperationTotals> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The request of an operation, kept from before it is sent (the SDK consumes it then) until
/// its response is read.
#[derive(Debug, Clone)]
struct Sent {
    target: String,
    body: Vec<u8>,
}

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "cost-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        if let Some(target) = request.headers().get("x-amz-target") {
            cfg.interceptor_state().store_put(Sent {
                target: target.to_owned(),
                body: request.body().bytes().unwrap_or_default().to_vec(),
            });
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(sent) = cfg.load::<Sent>().cloned() else {
            return Ok(());
        };
        let target = sent.target.as_str();
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let service = if target.starts_with("DynamoDB") {
            "DynamoDB"
        } else {
            "SQS"
        };
        let parse = |bytes: Option<&[u8]>| {
            bytes
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .unwrap_or(Value::Null)
        };
        let body_len = sent.body.len() as u64;
        let sent = parse(Some(&sent.body));
        let answered = parse(context.response().and_then(|r| r.body().bytes()));
        let mut totals = self.0.lock().unwrap();
        let entry = totals.entry(format!("{service} {operation}")).or_default();
        entry.calls += 1;
        entry.billed_requests += body_len.div_ceil(64 * 1024).max(1);
        if service == "DynamoDB" {
            let (write, read) = capacity(&operation, &sent, &answered);
            entry.write_units += write;
            entry.read_units += read;
        }
        Ok(())
    }
}

/// Write and read units of one DynamoDB call, from the items it carried.
fn capacity(operation: &str, sent: &Value, answered: &Value) -> (f64, f64) {
    let write_units = |item: &Value| (item_size(item) as f64 / 1024.0).ceil().max(1.0);
    let read_units = |bytes: usize, consistent: bool| {
        let units = (bytes as f64 / 4096.0).ceil().max(1.0);
        if consistent { units } else { units / 2.0 }
    };
    let consistent = sent["ConsistentRead"].as_bool().unwrap_or(false);
    match operation {
        // A failed condition is charged too (at least one unit).
        "PutItem" => (write_units(&sent["Item"]), 0.0),
        // The item after the update: the key and the values set (the dedup claim's confirm).
        "UpdateItem" | "DeleteItem" => (
            write_units(&merged(&sent["Key"], &sent["ExpressionAttributeValues"])),
            0.0,
        ),
        "BatchWriteItem" => {
            let mut units = 0.0;
            if let Some(tables) = sent["RequestItems"].as_object() {
                for requests in tables.values() {
                    for request in requests.as_array().into_iter().flatten() {
                        let item = &request["PutRequest"]["Item"];
                        units += if item.is_null() {
                            write_units(&request["DeleteRequest"]["Key"])
                        } else {
                            write_units(item)
                        };
                    }
                }
            }
            (units, 0.0)
        }
        "GetItem" => (0.0, read_units(item_size(&answered["Item"]), consistent)),
        "Query" => {
            let bytes = answered["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(item_size)
                .sum();
            (0.0, read_units(bytes, consistent))
        }
        _ => (0.0, 0.0),
    }
}

fn merged(key: &Value, values: &Value) -> Value {
    let mut item = key.as_object().cloned().unwrap_or_default();
    if let Some(values) = values.as_object() {
        for (name, value) in values {
            item.insert(name.trim_start_matches(':').to_owned(), value.clone());
        }
    }
    Value::Object(item)
}

/// An item's size by DynamoDB's rules: each attribute's name plus its value; strings and
/// binaries by their bytes, numbers about one byte per two digits plus one, lists and maps
/// three bytes plus one per element plus the elements.
fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, |attributes| {
        attributes
            .iter()
            .map(|(name, value)| name.len() + value_size(value))
            .sum()
    })
}

fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner
            .as_str()
            .map_or(0, |n| n.trim_start_matches('-').len().div_ceil(2) + 1),
        "B" => inner.as_str().map_or(0, |b| b.len() / 4 * 3),
        "BOOL" | "NULL" => 1,
        "L" => {
            let elements = inner.as_array().map_or(&[][..], Vec::as_slice);
            3 + elements.iter().map(|e| 1 + value_size(e)).sum::<usize>()
        }
        "M" => {
            3 + inner.as_object().map_or(0, |m| {
                m.iter()
                    .map(|(name, value)| 1 + name.len() + value_size(value))
                    .sum()
            })
        }
        _ => inner.to_string().len(),
    }
}

/// Deliveries a subscriber received: every request, and the distinct `webhook-id`s.
#[derive(Debug, Default)]
struct Received {
    requests: u64,
    webhook_ids: std::collections::HashSet<String>,
}

/// A loopback subscriber answering every request 204, keeping connections open.
async fn subscriber() -> (String, Arc<Mutex<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Received::default()));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // One request: headers, then content-length bytes of body.
                    let Some(end) = find(&buffer, b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..end + 4 + length);
                    let webhook_id = head
                        .lines()
                        .find_map(|l| l.strip_prefix("webhook-id:"))
                        .map(|v| v.trim().to_owned())
                        .unwrap_or_default();
                    {
                        let mut received = counter.lock().unwrap();
                        received.requests += 1;
                        received.webhook_ids.insert(webhook_id);
                    }
                    let reply = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                    if socket.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, received)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// About 1 KiB of JSON, as a typical webhook; `n` makes each body different.
fn body(n: usize) -> Bytes {
    let mut text = format!(
        "{{\"action\":\"completed\",\"delivery\":{n},\"repository\":{{\"id\":{},\"full_name\":\"octo-org/octo-repo\",\"private\":false}},\"sender\":{{\"login\":\"octocat\",\"id\":1,\"type\":\"User\"}},\"items\":[",
        700_000 + n
    );
    let mut i = 0;
    while text.len() < 1000 {
        text.push_str(&format!(
            "{{\"sku\":\"SKU-{i:04}\",\"quantity\":{},\"price\":{}}},",
            i % 5 + 1,
            1999 + i * 7
        ));
        i += 1;
    }
    text.pop();
    text.push_str("]}");
    while text.len() < 1024 {
        text.insert(text.len() - 2, ' ');
    }
    Bytes::from(text)
}

fn github_request(n: usize) -> InboundRequest {
    let body = body(n);
    let signature = relay_core::signing::hmac_sha256(SECRET.as_bytes(), &[&body]);
    let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
    let mut headers = http::HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, http::HeaderValue::from_str(&value).unwrap());
    };
    set("content-type", "application/json".into());
    set("x-github-event", "check_run".into());
    set(
        "x-github-delivery",
        format!("72d3162e-cc78-11e3-81ab-{n:012}"),
    );
    set("x-hub-signature-256", format!("sha256={hex}"));
    InboundRequest {
        method: http::Method::POST,
        path: "/gh".into(),
        query: None,
        headers,
        body,
    }
}

struct Run {
    events: usize,
    operations: BTreeMap<String, OperationTotals>,
    /// Distinct events the subscriber received.
    delivered: u64,
    /// Requests it received: more than `delivered` when a copy went out again (at least once:
    /// an SDK retry of SendMessage can queue an event twice, and without dedup or a stored
    /// outcome nothing stops the second copy).
    requests: u64,
    /// With the archive on: what searching the stored events costs.
    searches: Vec<Search>,
}

/// One search over every stored event of a run, paged as `relay events list` pages.
struct Search {
    title: &'static str,
    examined: usize,
    found: usize,
    queries: u64,
    read_units: f64,
}

/// Runs each search `relay events list` and `relay replay` make over the run's events, through
/// the recording store: a listing by time, and one subscription's events by state (which also
/// reads each event's later attempt items).
async fn searches(store: &DynamoStore, recorder: &Recorder, events: usize) -> Vec<Search> {
    use relay_core::domain::search::{DeliveryFilter, StatusFilter};
    use relay_core::ports::{EventArchive, EventQuery};
    let now = clock::system().now_millis();
    let by_time = EventQuery {
        since_millis: Some(now - 3_600_000),
        ..EventQuery::newest(100, now)
    };
    let by_state = EventQuery {
        source: Some("gh".into()),
        delivery: Some(DeliveryFilter {
            subscription_id: "sub_cost".into(),
            patterns: vec!["*".into()],
            status: Some(StatusFilter::Failed),
        }),
        ..EventQuery::newest(500, now)
    };
    let mut out = Vec::new();
    for (title, query) in [
        ("events list --since 1h (pages of 100)", by_time),
        (
            "events list --subscription --status failed; replay --status failed",
            by_state,
        ),
    ] {
        recorder.take();
        let mut query = query;
        let mut found = 0;
        loop {
            let page = store.list_events(&query).await.unwrap();
            found += page.events.len();
            match page.next {
                Some(cursor) => query.before = Some(cursor),
                None => break,
            }
        }
        let totals = recorder.take();
        let query_totals = totals.get("DynamoDB Query").cloned().unwrap_or_default();
        out.push(Search {
            title,
            examined: events,
            found,
            queries: query_totals.calls,
            read_units: totals.values().map(|t| t.read_units).sum(),
        });
    }
    out
}

async fn run(dedup: bool, archive: &str, events: usize) -> Run {
    let sdk = common::sdk_config(
        &common::moto_endpoint("the cost test"),
        common::OPERATION_TIMEOUT,
    )
    .await;
    let name = common::fresh_table(&sdk, "relay-cost").await;
    let queues = common::fresh_queues(&sdk, "relay-cost").await;
    let settings = queues.settings(name.clone());
    let plain_dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let plain_sqs = aws_sdk_sqs::Client::new(&sdk);

    let recorder = Recorder::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(recorder.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(recorder.clone())
            .build(),
    );
    let store = DynamoStore::new(dynamo, name.clone());
    let (url, delivered) = subscriber().await;
    let setup = DynamoStore::new(plain_dynamo.clone(), name.clone());
    setup
        .put_source(&Source {
            provider: ProviderConfig::named("github").unwrap(),
            secrets: vec![SECRET.into()],
            ..relay_core::testkit::contract::source("gh")
        })
        .await
        .unwrap();
    setup
        .put_subscription(&relay_core::domain::model::Subscription {
            url,
            events: vec!["*".into()],
            secrets: vec![relay_core::domain::model::SigningSecret {
                secret: relay_core::domain::ids::new_signing_secret(),
                expires_at: None,
            }],
            headers: Vec::new(),
            ..relay_core::testkit::contract::subscription("sub_cost", "gh")
        })
        .await
        .unwrap();

    let lookup = |name: &str| match name {
        "RELAY_DEDUP" => Some(dedup.to_string()),
        "RELAY_EVENT_ARCHIVE" => Some(archive.to_owned()),
        "RELAY_ALLOW_PRIVATE_DESTINATIONS" => Some("true".to_owned()),
        _ => None,
    };
    let queue = SqsQueue::new(sqs, &settings);
    let receiver = wiring::receiver(
        store.clone(),
        queue.clone(),
        &settings,
        &lookup,
        clock::system(),
    )
    .unwrap();
    let fanout = wiring::fanout(store.clone(), queue, &settings, &lookup, clock::system()).unwrap();
    // The events queue is consumed through clients without the recorder: on Lambda, the event
    // source mapping receives and deletes. Batches of 10, as the template's `EventsBatchSize`.
    let consumer = Arc::new(SqsQueue::new(plain_sqs, &settings));
    let mut options = ConsumeOptions::new(QueueName::Events, Duration::from_secs(60));
    options.receive_max = 10;
    options.max_in_flight = 20;
    let consuming = tokio::spawn(consume(consumer, Arc::new(fanout), options));

    let replies: Vec<_> = futures::stream::iter(0..events)
        .map(|n| {
            let receiver = &receiver;
            async move { (n, receiver.handle(github_request(n)).await.reply()) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for (n, reply) in replies {
        assert_eq!(reply.status, 202, "event {n}: {}", reply.body);
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    while delivered.lock().unwrap().webhook_ids.len() < events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Outcomes are stored after the delivery: let the last ones land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    consuming.abort();
    let (delivered, requests) = {
        let received = delivered.lock().unwrap();
        (received.webhook_ids.len() as u64, received.requests)
    };
    let operations = recorder.take();
    let searches = if archive == "all" {
        searches(&store, &recorder, events).await
    } else {
        Vec::new()
    };
    Run {
        events,
        operations,
        delivered,
        requests,
        searches,
    }
}

fn print_table(title: &str, run: &Run) {
    println!(
        "\n{title}: {} events, {} delivered ({} requests)",
        run.events, run.delivered, run.requests
    );
    println!(
        "| operation | calls/event | write units/event | read units/event | billed requests/event |"
    );
    println!("|---|---|---|---|---|");
    for (operation, totals) in &run.operations {
        let per = |x: f64| x / run.events as f64;
        println!(
            "| {operation} | {:.3} | {:.3} | {:.3} | {:.3} |",
            per(totals.calls as f64),
            per(totals.write_units),
            per(totals.read_units),
            per(totals.billed_requests as f64),
        );
    }
}

fn per_event(run: &Run, pick: impl Fn(&OperationTotals) -> f64) -> f64 {
    run.operations.values().map(pick).sum::<f64>() / run.events as f64
}

fn calls(run: &Run, operation: &str) -> f64 {
    run.operations
        .get(operation)
        .map_or(0.0, |t| t.calls as f64 / run.events as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_capacity_per_event() {
    let configurations = [
        ("all on: dedup, archive all", true, "all", EVENTS),
        (
            "lean: no dedup, archive failures",
            false,
            "failures",
            EVENTS,
        ),
        ("dedup, archive failures", true, "failures", FEWER_EVENTS),
        ("no dedup, archive off", false, "off", FEWER_EVENTS),
    ];
    let mut summary = Vec::new();
    for (title, dedup, archive, events) in configurations {
        let run = run(dedup, archive, events).await;
        print_table(title, &run);
        for search in &run.searches {
            println!(
                "\nsearch: {}: {} events examined, {} found, {} Query calls, {:.1} read units, \
                 {:.1} read units per 1,000 events examined",
                search.title,
                search.examined,
                search.found,
                search.queries,
                search.read_units,
                search.read_units * 1000.0 / search.examined as f64
            );
        }
        if archive == "all" {
            // The listing by time finds every event; the state search finds none (all were
            // delivered) after reading them all. Neither scans: only Query calls.
            assert_eq!(run.searches[0].found, events, "{title}");
            assert_eq!(run.searches[1].found, 0, "{title}");
        }
        assert_eq!(run.delivered, events as u64, "{title}");
        let writes = per_event(&run, |t| t.write_units);
        let reads = per_event(&run, |t| t.read_units);
        summary.push((title, writes, reads, calls(&run, "SQS SendMessage")));
        // Every event is queued once, whatever the configuration.
        assert_eq!(calls(&run, "SQS SendMessage"), 1.0, "{title}");
        // Dedup: a claim (PutItem), confirmed by a second write unless the stored event
        // confirms it (archive all).
        let confirms = dedup && archive != "all";
        assert_eq!(
            calls(&run, "DynamoDB UpdateItem"),
            if confirms { 1.0 } else { 0.0 },
            "{title}"
        );
        // The archive: one item written once per event delivered at the first try, under 1 KB.
        let event_puts = if archive == "all" { 1.0 } else { 0.0 };
        let claims = if dedup { 1.0 } else { 0.0 };
        assert_eq!(
            calls(&run, "DynamoDB PutItem"),
            claims + event_puts,
            "{title}"
        );
        assert_eq!(calls(&run, "DynamoDB BatchWriteItem"), 0.0, "{title}");
        let confirm_writes = if confirms { 1.0 } else { 0.0 };
        assert_eq!(
            writes,
            claims + confirm_writes + event_puts,
            "{title}: write units per event"
        );
    }
    println!("\n| configuration | write units/event | read units/event | SQS sends/event |");
    println!("|---|---|---|---|");
    for (title, writes, reads, sends) in summary {
        println!("| {title} | {writes:.3} | {reads:.3} | {sends:.3} |");
    }
}
