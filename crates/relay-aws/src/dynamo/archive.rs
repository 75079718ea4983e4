//! `EventArchive`: event items, spread over `keys::EVENT_INDEX_SHARDS` partitions and listed by
//! merging them, each with the attempt records stored with it and the later ones after it.

use std::collections::BTreeMap;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::future::try_join_all;
use relay_core::domain::model::{AttemptRecord, EventEnvelope};
use relay_core::ports::{EventArchive, EventPage, EventQuery, EventSummary, StoreError};

use super::codec::{
    attempts_of_event_item, event_from_item, event_item, event_summary_from_item, from_doc, n, s,
    str_attr, to_json,
};
use super::{DOC, DynamoStore, EXPIRES_AT, Item, SK, SOURCE_ATTR, build_error, keys, unavailable};

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
        let bounds = SortKeyBounds::of(query);
        let mut shards: Vec<ShardReader> = (0..keys::EVENT_INDEX_SHARDS)
            .map(|shard| ShardReader::new(keys::events_partition(shard), wanted))
            .collect();
        // A merge of the shards, newest first, that reads each shard a chunk at a time and
        // only as far as the page needs: a shard is read on while the page is short or its
        // last item read is newer than the page's oldest event (its unread items may belong
        // on the page). Reading `wanted` items of every shard would read up to 16 times the
        // page.
        let mut found: Vec<(String, EventSummary)> = Vec::new();
        loop {
            let oldest_on_page = (found.len() >= wanted).then(|| found[wanted - 1].0.clone());
            let reads = shards
                .iter_mut()
                .filter(|shard| shard.may_hold_newer(oldest_on_page.as_deref()))
                .map(|shard| shard.read_chunk(self, &bounds, query));
            let chunks = try_join_all(reads).await?;
            if chunks.is_empty() {
                break;
            }
            found.extend(chunks.into_iter().flatten());
            // Ids are time-ordered: the largest sort key is the newest event.
            found.sort_by(|a, b| b.0.cmp(&a.0));
            found.truncate(wanted);
        }
        let events = found.into_iter().map(|(_, e)| e).collect();
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
        let (event_items, record_items): (Vec<&Item>, Vec<&Item>) = items
            .iter()
            .partition(|item| str_attr(item, SK) == Some(event_id));
        merged_log(event_items.first().copied(), record_items)
    }
}

/// An event's attempt log from its item's records and its later record items: the records
/// stored with the event first, a later record of the same key replacing one; by attempt
/// number, then subscription id.
fn merged_log<'a>(
    event_item: Option<&Item>,
    record_items: impl IntoIterator<Item = &'a Item>,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut log: BTreeMap<(u32, String), AttemptRecord> = BTreeMap::new();
    if let Some(item) = event_item {
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

/// Whether `sort_key` is a later attempt record of the event `event_id` (`<id>#...`).
fn is_record_of(sort_key: &str, event_id: &str) -> bool {
    sort_key
        .strip_prefix(event_id)
        .is_some_and(|rest| rest.starts_with('#'))
}

/// The sort-key range a listing reads in each partition. Event ids begin with their arrival
/// time (`evt_` + 12 hex digits of milliseconds, `ids::event_id_at`), so a time range is a key
/// range: every id of an instant at or after `t` sorts at or after `evt_<t as 12 hex digits>`.
/// The cursor's own event (the high bound, inclusive) is left out by `EventQuery::admits`; its
/// later records (`<id>#...`) sort above it and are not read.
struct SortKeyBounds {
    low: Option<String>,
    high: Option<String>,
}

impl SortKeyBounds {
    fn of(query: &EventQuery) -> Self {
        let time_key = |millis: i64| format!("evt_{:012x}", millis.max(0));
        let until = query.until_millis.map(time_key);
        let before = query.before.as_ref().map(|cursor| cursor.id.clone());
        let high = match (until, before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            low: query.since_millis.map(time_key),
            high,
        }
    }

    fn key_condition(&self) -> &'static str {
        match (&self.low, &self.high) {
            (Some(_), Some(_)) => "pk = :p AND sk BETWEEN :low AND :high",
            (Some(_), None) => "pk = :p AND sk >= :low",
            (None, Some(_)) => "pk = :p AND sk <= :high",
            (None, None) => "pk = :p",
        }
    }
}

/// One shard's items within the listing's bounds, read newest first a chunk at a time.
/// Later attempt records share the partition and sort just above their event: read newest
/// first, an event's records come before its item. Without a delivery filter they are left out
/// by the filter on `doc`'s companion `source`; with one they are read and make up the event's
/// log.
struct ShardReader {
    partition: String,
    start_key: Option<Item>,
    done: bool,
    /// Items the next read asks for (DynamoDB's `Limit` counts items read, before the
    /// filter): the shard's even share of the page and a margin for an uneven spread first,
    /// doubled with each further read of this shard.
    chunk: usize,
    /// The sort key of the last item read, matching or not.
    last_read: Option<String>,
    /// Records read whose event item comes in the next chunk.
    later_records: Vec<Item>,
}

/// The largest chunk a shard is read in.
const MAX_CHUNK: usize = 1_000;

impl ShardReader {
    fn new(partition: String, wanted: usize) -> Self {
        let share = wanted.div_ceil(keys::EVENT_INDEX_SHARDS as usize);
        Self {
            partition,
            start_key: None,
            done: false,
            chunk: (share + share / 4 + 2).min(MAX_CHUNK),
            last_read: None,
            later_records: Vec::new(),
        }
    }

    /// Whether unread items of this shard may be newer than `oldest_on_page` (`None`: the
    /// page is not full yet).
    fn may_hold_newer(&self, oldest_on_page: Option<&str>) -> bool {
        !self.done
            && match (oldest_on_page, &self.last_read) {
                (None, _) | (_, None) => true,
                (Some(oldest), Some(last)) => last.as_str() > oldest,
            }
    }

    /// The next chunk's matching events, each with its sort key.
    async fn read_chunk(
        &mut self,
        store: &DynamoStore,
        bounds: &SortKeyBounds,
        query: &EventQuery,
    ) -> Result<Vec<(String, EventSummary)>, StoreError> {
        let with_log = query.delivery.is_some();
        let mut request = store
            .client
            .query()
            .table_name(&store.table)
            .key_condition_expression(bounds.key_condition())
            .expression_attribute_values(":p", s(&self.partition))
            .scan_index_forward(false)
            .limit(i32::try_from(self.chunk).unwrap_or(i32::MAX))
            .set_exclusive_start_key(self.start_key.take());
        if let Some(low) = &bounds.low {
            request = request.expression_attribute_values(":low", s(low));
        }
        if let Some(high) = &bounds.high {
            request = request.expression_attribute_values(":high", s(high));
        }
        if !with_log {
            let mut filters = vec!["attribute_exists(#source)"];
            if let Some(source) = &query.source {
                filters.push("#source = :source");
                request = request.expression_attribute_values(":source", s(source));
            }
            request = request
                .expression_attribute_names("#source", SOURCE_ATTR)
                .filter_expression(filters.join(" AND "));
        }
        let out = request.send().await.map_err(|e| unavailable("Query", &e))?;
        self.start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
        self.done = self.start_key.is_none();
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        if let Some(key) = self.start_key.as_ref().and_then(|k| str_attr(k, SK)) {
            // The filter may have dropped every item read; the evaluated key still says how far.
            self.last_read = Some(key.to_owned());
        }
        let mut events = Vec::new();
        for item in out.items.unwrap_or_default() {
            let sort_key = str_attr(&item, SK).unwrap_or_default().to_owned();
            if sort_key.contains('#') {
                self.later_records.push(item);
                continue;
            }
            // Records of an event whose item is gone (expired first) are not this one's.
            let records: Vec<Item> = std::mem::take(&mut self.later_records)
                .into_iter()
                .filter(|r| str_attr(r, SK).is_some_and(|k| is_record_of(k, &sort_key)))
                .collect();
            let summary = event_summary_from_item(&item)?
                .admitted(query, || merged_log(Some(&item), &records))?;
            if let Some(summary) = summary {
                events.push((sort_key, summary));
            }
        }
        Ok(events)
    }
}
