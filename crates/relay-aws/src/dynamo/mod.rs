//! `Store` over one DynamoDB table (`pk`/`sk` strings, TTL on `expires_at`, GSI `gsi1` on
//! `gsi1pk`/`gsi1sk` projecting `GSI1_PROJECTED`, used by the catalog's listings only). Item
//! layout:
//!
//! | pk                         | sk                              | what                         |
//! |----------------------------|---------------------------------|------------------------------|
//! | `SOURCE#<name>`            | `META`                          | source (gsi1: `SOURCES`)     |
//! | `SOURCE#<source>`          | `SUB#<id>`                      | subscription (gsi1: `SUBS`)  |
//! | `SUB#<id>`                 | `META`                          | pointer: `source`            |
//! | `DEDUP#<source>#<key>`     | `META`                          | dedup claim, TTL             |
//! | `EVENTS#<shard>`           | `<event id>`                    | event + its first records    |
//! | `EVENTS#<shard>`           | `<event id>#<000001>#<sub id>`  | later attempt record, TTL    |
//!
//! The shard is a stable hash of the event id (`keys::EVENT_INDEX_SHARDS`), so the writes spread
//! over that many partitions. Event ids are time-ordered (UUIDv7 of their arrival), so each
//! shard, read backwards, lists its events newest first, and a listing merges the shards. An
//! event costs no index write: its item is its own listing entry, and an event delivered at the
//! first try is one item written once (`record_event`).
//!
//! Every look-up is a GetItem or a Query; nothing scans the table.
//!
//! The concerns live apart: `keys` (the key schema), `days` (UTC date math for the events
//! index), `codec` (items to records and back), and one file per port (`catalog`, `dedup`,
//! `archive`).

mod archive;
mod catalog;
mod codec;
mod dedup;
pub mod keys;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, TransactWriteItem, WriteRequest,
};
use relay_core::ports::StoreError;

use crate::describe_sdk_error;
use catalog::RevisionCondition;
use codec::s;

pub type Item = HashMap<String, AttributeValue>;

pub const GSI1: &str = "gsi1";
pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const EXPIRES_AT: &str = "expires_at";
const DOC: &str = "doc";
const BODY: &str = "body";
const BODY_DEFLATED: &str = "body_z";
const ATTEMPTS: &str = "attempts";
const PROVIDER: &str = "provider";
const SOURCE_ATTR: &str = "source";
const EVENT_TYPE_ATTR: &str = "event_type";
const BODY_BYTES: &str = "body_bytes";
/// What `gsi1` carries besides the keys: the documents the list commands decode, and an event's
/// source, type and body length (for the listing's filters and columns). Never the body.
pub const GSI1_PROJECTED: [&str; 4] = [DOC, SOURCE_ATTR, EVENT_TYPE_ATTR, BODY_BYTES];
const STATE: &str = "state";
const EVENT_ID: &str = "event_id";
const REVISION: &str = "rev";

const STATE_PENDING: &str = "pending";
const STATE_QUEUED: &str = "queued";

const BATCH_WRITE_MAX: usize = 25;
const BATCH_WRITE_ROUNDS: u32 = 5;

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
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true);
        query_all(query).await
    }

    /// Every item of one partition with a sort key from `low` to `high`, both included, read
    /// eventually consistent (half the read units): the fanout reads an event's records when
    /// its message comes back, at least a visibility timeout after they were written, and
    /// DynamoDB's replicas converge within about a second.
    async fn query_range(
        &self,
        pk: String,
        low: &str,
        high: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":low", s(low))
            .expression_attribute_values(":high", s(high))
            .consistent_read(false);
        query_all(query).await
    }

    /// Every item of one GSI bucket, in `gsi1sk` order.
    async fn query_gsi_bucket(&self, bucket: &str) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :b")
            .expression_attribute_values(":b", s(bucket));
        query_all(query).await
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
}

/// Every item a query matches, across all its pages.
async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<Item>, StoreError> {
    query
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| unavailable("Query", &e))
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
