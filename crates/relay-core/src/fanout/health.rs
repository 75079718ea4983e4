//! Health changes a delivery outcome makes to its stored subscription (`decide::HealthChange`).

use tracing::warn;

use super::Fanout;
use super::decide::HealthChange;
use crate::domain::model::{RefusedDeliveries, Subscription};
use crate::ports::subscriptions::modify_subscription;

impl Fanout {
    pub(super) async fn apply_health(&self, subscription: &Subscription, change: HealthChange) {
        match change {
            HealthChange::StartFailing(now) => {
                self.update_subscription(subscription, |sub| {
                    sub.failing_since.get_or_insert(now);
                })
                .await;
            }
            HealthChange::Recovered => {
                self.update_subscription(subscription, |sub| {
                    sub.failing_since = None;
                    sub.refused = None;
                })
                .await;
            }
            HealthChange::Refused(now, reason) => {
                self.update_subscription(subscription, |sub| {
                    let refused = sub.refused.get_or_insert_with(|| RefusedDeliveries {
                        since: now,
                        reason: reason.clone(),
                    });
                    refused.reason.clone_from(&reason);
                })
                .await;
                warn!(subscription_id = %subscription.id, reason = %reason, "delivery refused by the destination guard");
            }
            HealthChange::Disable(reason) => {
                self.update_subscription(subscription, |sub| {
                    sub.enabled = false;
                    sub.disabled_reason = Some(reason.clone());
                })
                .await;
                warn!(subscription_id = %subscription.id, reason = %reason, "subscription disabled");
            }
        }
    }

    /// Changes the stored subscription (not the cached copy) on the revision it read, so an
    /// operator's concurrent change (removal, disabling, a rotated secret) is never undone.
    async fn update_subscription(
        &self,
        subscription: &Subscription,
        mut change: impl FnMut(&mut Subscription) + Send,
    ) {
        let id = &subscription.id;
        let result = modify_subscription(self.catalog.as_ref(), id, |sub| {
            change(sub);
            true
        })
        .await;
        match result {
            Ok(_) => {
                self.by_id.invalidate(id);
                self.by_source.invalidate(&subscription.source);
            }
            Err(e) => warn!(subscription_id = %id, error = %e, "could not update the subscription"),
        }
    }
}
