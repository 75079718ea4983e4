//! `EventArchive`: event items, spread over `keys::EVENT_INDEX_SHARDS` partitions and listed by
//! merging them, each with the attempt records stored with it and the later ones after it.

use std::collections::BTreeMap;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::future::try_join_all;
use relay_core::model::{AttemptRecord, EventEnvelope};
use relay_core::ports::{EventArchive, EventPage, EventQuery, EventSummary, StoreError};

use super::codec::{
    attempts_of_event_item, event_from_item, event_item, event_summary_from_item, from_doc, n, s,
    str_attr, to_json,
};
use super::{
    DOC, DynamoStore, EVENT_TYPE_ATTR, EXPIRES_AT, Item, SK, SOURCE_ATTR, build_error, keys,
    unavailable,
};

/// Above this, an event's records are written as items of their own instead of inside the
/// event item, which must stay under DynamoDB's 400 KB item limit (a 256 KB body and the
/// outcomes of a source with many subscriptions could pass it).
const FOLDED_ITEM_BUDGET_BYTES: usize = 300_000;

#[async_trait]
impl EventArchive for DynamoStore {
    async fn put_event(&self, event: &EventEnvelope, expires_at: i64) -> Result<(), StoreError> {
        self.put(event_item(event, &[], expires_at)?).await
    }

    async fn record_event(
        &self,
        event: &EventEnvelope,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let folded_bytes: usize = attempts
            .iter()
            .map(|a| a.response_excerpt.len() + 256)
            .sum();
        if event.body.len() + folded_bytes <= FOLDED_ITEM_BUDGET_BYTES {
            return self.put(event_item(event, attempts, expires_at)?).await;
        }
        self.put(event_item(event, &[], expires_at)?).await?;
        self.put_attempts(attempts, expires_at).await
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventEnvelope>, StoreError> {
        self.get(keys::event_partition(id), id)
            .await?
            .map(|item| event_from_item(&item))
            .transpose()
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        if query.limit == 0 {
            return Ok(EventPage::default());
        }
        // One more than the page, to learn whether a next page exists.
        let wanted = query.limit.saturating_add(1);
        let before = query.before.as_ref().map(|cursor| cursor.id.as_str());
        let shards = (0..keys::EVENT_INDEX_SHARDS).map(|shard| {
            self.newest_in_partition(keys::events_partition(shard), before, query, wanted)
        });
        let mut found: Vec<(String, EventSummary)> =
            try_join_all(shards).await?.into_iter().flatten().collect();
        // Ids are time-ordered: the largest sort key is the newest event.
        found.sort_by(|a, b| b.0.cmp(&a.0));
        let events = found.into_iter().take(wanted).map(|(_, e)| e).collect();
        Ok(EventPage::from_newest(events, query.limit))
    }

    async fn put_attempts(
        &self,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // One batch must not name a key twice; the last record of a key wins.
        let mut by_key: HashMap<(String, String), Item> = HashMap::new();
        for attempt in attempts {
            let pk = keys::event_partition(&attempt.event_id);
            let sk = keys::attempt_sk(&attempt.event_id, attempt.attempt, &attempt.subscription_id);
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
        let (low, high) = keys::event_items_range(event_id);
        let items = self
            .query_range(keys::event_partition(event_id), &low, &high)
            .await?;
        // Records stored with the event first; a later record of the same key replaces one.
        let mut log: BTreeMap<(u32, String), AttemptRecord> = BTreeMap::new();
        let (event_items, record_items): (Vec<&Item>, Vec<&Item>) = items
            .iter()
            .partition(|item| str_attr(item, SK) == Some(event_id));
        for item in event_items {
            for record in attempts_of_event_item(item)? {
                log.insert((record.attempt, record.subscription_id.clone()), record);
            }
        }
        for item in record_items {
            let record: AttemptRecord = from_doc(item)?;
            log.insert((record.attempt, record.subscription_id.clone()), record);
        }
        Ok(log.into_values().collect())
    }
}

impl DynamoStore {
    /// Up to `need` events of one partition that pass the query's filters and come before the
    /// cursor's id, newest first, each with its sort key. Later attempt records share the
    /// partition; the filter on `doc`'s companions (`source`) leaves them out.
    async fn newest_in_partition(
        &self,
        partition: String,
        before: Option<&str>,
        query: &EventQuery,
        need: usize,
    ) -> Result<Vec<(String, EventSummary)>, StoreError> {
        let mut key_condition = "pk = :p".to_owned();
        if before.is_some() {
            key_condition.push_str(" AND sk < :before");
        }
        let mut filters = vec!["attribute_exists(#source)"];
        if query.source.is_some() {
            filters.push("#source = :source");
        }
        if query.event_type.is_some() {
            filters.push("#event_type = :event_type");
        }
        let mut events = Vec::new();
        let mut start_key = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&key_condition)
                .expression_attribute_values(":p", s(&partition))
                .expression_attribute_names("#source", SOURCE_ATTR)
                .filter_expression(filters.join(" AND "))
                .scan_index_forward(false)
                .set_exclusive_start_key(start_key);
            if let Some(before) = before {
                request = request.expression_attribute_values(":before", s(before));
            }
            if let Some(source) = &query.source {
                request = request.expression_attribute_values(":source", s(source));
            }
            if let Some(event_type) = &query.event_type {
                request = request
                    .expression_attribute_names("#event_type", EVENT_TYPE_ATTR)
                    .expression_attribute_values(":event_type", s(event_type));
            }
            if query.source.is_none() && query.event_type.is_none() {
                // Nearly every item read is a match (attempt records are the exception): read
                // about what is needed.
                request = request.limit(i32::try_from(need - events.len()).unwrap_or(i32::MAX));
            }
            let out = request.send().await.map_err(|e| unavailable("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                let sort_key = str_attr(&item, SK).unwrap_or_default().to_owned();
                events.push((sort_key, event_summary_from_item(&item)?));
            }
            start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start_key.is_none() || events.len() >= need {
                events.truncate(need);
                return Ok(events);
            }
        }
    }
}
