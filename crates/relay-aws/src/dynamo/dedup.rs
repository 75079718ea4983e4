//! `DedupLedger`: conditional puts on `DEDUP#` items, live until `expires_at`.

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use relay_core::domain::model::DedupClaim;
use relay_core::ports::{Claim, DedupLedger, Lease, StoreError};

use super::codec::{n, num_attr, s, str_attr};
use super::{
    DynamoStore, EVENT_ID, EXPIRES_AT, Item, STATE, STATE_PENDING, STATE_QUEUED, keys, unavailable,
};

impl DynamoStore {
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
    let corrupt = |what: &str| StoreError::Corrupt(format!("dedup item {pk} has no {what}"));
    let holder = str_attr(item, EVENT_ID).ok_or_else(|| corrupt("event_id"))?;
    let queued = match str_attr(item, STATE) {
        Some(STATE_QUEUED) => true,
        Some(STATE_PENDING) => false,
        _ => return Err(corrupt("valid state")),
    };
    Ok(DedupClaim::of_live_claim(holder, queued, event_id))
}

#[async_trait]
impl DedupLedger for DynamoStore {
    async fn claim_dedup(&self, slot: Claim<'_>, lease: Lease) -> Result<DedupClaim, StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
        let (now, lease_until) = (lease.now, lease.until);
        let pk = keys::dedup_pk(source, key);
        for _ in 0..3 {
            if let Some(claim) = self.try_claim(&pk, event_id, now, lease_until).await? {
                return Ok(claim);
            }
        }
        // The item keeps changing under us: someone else is accepting this delivery right now
        // (who is not known: an empty id).
        Ok(DedupClaim::Pending {
            event_id: String::new(),
        })
    }

    async fn confirm_dedup(&self, slot: Claim<'_>, expires_at: i64) -> Result<(), StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
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
        settle_conditional(
            result,
            "UpdateItem",
            UpdateItemError::is_conditional_check_failed_exception,
            || {
                Err(StoreError::Conflict(
                    "dedup claim expired and was taken by another event".to_owned(),
                ))
            },
        )
    }

    async fn release_dedup(&self, slot: Claim<'_>) -> Result<(), StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
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
        // Not ours any more (or already gone): nothing to release.
        settle_conditional(
            result,
            "DeleteItem",
            DeleteItemError::is_conditional_check_failed_exception,
            || Ok(()),
        )
    }

    async fn claimed_event_id(
        &self,
        source: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let pk = keys::dedup_pk(source, key);
        let Some(item) = self.get(pk, keys::META).await? else {
            return Ok(None);
        };
        // TTL reaps late, so an expired item may still be there.
        let live = num_attr(&item, EXPIRES_AT).is_some_and(|at| now < at);
        if !live {
            return Ok(None);
        }
        Ok(str_attr(&item, EVENT_ID).map(str::to_owned))
    }
}

/// The outcome of a conditional write: success, `on_condition_failed` when the condition did
/// not hold, or the service unavailable.
fn settle_conditional<T, E: ProvideErrorMetadata>(
    result: Result<T, SdkError<E, HttpResponse>>,
    operation: &str,
    is_condition_failed: impl Fn(&E) -> bool,
    on_condition_failed: impl FnOnce() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(&is_condition_failed) => {
            on_condition_failed()
        }
        Err(err) => Err(unavailable(operation, &err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::codec::tests::item;

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
            DedupClaim::Pending {
                event_id: "evt_1".into()
            }
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
}
