//! `Store` over one DynamoDB table (`pk`/`sk` strings, TTL on `expires_at`, GSI `gsi1` on
//! `gsi1pk`/`gsi1sk` projecting all attributes). Item layout:
//!
//! | pk                         | sk                              | what                         |
//! |----------------------------|---------------------------------|------------------------------|
//! | `SOURCE#<name>`            | `META`                          | source (gsi1: `SOURCES`)     |
//! | `SOURCE#<source>`          | `SUB#<id>`                      | subscription (gsi1: `SUBS`)  |
//! | `SUB#<id>`                 | `META`                          | pointer: `source`            |
//! | `DEDUP#<source>#<key>`     | `META`                          | dedup claim, TTL             |
//! | `EVENT#<id>`               | `META`                          | event (gsi1: `EVENTS#<day>`) |
//! | `EVENT#<id>`               | `ATTEMPT#<000001>#<sub id>`     | attempt record, TTL          |
//!
//! Every look-up is a GetItem or a Query; nothing scans the table.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, WriteRequest,
};
use relay_core::model::{AttemptRecord, DedupClaim, EventEnvelope, Source, Subscription};
use relay_core::ports::{Catalog, DedupLedger, EventArchive, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::describe_sdk_error;

pub type Item = HashMap<String, AttributeValue>;

pub const GSI1: &str = "gsi1";
pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const EXPIRES_AT: &str = "expires_at";
const DOC: &str = "doc";
const BODY: &str = "body";
const PROVIDER: &str = "provider";
const SOURCE_ATTR: &str = "source";
const STATE: &str = "state";
const EVENT_ID: &str = "event_id";
const REVISION: &str = "rev";

const STATE_PENDING: &str = "pending";
const STATE_QUEUED: &str = "queued";

/// `list_events` walks back this many daily buckets before today (queues and records are kept
/// 14 days), plus tomorrow's in case this clock is behind the receiver's.
const EVENT_BUCKET_DAYS_BACK: i64 = 14;
const BATCH_WRITE_MAX: usize = 25;
const BATCH_WRITE_ROUNDS: u32 = 5;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Key and bucket naming, kept pure so it can be unit-tested and shared with tooling.
pub mod keys {
    pub const META: &str = "META";
    pub const SOURCES_BUCKET: &str = "SOURCES";
    pub const SUBS_BUCKET: &str = "SUBS";
    pub const SUB_PREFIX: &str = "SUB#";
    pub const ATTEMPT_PREFIX: &str = "ATTEMPT#";

    pub fn source_pk(name: &str) -> String {
        format!("SOURCE#{name}")
    }

    pub fn subscription_sk(id: &str) -> String {
        format!("{SUB_PREFIX}{id}")
    }

    /// The pointer item's pk, which finds a subscription's source from its id alone.
    pub fn subscription_pointer_pk(id: &str) -> String {
        format!("{SUB_PREFIX}{id}")
    }

    pub fn dedup_pk(source: &str, key: &str) -> String {
        format!("DEDUP#{source}#{key}")
    }

    pub fn event_pk(id: &str) -> String {
        format!("EVENT#{id}")
    }

    /// Zero-padded so the sort key orders attempts numerically.
    pub fn attempt_sk(attempt: u32, subscription_id: &str) -> String {
        format!("{ATTEMPT_PREFIX}{attempt:06}#{subscription_id}")
    }

    /// The GSI bucket of events received on the UTC day containing `millis`.
    pub fn events_bucket(millis: i64) -> String {
        let (y, m, d) = civil_from_days(millis.div_euclid(super::MILLIS_PER_DAY));
        format!("EVENTS#{y:04}-{m:02}-{d:02}")
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // day is 1..=31 and month 1..=12 by construction.
        (year, month as u32, day as u32)
    }
}

/// The relay's `Store` over one DynamoDB table. Cheap to clone; build once per process.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        Ok(out.item)
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &e))?;
        Ok(())
    }

    /// Every item of one partition whose sort key starts with `prefix`.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| unavailable("Query", &e))
    }

    /// Every item of one GSI bucket, in `gsi1sk` order.
    async fn query_gsi_bucket(&self, bucket: &str) -> Result<Vec<Item>, StoreError> {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :b")
            .expression_attribute_values(":b", s(bucket))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| unavailable("Query", &e))
    }

    /// Writes requests 25 at a time, resubmitting what DynamoDB leaves unprocessed a few times.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut requests = requests;
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(BATCH_WRITE_MAX));
            let mut pending = std::mem::replace(&mut requests, rest);
            let mut round = 0;
            while !pending.is_empty() {
                if round == BATCH_WRITE_ROUNDS {
                    return Err(StoreError::Unavailable(
                        "BatchWriteItem: items left unprocessed (throttled)".to_owned(),
                    ));
                }
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << round)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchWriteItem", &e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                round += 1;
            }
        }
        Ok(())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| unavailable("TransactWriteItems", &e))?;
        Ok(())
    }

    fn key(&self, pk: String, sk: &str) -> Item {
        HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
    }

    fn put_tx(
        &self,
        item: Item,
        condition: Option<RevisionCondition>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(condition) = condition {
            let (expression, values) = condition.expression();
            put = put
                .condition_expression(expression)
                .set_expression_attribute_values(values);
        }
        let put = put.build().map_err(|_| build_error("Put"))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_tx_if(
        &self,
        pk: String,
        sk: &str,
        condition: RevisionCondition,
    ) -> Result<TransactWriteItem, StoreError> {
        let (expression, values) = condition.expression();
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, sk)))
            .condition_expression(expression)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|_| build_error("Delete"))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn delete_tx(&self, pk: String, sk: &str) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, sk)))
            .build()
            .map_err(|_| build_error("Delete"))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn delete_request(&self, pk: String, sk: &str) -> Result<WriteRequest, StoreError> {
        let delete = DeleteRequest::builder()
            .set_key(Some(self.key(pk, sk)))
            .build()
            .map_err(|_| build_error("DeleteRequest"))?;
        Ok(WriteRequest::builder().delete_request(delete).build())
    }

    /// The source a subscription id belongs to, from its pointer item.
    async fn subscription_source(&self, id: &str) -> Result<Option<String>, StoreError> {
        let Some(pointer) = self
            .get(keys::subscription_pointer_pk(id), keys::META)
            .await?
        else {
            return Ok(None);
        };
        match str_attr(&pointer, SOURCE_ATTR) {
            Some(source) => Ok(Some(source.to_owned())),
            None => Err(StoreError::Corrupt(format!(
                "subscription pointer {} has no source",
                keys::subscription_pointer_pk(id)
            ))),
        }
    }

    fn subscription_item(&self, sub: &Subscription) -> Result<Item, StoreError> {
        let mut item = self.key(
            keys::source_pk(&sub.source),
            &keys::subscription_sk(&sub.id),
        );
        item.insert(DOC.to_owned(), s(to_json(sub)?));
        // Outside the doc too, for the condition of the next write.
        item.insert(REVISION.to_owned(), n(sub.revision));
        item.insert(GSI1PK.to_owned(), s(keys::SUBS_BUCKET));
        item.insert(GSI1SK.to_owned(), s(&sub.id));
        Ok(item)
    }

    /// One claim attempt: `Ok(None)` when the blocking item vanished or expired meanwhile and
    /// the claim should simply be tried again.
    async fn try_claim(
        &self,
        pk: &str,
        event_id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<DedupClaim>, StoreError> {
        let mut item = self.key(pk.to_owned(), keys::META);
        item.insert(STATE.to_owned(), s(STATE_PENDING));
        item.insert(EVENT_ID.to_owned(), s(event_id));
        item.insert(EXPIRES_AT.to_owned(), n(lease_until));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // A claim is live while `now < expires_at`, free from the expiry instant on.
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Some(DedupClaim::New)),
            Err(err) => err,
        };
        let conditional = err
            .as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception());
        if !conditional {
            return Err(unavailable("PutItem", &err));
        }
        let existing = match err.into_service_error() {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                e,
            ) => e.item,
            _ => None,
        };
        let existing = match existing {
            Some(item) => Some(item),
            None => self.get(pk.to_owned(), keys::META).await?,
        };
        let Some(existing) = existing else {
            return Ok(None);
        };
        if num_attr(&existing, EXPIRES_AT).is_some_and(|at| at <= now) {
            return Ok(None);
        }
        classify_claim(pk, &existing, event_id).map(Some)
    }
}

/// What an existing, live dedup item means for a claimant holding `event_id`.
fn classify_claim(pk: &str, item: &Item, event_id: &str) -> Result<DedupClaim, StoreError> {
    let holder = str_attr(item, EVENT_ID);
    match str_attr(item, STATE) {
        Some(STATE_QUEUED) => match holder {
            Some(id) => Ok(DedupClaim::Queued {
                event_id: id.to_owned(),
            }),
            None => Err(StoreError::Corrupt(format!(
                "dedup item {pk} has no event_id"
            ))),
        },
        // Our own lease, written by an earlier try whose response was lost: it is ours.
        Some(STATE_PENDING) if holder == Some(event_id) => Ok(DedupClaim::New),
        Some(STATE_PENDING) => Ok(DedupClaim::Pending),
        _ => Err(StoreError::Corrupt(format!(
            "dedup item {pk} has no valid state"
        ))),
    }
}

#[async_trait]
impl Catalog for DynamoStore {
    async fn get_source(&self, name: &str) -> Result<Option<Source>, StoreError> {
        self.get(keys::source_pk(name), keys::META)
            .await?
            .map(|item| from_doc(&item))
            .transpose()
    }

    async fn put_source(&self, source: &Source) -> Result<(), StoreError> {
        let mut item = self.key(keys::source_pk(&source.name), keys::META);
        item.insert(DOC.to_owned(), s(to_json(source)?));
        item.insert(PROVIDER.to_owned(), s(source.provider.name()));
        item.insert(GSI1PK.to_owned(), s(keys::SOURCES_BUCKET));
        item.insert(GSI1SK.to_owned(), s(&source.name));
        self.put(item).await
    }

    async fn list_sources(&self) -> Result<Vec<Source>, StoreError> {
        let items = self.query_gsi_bucket(keys::SOURCES_BUCKET).await?;
        items.iter().map(from_doc).collect()
    }

    async fn remove_source(&self, name: &str) -> Result<bool, StoreError> {
        // Subscriptions first: if this fails halfway the source still exists and the operator
        // can repeat the command, rather than orphans surviving to reattach to a new source.
        let subs = self
            .query_prefix(keys::source_pk(name), keys::SUB_PREFIX)
            .await?;
        let mut requests = Vec::with_capacity(subs.len() * 2);
        for item in &subs {
            let Some(sk) = str_attr(item, SK) else {
                continue;
            };
            let id = sk.strip_prefix(keys::SUB_PREFIX).unwrap_or(sk);
            requests.push(self.delete_request(keys::subscription_pointer_pk(id), keys::META)?);
            requests.push(self.delete_request(keys::source_pk(name), sk)?);
        }
        self.batch_write(requests).await?;
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::source_pk(name), keys::META)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem", &e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn source_subscriptions(&self, source: &str) -> Result<Vec<Subscription>, StoreError> {
        let items = self
            .query_prefix(keys::source_pk(source), keys::SUB_PREFIX)
            .await?;
        items.iter().map(from_doc).collect()
    }

    async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let Some(source) = self.subscription_source(id).await? else {
            return Ok(None);
        };
        self.get(keys::source_pk(&source), &keys::subscription_sk(id))
            .await?
            .map(|item| from_doc(&item))
            .transpose()
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<u64, StoreError> {
        let expected = subscription.revision;
        let stored = Subscription {
            revision: expected + 1,
            ..subscription.clone()
        };
        let previous_source = self.subscription_source(&stored.id).await?;
        let mut pointer = self.key(keys::subscription_pointer_pk(&stored.id), keys::META);
        pointer.insert(SOURCE_ATTR.to_owned(), s(&stored.source));
        let item = self.subscription_item(&stored)?;
        let unchanged = revision_condition(expected);
        let items = match previous_source.filter(|old| *old != stored.source) {
            // Moved to another source: the old copy goes (if unchanged), so it no longer
            // receives that source's events, and the new one must not exist yet.
            Some(old) => vec![
                self.put_tx(pointer, None)?,
                self.delete_tx_if(
                    keys::source_pk(&old),
                    &keys::subscription_sk(&stored.id),
                    unchanged,
                )?,
                self.put_tx(item, Some(RevisionCondition::Absent))?,
            ],
            None => vec![
                self.put_tx(pointer, None)?,
                self.put_tx(item, Some(unchanged))?,
            ],
        };
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(expected + 1),
            Err(e) if condition_failed(&e) => {
                Err(StoreError::Stale(format!("subscription {}", stored.id)))
            }
            Err(e) => Err(unavailable("TransactWriteItems", &e)),
        }
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let items = self.query_gsi_bucket(keys::SUBS_BUCKET).await?;
        items.iter().map(from_doc).collect()
    }

    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let Some(source) = self.subscription_source(id).await? else {
            return Ok(false);
        };
        self.transact(vec![
            self.delete_tx(keys::source_pk(&source), &keys::subscription_sk(id))?,
            self.delete_tx(keys::subscription_pointer_pk(id), keys::META)?,
        ])
        .await?;
        Ok(true)
    }
}

#[async_trait]
impl DedupLedger for DynamoStore {
    async fn claim_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<DedupClaim, StoreError> {
        let pk = keys::dedup_pk(source, key);
        for _ in 0..3 {
            if let Some(claim) = self.try_claim(&pk, event_id, now, lease_until).await? {
                return Ok(claim);
            }
        }
        // The item keeps changing under us: someone else is accepting this delivery right now.
        Ok(DedupClaim::Pending)
    }

    async fn confirm_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::dedup_pk(source, key), keys::META)))
            .update_expression("SET #state = :queued, event_id = :id, expires_at = :exp")
            // A lease that TTL already reaped is recreated: the event *was* queued.
            .condition_expression("attribute_not_exists(pk) OR event_id = :id")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":queued", s(STATE_QUEUED))
            .expression_attribute_values(":id", s(event_id))
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict(
                    "dedup claim expired and was taken by another event".to_owned(),
                ))
            }
            Err(err) => Err(unavailable("UpdateItem", &err)),
        }
    }

    async fn release_dedup(
        &self,
        source: &str,
        key: &str,
        event_id: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::dedup_pk(source, key), keys::META)))
            .condition_expression("event_id = :id AND #state = :pending")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":id", s(event_id))
            .expression_attribute_values(":pending", s(STATE_PENDING))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours any more (or already gone): nothing to release.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable("DeleteItem", &err)),
        }
    }
}

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

/// The event item. The body is its own string attribute rather than inside the JSON `doc`, so
/// JSON escaping cannot push a body near the size limit over DynamoDB's 400 KB item limit.
fn event_item(event: &EventEnvelope, expires_at: i64) -> Result<Item, StoreError> {
    let head = without_body(event);
    let mut item = HashMap::from([
        (PK.to_owned(), s(keys::event_pk(&event.id))),
        (SK.to_owned(), s(keys::META)),
        (DOC.to_owned(), s(to_json(&head)?)),
        (EXPIRES_AT.to_owned(), n(expires_at)),
        (GSI1PK.to_owned(), s(keys::events_bucket(event.received_at))),
        (GSI1SK.to_owned(), s(&event.id)),
    ]);
    if !event.body.is_empty() {
        item.insert(BODY.to_owned(), s(&event.body));
    }
    Ok(item)
}

fn event_from_item(item: &Item) -> Result<EventEnvelope, StoreError> {
    let mut event: EventEnvelope = from_doc(item)?;
    if let Some(body) = str_attr(item, BODY) {
        event.body = body.to_owned();
    }
    Ok(event)
}

/// A copy of the envelope's small fields, with an empty body.
fn without_body(event: &EventEnvelope) -> EventEnvelope {
    EventEnvelope {
        id: event.id.clone(),
        source: event.source.clone(),
        event_type: event.event_type.clone(),
        content_type: event.content_type.clone(),
        received_at: event.received_at,
        body: String::new(),
        body_encoding: event.body_encoding,
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

fn num_attr(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// True when a transaction was cancelled because one of its conditions did not hold.
fn condition_failed(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    match err.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                cancelled,
            ),
        ) => cancelled
            .cancellation_reasons()
            .iter()
            .any(|reason| reason.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

/// What a conditional subscription write expects of the stored item.
#[derive(Debug, Clone, Copy)]
enum RevisionCondition {
    /// Not stored yet.
    Absent,
    /// Stored at exactly this revision.
    At(u64),
}

fn revision_condition(expected: u64) -> RevisionCondition {
    if expected == 0 {
        RevisionCondition::Absent
    } else {
        RevisionCondition::At(expected)
    }
}

impl RevisionCondition {
    fn expression(self) -> (String, Option<HashMap<String, AttributeValue>>) {
        match self {
            RevisionCondition::Absent => ("attribute_not_exists(pk)".to_owned(), None),
            // Items written before revisions existed have no `rev` and read as revision 1.
            RevisionCondition::At(1) => (
                "rev = :rev OR (attribute_exists(pk) AND attribute_not_exists(rev))".to_owned(),
                Some(HashMap::from([(":rev".to_owned(), n(1))])),
            ),
            RevisionCondition::At(revision) => (
                "rev = :rev".to_owned(),
                Some(HashMap::from([(":rev".to_owned(), n(revision))])),
            ),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode record ({:?})", e.classify())))
}

/// Decodes the `doc` attribute. The message names the item and the position of the fault, never
/// its contents (a doc can hold secrets).
fn from_doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let name = || {
        format!(
            "{}/{}",
            str_attr(item, PK).unwrap_or("?"),
            str_attr(item, SK).unwrap_or("?")
        )
    };
    let doc = str_attr(item, DOC)
        .ok_or_else(|| StoreError::Corrupt(format!("item {} has no doc", name())))?;
    serde_json::from_str(doc).map_err(|e| {
        StoreError::Corrupt(format!(
            "item {} has an invalid doc ({:?} error at line {} column {})",
            name(),
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn unavailable<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    operation: &str,
    err: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError {
    let message = describe_sdk_error(operation, err);
    tracing::warn!(error = %message, "dynamodb call failed");
    StoreError::Unavailable(message)
}

fn build_error(what: &str) -> StoreError {
    StoreError::Unavailable(format!("{what}: request could not be built"))
}

#[cfg(test)]
mod tests {
    use super::keys::*;
    use super::*;
    use relay_core::model::BodyEncoding;

    #[test]
    fn keys_are_prefixed() {
        assert_eq!(source_pk("gh"), "SOURCE#gh");
        assert_eq!(subscription_sk("sub_1"), "SUB#sub_1");
        assert_eq!(subscription_pointer_pk("sub_1"), "SUB#sub_1");
        assert_eq!(dedup_pk("gh", "abc-123"), "DEDUP#gh#abc-123");
        assert_eq!(event_pk("evt_1"), "EVENT#evt_1");
    }

    #[test]
    fn attempt_sort_keys_order_numerically() {
        assert_eq!(attempt_sk(1, "sub_a"), "ATTEMPT#000001#sub_a");
        let mut keys = vec![
            attempt_sk(10, "sub_a"),
            attempt_sk(2, "sub_b"),
            attempt_sk(2, "sub_a"),
            attempt_sk(1, "sub_z"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                attempt_sk(1, "sub_z"),
                attempt_sk(2, "sub_a"),
                attempt_sk(2, "sub_b"),
                attempt_sk(10, "sub_a"),
            ]
        );
    }

    #[test]
    fn day_buckets_are_utc_dates() {
        assert_eq!(events_bucket(0), "EVENTS#1970-01-01");
        assert_eq!(events_bucket(MILLIS_PER_DAY - 1), "EVENTS#1970-01-01");
        assert_eq!(events_bucket(MILLIS_PER_DAY), "EVENTS#1970-01-02");
        assert_eq!(events_bucket(-1), "EVENTS#1969-12-31");
        // 2024-02-29T23:59:59.999Z and the next millisecond.
        assert_eq!(events_bucket(1_709_251_199_999), "EVENTS#2024-02-29");
        assert_eq!(events_bucket(1_709_251_200_000), "EVENTS#2024-03-01");
        // 2000-12-31T12:00:00Z (a leap century's last day).
        assert_eq!(events_bucket(978_264_000_000), "EVENTS#2000-12-31");
        assert_eq!(events_bucket(1_767_225_600_000), "EVENTS#2026-01-01");
    }

    #[test]
    fn civil_dates_round_trip_over_decades() {
        // Consecutive days never skip or repeat a date.
        let mut previous = civil_from_days(-1);
        for day in 0..40_000 {
            let current = civil_from_days(day);
            assert!(current > previous, "{current:?} after {previous:?}");
            assert!((1..=12).contains(&current.1) && (1..=31).contains(&current.2));
            previous = current;
        }
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn claims_classify_existing_items() {
        let queued = item(&[(STATE, s("queued")), (EVENT_ID, s("evt_1"))]);
        assert_eq!(
            classify_claim("p", &queued, "evt_2").unwrap(),
            DedupClaim::Queued {
                event_id: "evt_1".into()
            }
        );
        let pending = item(&[(STATE, s("pending")), (EVENT_ID, s("evt_1"))]);
        assert_eq!(
            classify_claim("p", &pending, "evt_2").unwrap(),
            DedupClaim::Pending
        );
        assert_eq!(
            classify_claim("p", &pending, "evt_1").unwrap(),
            DedupClaim::New
        );
        let broken = item(&[(EVENT_ID, s("evt_1"))]);
        assert!(matches!(
            classify_claim("p", &broken, "evt_1"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn event_items_keep_the_body_outside_the_doc() {
        let event = EventEnvelope {
            id: "evt_1".into(),
            source: "gh".into(),
            event_type: "push".into(),
            content_type: Some("application/json".into()),
            received_at: 1_709_251_200_000,
            body: "{\"secret\":\"\\\"quoted\\\"\"}".into(),
            body_encoding: BodyEncoding::Utf8,
        };
        let item = event_item(&event, 99).unwrap();
        assert_eq!(str_attr(&item, GSI1PK), Some("EVENTS#2024-03-01"));
        assert_eq!(str_attr(&item, GSI1SK), Some("evt_1"));
        assert_eq!(num_attr(&item, EXPIRES_AT), Some(99));
        assert!(!str_attr(&item, DOC).unwrap().contains("secret"));
        assert_eq!(event_from_item(&item).unwrap(), event);

        let empty = EventEnvelope {
            body: String::new(),
            ..event
        };
        let item = event_item(&empty, 99).unwrap();
        assert!(!item.contains_key(BODY));
        assert_eq!(event_from_item(&item).unwrap(), empty);
    }

    #[test]
    fn corrupt_docs_do_not_echo_contents() {
        let item = item(&[
            (PK, s("SOURCE#gh")),
            (SK, s("META")),
            (DOC, s("{\"name\":\"gh\",\"secrets\":[\"topsecret\"], oops")),
        ]);
        let err = from_doc::<Source>(&item).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)));
        assert!(message.contains("SOURCE#gh/META"), "{message}");
        assert!(!message.contains("topsecret"), "{message}");
    }
}
