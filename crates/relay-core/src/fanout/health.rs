//! Changes a delivery outcome makes to its stored subscription: its health
//! (`decide::HealthChange`) and its breaker (`breaker::BreakerChange`), in one write; and the
//! claim of a paused subscription's probe.

use std::time::Duration;

use tracing::{info, warn};

use super::breaker::{BreakerChange, Gate, claim_probe, gate};
use super::decide::HealthChange;
use super::{Fanout, SETTLE_RESERVE};
use crate::domain::model::{RefusedDeliveries, Subscription};
use crate::ports::subscriptions::modify_subscription;

/// A delivery that lost the probe to one whose lease cannot be read looks again this much later.
const PROBE_RECHECK_MILLIS: i64 = 2_000;

/// What the breaker lets a due delivery do now.
pub(super) enum Gated {
    /// Attempt it; `probe` when it is the one attempt at the end of a pause.
    Go { probe: bool },
    /// Paused: it waits until then (milliseconds since the epoch), not attempted.
    Wait(i64),
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Fanout {
    /// The breaker's gate for a delivery to `subscription` (as read through the cache). At the
    /// end of a pause, the delivery that claims the probe on the stored subscription attempts
    /// it; the claim holds the others back for the probe's attempt of `timeout` and settling.
    pub(super) async fn breaker_gate(
        &self,
        subscription: &Subscription,
        timeout: Duration,
    ) -> Gated {
        let now = self.clock.now_millis();
        let expired = match gate(subscription, now) {
            Gate::Deliver => return Gated::Go { probe: false },
            Gate::Wait(until) => return Gated::Wait(until),
            Gate::Probe(expired) => expired,
        };
        let lease_until = now + millis(timeout + SETTLE_RESERVE);
        let claimed = modify_subscription(self.catalog.as_ref(), &subscription.id, |stored| {
            claim_probe(stored, expired, lease_until)
        })
        .await;
        match claimed {
            Ok(Some(stored)) => {
                self.forget(subscription);
                if stored.paused_until == Some(lease_until) {
                    info!(subscription_id = %subscription.id, "pause over; probing with one delivery");
                    return Gated::Go { probe: true };
                }
                match gate(&stored, now) {
                    Gate::Deliver => Gated::Go { probe: false },
                    Gate::Wait(until) => Gated::Wait(until),
                    Gate::Probe(_) => Gated::Wait(now + PROBE_RECHECK_MILLIS),
                }
            }
            // Removed meanwhile: the attempt's own checks drop it.
            Ok(None) => Gated::Go { probe: false },
            Err(e) => {
                warn!(subscription_id = %subscription.id, error = %e, "could not claim the probe of a paused subscription; its delivery waits");
                Gated::Wait(now + PROBE_RECHECK_MILLIS)
            }
        }
    }

    pub(super) async fn apply_health(
        &self,
        subscription: &Subscription,
        health: Option<HealthChange>,
        breaker: Option<BreakerChange>,
    ) {
        let now = self.clock.now_millis();
        self.update_subscription(subscription, |sub| {
            let health_changed = health.as_ref().is_some_and(|change| {
                apply_health_change(sub, change);
                true
            });
            let breaker_changed = breaker.is_some_and(|change| change.apply(sub, now));
            health_changed || breaker_changed
        })
        .await;
        match &health {
            Some(HealthChange::Refused(_, reason)) => {
                warn!(subscription_id = %subscription.id, reason = %reason, "delivery refused by the destination guard");
            }
            Some(HealthChange::Disable(reason)) => {
                warn!(subscription_id = %subscription.id, reason = %reason, "subscription disabled");
            }
            _ => {}
        }
        match breaker {
            Some(BreakerChange::Pause { until, streak, .. }) => {
                warn!(subscription_id = %subscription.id, paused_until_ms = until, streak, "subscription paused; its deliveries wait");
            }
            Some(BreakerChange::Close) => {
                info!(subscription_id = %subscription.id, "subscription delivered to again; pause over");
            }
            None => {}
        }
    }

    /// Changes the stored subscription (not the cached copy) on the revision it read, so an
    /// operator's concurrent change (removal, disabling, a rotated secret) is never undone.
    /// `change` returns false when there is nothing to write.
    async fn update_subscription(
        &self,
        subscription: &Subscription,
        change: impl FnMut(&mut Subscription) -> bool + Send,
    ) {
        let id = &subscription.id;
        match modify_subscription(self.catalog.as_ref(), id, change).await {
            Ok(_) => self.forget(subscription),
            Err(e) => warn!(subscription_id = %id, error = %e, "could not update the subscription"),
        }
    }

    /// Drops the cached copies, so the next delivery reads the subscription as stored.
    fn forget(&self, subscription: &Subscription) {
        self.by_id.invalidate(&subscription.id);
        self.by_source.invalidate(&subscription.source);
    }
}

fn apply_health_change(sub: &mut Subscription, change: &HealthChange) {
    match change {
        HealthChange::StartFailing(now) => {
            sub.failing_since.get_or_insert(*now);
        }
        HealthChange::Recovered => {
            sub.failing_since = None;
            sub.refused = None;
        }
        HealthChange::Refused(now, reason) => {
            let refused = sub.refused.get_or_insert_with(|| RefusedDeliveries {
                since: *now,
                reason: reason.clone(),
            });
            refused.reason.clone_from(reason);
        }
        HealthChange::Disable(reason) => {
            sub.enabled = false;
            sub.disabled_reason = Some(reason.clone());
        }
    }
}
