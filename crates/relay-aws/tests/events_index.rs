//! Sharded event items on moto (`MOTO_ENDPOINT`): events of several days spread over the
//! shards' partitions, listed back merged newest first past the attempt records that share
//! their partitions; an event stored with its records is one item.

mod common;

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use relay_aws::DynamoStore;
use relay_aws::dynamo::keys::{EVENT_INDEX_SHARDS, event_shard, events_partition};
use relay_core::domain::ids::event_id_at;
use relay_core::domain::model::{AttemptOutcome, AttemptRecord, EventEnvelope, NextStep};
use relay_core::{EventArchive, EventQuery, EventSummary};

const DAY_MILLIS: i64 = 86_400_000;
/// 2023-11-14T22:13:20Z, the clock every listing here is given.
const NOW_MILLIS: i64 = 1_700_000_000_000;

async fn fresh_store() -> DynamoStore {
    common::fresh_store("the events index tests", "relay-index").await
}

fn event(id: String, received_at: i64) -> EventEnvelope {
    EventEnvelope {
        // About 1 KiB of JSON, as a typical webhook.
        body: format!(
            "{{\"id\":\"{id}\",\"items\":[{}]}}",
            vec!["{\"name\":\"widget\",\"quantity\":1,\"price\":1999}"; 20].join(",")
        ),
        ..relay_core::testkit::contract::event(&id, received_at)
    }
}

/// 16 events on each of three days (today, yesterday, five days ago), a second apart, with
/// ids minted from their arrival as the receiver mints them.
fn three_days() -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    for days_ago in [0, 1, 5] {
        for n in 0..16 {
            let at = NOW_MILLIS - days_ago * DAY_MILLIS - 60_000 + n * 1000;
            events.push(event(event_id_at(at), at));
        }
    }
    events
}

fn record(event_id: &str, subscription_id: &str, attempt: u32) -> AttemptRecord {
    AttemptRecord {
        event_id: event_id.to_owned(),
        subscription_id: subscription_id.to_owned(),
        attempt,
        at: NOW_MILLIS,
        status: Some(503),
        outcome: AttemptOutcome::HttpStatus,
        latency_ms: 3,
        response_excerpt: String::new(),
        next: NextStep::RetryScheduled,
    }
}

async fn index_items(
    store: &DynamoStore,
    partition: String,
) -> Vec<aws_sdk_dynamodb::types::AttributeValue> {
    let out = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", AttributeValue::S(partition))
        .send()
        .await
        .expect("querying the index");
    out.items
        .unwrap_or_default()
        .into_iter()
        .map(AttributeValue::M)
        .collect()
}

#[tokio::test]
async fn events_of_several_days_and_shards_list_merged_newest_first() {
    let store = fresh_store().await;
    let events = three_days();
    let expires = NOW_MILLIS / 1000 + 30 * 86_400;
    for (n, e) in events.iter().enumerate() {
        // Every third event failed once: its later attempt records share its partition.
        let first = [record(&e.id, "sub_a", 1)];
        store.record_event(e, &first, expires).await.unwrap();
        if n % 3 == 0 {
            store
                .put_attempts(
                    &[record(&e.id, "sub_a", 2), record(&e.id, "sub_b", 2)],
                    expires,
                )
                .await
                .unwrap();
        }
    }
    let shards: BTreeSet<u32> = events.iter().map(|e| event_shard(&e.id)).collect();
    assert!(shards.len() >= 12, "shards {shards:?}");
    // On the table: each event is one item in its shard's partition, plus its later records;
    // the body is stored deflated, not as text.
    let mut event_items = 0;
    let mut record_items = 0;
    for shard in 0..EVENT_INDEX_SHARDS {
        for item in &index_items(&store, events_partition(shard)).await {
            let AttributeValue::M(item) = item else {
                unreachable!()
            };
            let AttributeValue::S(sk) = &item["sk"] else {
                panic!("sort key is not text: {item:?}")
            };
            if sk.contains('#') {
                record_items += 1;
                continue;
            }
            assert_eq!(event_shard(sk), shard);
            assert!(!item.contains_key("body"), "body stored as text: {item:?}");
            assert!(item.contains_key("body_z") && item.contains_key("attempts"));
            event_items += 1;
        }
    }
    assert_eq!(event_items, events.len());
    assert_eq!(record_items, 2 * events.len().div_ceil(3));
    let later = store.event_attempts(&events[0].id).await.unwrap();
    let keys: Vec<(u32, &str)> = later
        .iter()
        .map(|r| (r.attempt, r.subscription_id.as_str()))
        .collect();
    assert_eq!(keys, [(1, "sub_a"), (2, "sub_a"), (2, "sub_b")]);
    assert_eq!(
        store.get_event(&events[0].id).await.unwrap().as_ref(),
        Some(&events[0])
    );

    let mut expected: Vec<EventSummary> = events.iter().map(EventSummary::of).collect();
    expected.sort_by(|a, b| (b.received_at, &b.id).cmp(&(a.received_at, &a.id)));
    for size in [7, 16, 48] {
        let mut listed = Vec::new();
        let mut query = EventQuery::newest(size, NOW_MILLIS);
        loop {
            let page = store.list_events(&query).await.unwrap();
            assert!(page.events.len() <= size);
            listed.extend(page.events);
            match page.next {
                Some(cursor) => query.before = Some(cursor),
                None => break,
            }
            assert!(
                listed.len() <= events.len(),
                "paging by {size} does not end"
            );
        }
        assert_eq!(listed, expected, "pages of {size}");
    }
}
