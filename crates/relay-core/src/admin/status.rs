//! `relay status`: the queues' depths, the subscriptions that need attention and the last hour's
//! counts, gathered through the ports into one plain report the CLI prints.

use crate::domain::model::{RefusedDeliveries, Subscription};
use crate::ports::{ActivityCounts, Catalog, QueueConsumer, QueueDepth, QueueName, RecentActivity};

use super::AdminError;

/// The window of `StatusReport::last_hour`.
pub const RECENT_WINDOW_MILLIS: i64 = 3_600_000;

/// Everything `relay status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Milliseconds since the epoch the report was taken at.
    pub at_millis: i64,
    /// Every queue, main queues each followed by its DLQ.
    pub queues: Vec<QueueStatus>,
    /// Subscriptions that are failing, disabled, or whose deliveries the destination guard
    /// refused, by id.
    pub attention: Vec<SubscriptionHealth>,
    /// Sources holding secrets weaker than their provider's rule (accepted with
    /// `--allow-weak-secret`), by name, with how many.
    pub weak_secrets: Vec<(String, usize)>,
    /// Counts over `[at - 1 h, at)`; `Err` says why they could not be read (the rest of the
    /// report stands without them).
    pub last_hour: Result<ActivityCounts, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    pub queue: QueueName,
    pub depth: QueueDepth,
}

/// A subscription that is disabled, in a run of failures, or whose deliveries the destination
/// guard refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionHealth {
    pub id: String,
    pub source: String,
    pub url: String,
    pub enabled: bool,
    /// Seconds since the epoch of the first failure of the current run.
    pub failing_since: Option<i64>,
    /// As stored; `None` for a subscription disabled by hand.
    pub disabled_reason: Option<String>,
    /// Since when, and why, the destination guard refuses its deliveries.
    pub refused: Option<RefusedDeliveries>,
    /// Milliseconds since the epoch until which the breaker holds its deliveries back (when
    /// past, the probe is due).
    pub paused_until: Option<i64>,
}

impl SubscriptionHealth {
    /// `None` for a subscription that is enabled, not failing, not refused and not paused.
    pub fn of(subscription: &Subscription) -> Option<Self> {
        if subscription.enabled
            && subscription.failing_since.is_none()
            && subscription.refused.is_none()
            && subscription.paused_until.is_none()
        {
            return None;
        }
        Some(Self {
            id: subscription.id.clone(),
            source: subscription.source.clone(),
            url: subscription.url.clone(),
            enabled: subscription.enabled,
            failing_since: subscription.failing_since,
            disabled_reason: subscription.disabled_reason.clone(),
            refused: subscription.refused.clone(),
            paused_until: subscription.paused_until,
        })
    }
}

/// Gathers the report as of `now_millis`. A queue or the catalog that cannot be read fails it;
/// recent counts that cannot be read (no metrics namespace, no permission) are reported as such,
/// and `activity: None` means the backend has no source of them.
pub async fn status(
    queues: &dyn QueueConsumer,
    catalog: &dyn Catalog,
    activity: Option<&dyn RecentActivity>,
    now_millis: i64,
) -> Result<StatusReport, AdminError> {
    let mut queue_statuses = Vec::with_capacity(QueueName::ALL.len());
    for queue in QueueName::ALL {
        let mut depth = queues.depth(queue).await?;
        if depth.oldest_age_secs.is_none()
            && depth.total() > 0
            && let Some(activity) = activity
        {
            // Best effort: an age that cannot be read is shown as unknown.
            depth.oldest_age_secs = activity
                .oldest_age_secs(queue, now_millis)
                .await
                .ok()
                .flatten();
        }
        queue_statuses.push(QueueStatus { queue, depth });
    }
    let attention = catalog
        .list_subscriptions()
        .await?
        .iter()
        .filter_map(SubscriptionHealth::of)
        .collect();
    let weak_secrets = catalog
        .list_sources()
        .await?
        .iter()
        .map(|source| {
            (
                source.name.clone(),
                super::sources::weak_secret_count(source),
            )
        })
        .filter(|(_, weak)| *weak > 0)
        .collect();
    let last_hour = match activity {
        Some(activity) => activity
            .activity(now_millis - RECENT_WINDOW_MILLIS, now_millis)
            .await
            .map_err(|e| e.to_string()),
        None => Err("no metrics namespace: give --stack or set RELAY_METRICS_NAMESPACE".to_owned()),
    };
    Ok(StatusReport {
        at_millis: now_millis,
        queues: queue_statuses,
        attention,
        weak_secrets,
        last_hour,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::domain::model::DeliveryTask;
    use crate::ports::clock::FixedClock;
    use crate::ports::{Queue, StoreError};
    use crate::testkit::contract::{event, source, subscription};
    use crate::testkit::{MemoryQueue, MemoryStore};

    #[test]
    fn a_paused_subscription_needs_attention_with_its_pause() {
        let mut paused = subscription("sub_p", "gh");
        assert_eq!(SubscriptionHealth::of(&paused), None);
        paused.paused_until = Some(1_700_000_060_000);
        let health = SubscriptionHealth::of(&paused).expect("listed");
        assert_eq!(health.paused_until, Some(1_700_000_060_000));
        assert!(health.enabled && health.failing_since.is_none());
    }

    const NOW_SECS: i64 = 1_700_000_000;

    /// Answers fixed counts and remembers the window it was asked for.
    struct FixedActivity {
        asked: Mutex<Vec<(i64, i64)>>,
        answer: Result<ActivityCounts, String>,
    }

    #[async_trait]
    impl RecentActivity for FixedActivity {
        async fn activity(&self, since: i64, until: i64) -> Result<ActivityCounts, StoreError> {
            self.asked.lock().unwrap().push((since, until));
            self.answer.clone().map_err(StoreError::Unavailable)
        }
    }

    fn activity(answer: Result<ActivityCounts, String>) -> FixedActivity {
        FixedActivity {
            asked: Mutex::new(Vec::new()),
            answer,
        }
    }

    #[tokio::test]
    async fn reports_depths_ages_subscriptions_needing_attention_and_the_last_hour() {
        let clock = FixedClock::at_secs(NOW_SECS - 90);
        let queue = MemoryQueue::new(clock.clone());
        queue.send_event(&event("evt_old", 0)).await.unwrap();
        clock.set_secs(NOW_SECS - 30);
        queue.send_event(&event("evt_new", 0)).await.unwrap();
        queue
            .send_delivery(
                &DeliveryTask {
                    event: event("evt_new", 0),
                    subscription_id: "sub_a".into(),
                    attempt: 2,
                    schedule_step: 1,
                    not_before: 0,
                },
                600,
            )
            .await
            .unwrap();
        clock.set_secs(NOW_SECS);

        let store = MemoryStore::with_sources([source("gh")]);
        let healthy = subscription("sub_a", "gh");
        let mut failing = subscription("sub_b", "gh");
        failing.failing_since = Some(NOW_SECS - 600);
        let mut gone = subscription("sub_c", "gh");
        gone.enabled = false;
        gone.disabled_reason = Some("endpoint answered 410 Gone".into());
        let mut refused = subscription("sub_d", "gh");
        refused.refused = Some(RefusedDeliveries {
            since: NOW_SECS - 60,
            reason: "destination refused: localhost resolves only to non-global addresses (loopback address)".into(),
        });
        for sub in [&healthy, &failing, &gone, &refused] {
            store.put_subscription(sub).await.unwrap();
        }
        let counts = ActivityCounts {
            accepted: 7,
            delivered: 5,
            failed: 2,
        };
        let recent = activity(Ok(counts));

        let now_millis = NOW_SECS * 1000;
        let report = status(
            &queue,
            &store,
            Some(&recent as &dyn RecentActivity),
            now_millis,
        )
        .await
        .unwrap();

        let depth = |name: QueueName| {
            report
                .queues
                .iter()
                .find(|q| q.queue == name)
                .map(|q| q.depth)
                .unwrap()
        };
        assert_eq!(
            report.queues.iter().map(|q| q.queue).collect::<Vec<_>>(),
            QueueName::ALL.to_vec()
        );
        let events = depth(QueueName::Events);
        assert_eq!(
            (events.visible, events.in_flight, events.delayed),
            (2, 0, 0)
        );
        assert_eq!(events.oldest_age_secs, Some(90), "the older of the two");
        let deliveries = depth(QueueName::Deliveries);
        assert_eq!(deliveries.delayed, 1);
        assert_eq!(deliveries.oldest_age_secs, Some(30));
        assert_eq!(depth(QueueName::EventsDlq).oldest_age_secs, None, "empty");

        let ids: Vec<_> = report.attention.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["sub_b", "sub_c", "sub_d"],
            "the healthy one is left out"
        );
        assert_eq!(report.attention[2].refused, refused.refused);
        assert!(report.attention[2].enabled && report.attention[2].failing_since.is_none());
        assert_eq!(report.attention[0].failing_since, Some(NOW_SECS - 600));
        assert!(report.attention[0].enabled);
        assert!(!report.attention[1].enabled);
        assert_eq!(
            report.attention[1].disabled_reason.as_deref(),
            Some("endpoint answered 410 Gone")
        );

        assert_eq!(report.last_hour, Ok(counts));
        assert_eq!(
            *recent.asked.lock().unwrap(),
            [(now_millis - 3_600_000, now_millis)]
        );
        assert_eq!(report.at_millis, now_millis);
    }

    #[tokio::test]
    async fn counts_that_cannot_be_read_leave_the_rest_of_the_report() {
        let clock = FixedClock::at_secs(NOW_SECS);
        let queue = MemoryQueue::new(clock.clone());
        queue.send_event(&event("evt_a", 0)).await.unwrap();
        let store = MemoryStore::with_sources([source("gh")]);
        let denied = activity(Err("GetMetricData: AccessDenied".into()));

        let report = status(
            &queue,
            &store,
            Some(&denied as &dyn RecentActivity),
            NOW_SECS * 1000,
        )
        .await
        .unwrap();
        assert_eq!(report.queues[0].depth.visible, 1);
        assert!(
            report
                .last_hour
                .as_ref()
                .is_err_and(|e| e.contains("AccessDenied")),
            "{:?}",
            report.last_hour
        );

        let report = status(&queue, &store, None, NOW_SECS * 1000).await.unwrap();
        assert!(
            report
                .last_hour
                .as_ref()
                .is_err_and(|e| e.contains("RELAY_METRICS_NAMESPACE"))
        );
    }

    #[tokio::test]
    async fn sources_with_weak_secrets_are_listed() {
        let store = MemoryStore::with_sources([
            crate::testkit::contract::source("weak"),
            crate::domain::model::Source {
                secrets: vec![
                    "a-strong-github-secret-0123".into(),
                    "tiny".into(),
                    "x".into(),
                ],
                ..crate::testkit::contract::source("mixed")
            },
            crate::domain::model::Source {
                secrets: vec!["a-strong-github-secret-0123".into()],
                ..crate::testkit::contract::source("strong")
            },
        ]);
        let queue = MemoryQueue::new(crate::ports::clock::FixedClock::at_secs(NOW_SECS));
        let report = status(&queue, &store, None, NOW_SECS * 1000).await.unwrap();
        assert_eq!(
            report.weak_secrets,
            [("mixed".to_owned(), 2), ("weak".to_owned(), 1)]
        );
    }

    #[test]
    fn attempts_count_as_the_metrics_count_them() {
        use crate::domain::model::AttemptOutcome as O;
        let mut counts = ActivityCounts::default();
        for outcome in O::ALL {
            counts.add_attempts(*outcome, 1);
        }
        // Ok delivers; removed, disabled and deferred sent nothing; the other seven failed, and
        // so did a delivery whose stored body is gone (dead-lettered, as the metrics count it).
        assert_eq!((counts.delivered, counts.failed), (1, 8));
    }
}
