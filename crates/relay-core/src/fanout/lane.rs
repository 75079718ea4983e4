//! Which deliveries lane a subscription's next delivery waits on. A subscription that keeps
//! failing has its retries, hand-offs and hops on the failing lane, consumed apart from the
//! healthy one with its own share of workers: however large its backlog grows, another
//! subscription's retries never queue behind it. Pure; `Fanout` reads the inputs.

use super::breaker::{FAILURE_RUN, FAILURE_RUN_SPAN, Run};
use crate::domain::model::Subscription;
use crate::ports::DeliveryLane;

/// The lane of `subscription`'s next delivery: failing when it is paused by the breaker, when
/// this process has counted `FAILURE_RUN` failed attempts in a row, or when its stored run of
/// failures (`failing_since`, cleared by any delivery) is older than `FAILURE_RUN_SPAN`. A
/// subscriber that fails now and then but delivers in between stays on the healthy lane; the
/// first delivery after a run brings the next one back.
pub fn lane(subscription: &Subscription, run: Run, now_millis: i64) -> DeliveryLane {
    let span_secs = i64::try_from(FAILURE_RUN_SPAN.as_secs()).unwrap_or(i64::MAX);
    let failing_long = subscription
        .failing_since
        .is_some_and(|since| since <= now_millis / 1000 - span_secs);
    if subscription.paused_until.is_some() || run.failures >= FAILURE_RUN || failing_long {
        DeliveryLane::Failing
    } else {
        DeliveryLane::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::contract::subscription;

    const NOW_MS: i64 = 1_700_000_000_000;
    const NOW_SECS: i64 = NOW_MS / 1000;

    fn run(failures: u32) -> Run {
        Run {
            failures,
            since_millis: NOW_MS - 1_000,
        }
    }

    #[test]
    fn a_subscriber_delivering_or_failing_briefly_stays_on_the_healthy_lane() {
        let mut sub = subscription("sub_1", "github");
        assert_eq!(lane(&sub, Run::default(), NOW_MS), DeliveryLane::Healthy);
        assert_eq!(
            lane(&sub, run(FAILURE_RUN - 1), NOW_MS),
            DeliveryLane::Healthy
        );
        sub.failing_since = Some(NOW_SECS - 59);
        assert_eq!(lane(&sub, run(1), NOW_MS), DeliveryLane::Healthy);
    }

    #[test]
    fn a_run_of_failures_a_long_failing_spell_or_a_pause_moves_it_to_the_failing_lane() {
        let mut sub = subscription("sub_1", "github");
        assert_eq!(lane(&sub, run(FAILURE_RUN), NOW_MS), DeliveryLane::Failing);
        // A process that has not seen the run yet (a fresh instance) goes by the stored one.
        sub.failing_since = Some(NOW_SECS - 60);
        assert_eq!(lane(&sub, Run::default(), NOW_MS), DeliveryLane::Failing);
        sub.failing_since = None;
        sub.paused_until = Some(NOW_MS + 30_000);
        assert_eq!(lane(&sub, Run::default(), NOW_MS), DeliveryLane::Failing);
    }
}
