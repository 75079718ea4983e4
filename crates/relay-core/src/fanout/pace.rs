//! Holding a delivery to its subscription's pace (`policy::Pacer`: rate and attempts at once, in
//! this process): a short wait is waited out within the batch; a longer one defers the delivery
//! to the deliveries queue as a delayed message, which is not a failed attempt.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Fanout, SETTLE_RESERVE};
use crate::domain::model::Subscription;
use crate::domain::policy::{Admission, Pacer};
use crate::ports::clock::SharedClock;

/// The longest a delivery waits for its turn inside a batch; a longer wait defers it.
pub const MAX_PACE_WAIT: Duration = Duration::from_secs(2);
/// A deferred delivery is due at least this late, so it does not come straight back.
const MIN_DEFER_MILLIS: i64 = 1_000;

/// The pace's answer to one delivery.
pub(super) enum Paced {
    /// Attempt it now; the turn is given back when dropped.
    Go(Option<Turn>),
    /// Defer it by this many milliseconds.
    Defer(i64),
}

/// An attempt the pacer let go; dropping it frees its in-flight place.
pub(super) struct Turn {
    pacer: Arc<Mutex<Pacer>>,
    clock: SharedClock,
    subscription_id: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.pacer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(&self.subscription_id, self.clock.now_millis());
    }
}

impl Fanout {
    /// Waits for the subscription's turn while it comes within `MAX_PACE_WAIT` (and, under a
    /// deadline, while the attempt of `timeout` still fits after it); else says to defer.
    pub(super) async fn pace(
        &self,
        subscription: &Subscription,
        timeout: Duration,
        deadline: Option<Instant>,
    ) -> Paced {
        if !subscription.policy.is_paced() {
            return Paced::Go(None);
        }
        let room = match deadline {
            Some(deadline) => MAX_PACE_WAIT.min(
                deadline
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(SETTLE_RESERVE + timeout),
            ),
            None => MAX_PACE_WAIT,
        };
        let room_ms = i64::try_from(room.as_millis()).unwrap_or(i64::MAX);
        let mut waited_ms = 0i64;
        loop {
            let admission = self
                .pacer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(
                    &subscription.id,
                    &subscription.policy,
                    self.clock.now_millis(),
                );
            match admission {
                Admission::Go => {
                    return Paced::Go(Some(Turn {
                        pacer: self.pacer.clone(),
                        clock: self.clock.clone(),
                        subscription_id: subscription.id.clone(),
                    }));
                }
                Admission::Wait(wait_ms) if waited_ms + wait_ms <= room_ms => {
                    let wait_ms = wait_ms.max(1);
                    tokio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())).await;
                    waited_ms += wait_ms;
                }
                Admission::Wait(wait_ms) => {
                    let due_in = self
                        .pacer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .defer(
                            &subscription.id,
                            &subscription.policy,
                            wait_ms.max(MIN_DEFER_MILLIS),
                            self.clock.now_millis(),
                        );
                    return Paced::Defer(due_in);
                }
            }
        }
    }
}
