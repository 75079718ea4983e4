//! `EventArchive`: event items (listed through the events index) and their attempt logs.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::future::try_join_all;
use relay_core::model::{AttemptRecord, EventEnvelope};
use relay_core::ports::{EventArchive, EventPage, EventQuery, EventSummary, StoreError};

use super::codec::{
    event_from_item, event_item, event_summary_from_item, from_doc, n, s, str_attr, to_json,
};
use super::days::day_of;
use super::{
    DOC, DynamoStore, EVENT_TYPE_ATTR, EXPIRES_AT, GSI1, GSI1SK, Item, SOURCE_ATTR, build_error,
    keys, unavailable,
};

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

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        if query.limit == 0 {
            return Ok(EventPage::default());
        }
        // One more than the page, to learn whether a next page exists.
        let wanted = query.limit.saturating_add(1);
        let today = day_of(query.now_millis);
        // From tomorrow, in case this clock is behind the receiver's, or from the cursor's day.
        let mut day = match &query.before {
            Some(cursor) => (today + 1).min(day_of(cursor.received_at)),
            None => today + 1,
        };
        let oldest_day = today - self.event_retention_days;
        let before_sk = query
            .before
            .as_ref()
            .map(|cursor| keys::event_index_sk(cursor.received_at, &cursor.id));
        let mut found = Vec::new();
        // Days partition the order (every event of a day is newer than those of the day before),
        // so each day's shards are merged and the days appended.
        while day >= oldest_day && found.len() < wanted {
            let need = wanted - found.len();
            let shards = (0..keys::EVENT_INDEX_SHARDS).map(|shard| {
                self.newest_in_partition(
                    keys::events_partition(day, shard),
                    before_sk.as_deref(),
                    query,
                    need,
                )
            });
            let mut of_the_day: Vec<(String, EventSummary)> =
                try_join_all(shards).await?.into_iter().flatten().collect();
            of_the_day.sort_by(|a, b| b.0.cmp(&a.0));
            found.extend(of_the_day.into_iter().take(need).map(|(_, event)| event));
            day -= 1;
        }
        Ok(EventPage::from_newest(found, query.limit))
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

impl DynamoStore {
    /// Up to `need` events of one index partition that pass the query's filters, newest first,
    /// each with its index sort key.
    async fn newest_in_partition(
        &self,
        partition: String,
        before_sk: Option<&str>,
        query: &EventQuery,
        need: usize,
    ) -> Result<Vec<(String, EventSummary)>, StoreError> {
        let mut key_condition = "gsi1pk = :p".to_owned();
        if before_sk.is_some() {
            key_condition.push_str(" AND gsi1sk < :before");
        }
        let mut filters = Vec::new();
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
                .index_name(GSI1)
                .key_condition_expression(&key_condition)
                .expression_attribute_values(":p", s(&partition))
                .scan_index_forward(false)
                .set_exclusive_start_key(start_key);
            if let Some(before) = before_sk {
                request = request.expression_attribute_values(":before", s(before));
            }
            if let Some(source) = &query.source {
                request = request
                    .expression_attribute_names("#source", SOURCE_ATTR)
                    .expression_attribute_values(":source", s(source));
            }
            if let Some(event_type) = &query.event_type {
                request = request
                    .expression_attribute_names("#event_type", EVENT_TYPE_ATTR)
                    .expression_attribute_values(":event_type", s(event_type));
            }
            if filters.is_empty() {
                // Without a filter every item read is a match: read no more than needed.
                request = request.limit(i32::try_from(need - events.len()).unwrap_or(i32::MAX));
            } else {
                request = request.filter_expression(filters.join(" AND "));
            }
            let out = request.send().await.map_err(|e| unavailable("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                let sort_key = str_attr(&item, GSI1SK).unwrap_or_default().to_owned();
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
