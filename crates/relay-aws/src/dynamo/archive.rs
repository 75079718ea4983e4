//! `EventArchive`: event items (listed through the events index) and their attempt logs.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use relay_core::model::{AttemptRecord, EventEnvelope};
use relay_core::ports::{EventArchive, StoreError};

use super::codec::{event_from_item, event_item, from_doc, n, s, to_json};
use super::days::MILLIS_PER_DAY;
use super::{DOC, DynamoStore, EXPIRES_AT, GSI1, Item, build_error, keys, unavailable};

/// `list_events` walks back this many daily buckets before today (queues and records are kept
/// 14 days), plus tomorrow's in case this clock is behind the receiver's.
const EVENT_BUCKET_DAYS_BACK: i64 = 14;

#[async_trait]
impl EventArchive for DynamoStore {
    async fn put_event(&self, event: &EventEnvelope, expires_at: i64) -> Result<(), StoreError> {
        self.put(event_item(event, expires_at)?).await
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventEnvelope>, StoreError> {
        self.get(keys::event_pk(id), keys::META)
            .await?
            .map(|item| event_from_item(&item))
            .transpose()
    }

    async fn list_events(&self, limit: usize) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut events = Vec::new();
        let now = now_millis();
        for days_back in -1..=EVENT_BUCKET_DAYS_BACK {
            if events.len() >= limit {
                break;
            }
            let bucket = keys::events_bucket(now - days_back * MILLIS_PER_DAY);
            let mut start_key = None;
            loop {
                let remaining = limit - events.len();
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(GSI1)
                    .key_condition_expression("gsi1pk = :b")
                    .expression_attribute_values(":b", s(&bucket))
                    .scan_index_forward(false)
                    .limit(i32::try_from(remaining).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start_key)
                    .send()
                    .await
                    .map_err(|e| unavailable("Query", &e))?;
                for item in out.items.unwrap_or_default() {
                    events.push(event_from_item(&item)?);
                }
                start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
                if start_key.is_none() || events.len() >= limit {
                    break;
                }
            }
        }
        events.truncate(limit);
        Ok(events)
    }

    async fn put_attempts(
        &self,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // One batch must not name a key twice; the last record of a key wins.
        let mut by_key: HashMap<(String, String), Item> = HashMap::new();
        for attempt in attempts {
            let pk = keys::event_pk(&attempt.event_id);
            let sk = keys::attempt_sk(attempt.attempt, &attempt.subscription_id);
            let mut item = self.key(pk.clone(), &sk);
            item.insert(DOC.to_owned(), s(to_json(attempt)?));
            item.insert(EXPIRES_AT.to_owned(), n(expires_at));
            by_key.insert((pk, sk), item);
        }
        let requests = by_key
            .into_values()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|_| build_error("PutRequest"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await
    }

    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let items = self
            .query_prefix(keys::event_pk(event_id), keys::ATTEMPT_PREFIX)
            .await?;
        items.iter().map(from_doc).collect()
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
