//! The sharded events index on moto (`MOTO_ENDPOINT`): events of several days spread over
//! several shards, listed back merged newest first; the index holds no bodies; items written
//! under the earlier unsharded key are still found by id.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use relay_aws::dynamo::keys::{EVENT_INDEX_SHARDS, event_shard, events_partition};
use relay_aws::provision::create_table;
use relay_aws::{DynamoStore, sdk_config_loader};
use relay_core::model::{BodyEncoding, EventEnvelope};
use relay_core::{EventArchive, EventQuery, EventSummary};

const DAY_MILLIS: i64 = 86_400_000;
/// 2023-11-14T22:13:20Z, the clock every listing here is given.
const NOW_MILLIS: i64 = 1_700_000_000_000;

async fn fresh_store() -> DynamoStore {
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: the events index tests need a moto server")
    });
    let sdk = sdk_config_loader(Duration::from_secs(10))
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto-tests"))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let id = relay_core::ids::new_event_id();
    let table = format!("relay-index-{}", &id[id.len() - 12..]);
    create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("creating table {table} on moto: {e}"));
    DynamoStore::new(client, table)
}

fn event(id: String, received_at: i64) -> EventEnvelope {
    EventEnvelope {
        body: format!("{{\"id\":\"{id}\",\"secret\":\"body text\"}}"),
        id,
        source: "gh".into(),
        event_type: "push".into(),
        content_type: Some("application/json".into()),
        received_at,
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
    }
}

/// 16 events on each of three days (today, yesterday, five days ago), a second apart.
fn three_days() -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    for days_ago in [0, 1, 5] {
        for n in 0..16 {
            let at = NOW_MILLIS - days_ago * DAY_MILLIS - 60_000 + n * 1000;
            events.push(event(format!("evt_d{days_ago}_{n:02}"), at));
        }
    }
    events
}

async fn index_items(
    store: &DynamoStore,
    partition: String,
) -> Vec<aws_sdk_dynamodb::types::AttributeValue> {
    let out = store
        .client()
        .query()
        .table_name(store.table())
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :p")
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
    for e in &events {
        store
            .put_event(e, NOW_MILLIS / 1000 + 30 * 86_400)
            .await
            .unwrap();
    }
    // The fixture does spread over shards: each day uses several of them.
    for days_ago in [0, 1, 5] {
        let shards: BTreeSet<u32> = events
            .iter()
            .filter(|e| e.id.starts_with(&format!("evt_d{days_ago}_")))
            .map(|e| event_shard(&e.id))
            .collect();
        assert!(shards.len() >= 4, "day -{days_ago}: shards {shards:?}");
    }
    // On the table too: every day's events sit in the partitions of their shards, and no index
    // item carries the body.
    let today = NOW_MILLIS.div_euclid(DAY_MILLIS);
    let mut in_index = 0;
    let mut partitions_used = 0;
    for day in [today, today - 1, today - 5] {
        for shard in 0..EVENT_INDEX_SHARDS {
            let items = index_items(&store, events_partition(day, shard)).await;
            partitions_used += usize::from(!items.is_empty());
            for item in &items {
                let AttributeValue::M(item) = item else {
                    unreachable!()
                };
                assert!(
                    !item.contains_key("body"),
                    "index item with a body: {item:?}"
                );
                assert!(item.contains_key("doc") && item.contains_key("body_bytes"));
                in_index += 1;
            }
        }
    }
    assert_eq!(in_index, events.len());
    assert!(partitions_used >= 12, "{partitions_used} partitions used");

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

/// Events written before the index was sharded (`gsi1pk = EVENTS#<day>`) are not listed, but
/// `events show` and replay, which read the event item by id, still find them.
#[tokio::test]
async fn events_under_the_unsharded_key_are_found_by_id() {
    let store = fresh_store().await;
    let old = event("evt_old".into(), NOW_MILLIS - 1000);
    let head = EventEnvelope {
        body: String::new(),
        ..old.clone()
    };
    let s = |v: &str| AttributeValue::S(v.to_owned());
    store
        .client()
        .put_item()
        .table_name(store.table())
        .item("pk", s("EVENT#evt_old"))
        .item("sk", s("META"))
        .item("doc", s(&serde_json::to_string(&head).unwrap()))
        .item("body", s(&old.body))
        .item(
            "expires_at",
            AttributeValue::N((NOW_MILLIS / 1000 + 86_400).to_string()),
        )
        .item("gsi1pk", s("EVENTS#2023-11-14"))
        .item("gsi1sk", s("evt_old"))
        .send()
        .await
        .unwrap();
    let new = event("evt_new".into(), NOW_MILLIS - 500);
    store
        .put_event(&new, NOW_MILLIS / 1000 + 86_400)
        .await
        .unwrap();

    let page = store
        .list_events(&EventQuery::newest(10, NOW_MILLIS))
        .await
        .unwrap();
    assert_eq!(page.events, vec![EventSummary::of(&new)]);
    assert_eq!(store.get_event("evt_old").await.unwrap(), Some(old));
}
