//! `Catalog`: sources, subscriptions and their pointer items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use relay_core::domain::model::{Source, Subscription};
use relay_core::ports::{Catalog, StoreError};

use super::codec::{from_doc, n, s, str_attr, to_json};
use super::{
    DOC, DynamoStore, GSI1PK, GSI1SK, Item, PROVIDER, REVISION, SK, SOURCE_ATTR, keys, unavailable,
};

impl DynamoStore {
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
pub(super) enum RevisionCondition {
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
    pub(super) fn expression(self) -> (String, Option<HashMap<String, AttributeValue>>) {
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
