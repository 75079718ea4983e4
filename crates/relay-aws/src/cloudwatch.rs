//! Recent counts for `relay status` on AWS: the totals of the EMF metrics both functions write
//! (`metrics`), read back with one CloudWatch `GetMetricData` call per page; and each queue's
//! oldest message age, which SQS publishes only as the CloudWatch metric
//! `AWS/SQS ApproximateAgeOfOldestMessage`.

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::Dimension;
use aws_sdk_cloudwatch::types::{Metric as CloudWatchMetric, MetricDataQuery, MetricStat};
use relay_core::domain::metrics::Metric;
use relay_core::{ActivityCounts, QueueName, RecentActivity, StoreError};

use crate::{AwsSettings, describe_sdk_error};

/// EMF metrics are standard resolution; one-minute periods keep the window's edges within a
/// minute of what was asked (CloudWatch aligns periods, so one hour-long period could not).
const PERIOD_SECS: i32 = 60;

/// The counts `relay status` shows, by query id.
const COUNTED: [(&str, Metric); 3] = [
    ("accepted", Metric::Accepted),
    ("delivered", Metric::Delivered),
    ("failed", Metric::Failed),
];

/// Reads the relay's metrics in `namespace` (`WebhookRelay/<stack>`, the functions'
/// `RELAY_METRICS_NAMESPACE`); needs `cloudwatch:GetMetricData`.
#[derive(Debug, Clone)]
pub struct CloudWatchActivity {
    client: Client,
    namespace: String,
    /// SQS queue names (the last segment of each URL), for their oldest message's age.
    queue_names: Vec<(QueueName, String)>,
}

/// How far back the latest `ApproximateAgeOfOldestMessage` is looked for: SQS publishes it
/// every minute while the queue is active.
const AGE_LOOKBACK_MILLIS: i64 = 15 * 60 * 1000;

impl CloudWatchActivity {
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            queue_names: Vec::new(),
        }
    }

    /// Also reads each configured queue's oldest message age (`AWS/SQS`).
    pub fn with_queues(mut self, settings: &AwsSettings) -> Self {
        let urls = [
            (QueueName::Events, &settings.events_queue_url),
            (QueueName::EventsDlq, &settings.events_dlq_url),
            (QueueName::Deliveries, &settings.deliveries_queue_url),
            (QueueName::DeliveriesDlq, &settings.deliveries_dlq_url),
            (
                QueueName::FailingDeliveries,
                &settings.failing_deliveries_queue_url,
            ),
        ];
        self.queue_names = urls
            .into_iter()
            .filter_map(|(queue, url)| {
                let name = url.as_deref()?.rsplit('/').next()?;
                (!name.is_empty()).then(|| (queue, name.to_owned()))
            })
            .collect();
        self
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, namespace: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), namespace)
    }

    /// The namespace the template gives a stack's functions.
    pub fn stack_namespace(stack: &str) -> String {
        format!("WebhookRelay/{stack}")
    }

    fn query(&self, id: &str, metric: Metric) -> MetricDataQuery {
        // The metric without dimensions is the total the EMF lines declare next to per-source.
        let metric = CloudWatchMetric::builder()
            .namespace(&self.namespace)
            .metric_name(metric.name())
            .build();
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(PERIOD_SECS)
                    .stat("Sum")
                    .build(),
            )
            .return_data(true)
            .build()
    }
}

#[async_trait]
impl RecentActivity for CloudWatchActivity {
    async fn activity(
        &self,
        since_millis: i64,
        until_millis: i64,
    ) -> Result<ActivityCounts, StoreError> {
        let mut counts = ActivityCounts::default();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .get_metric_data()
                .start_time(DateTime::from_millis(since_millis))
                .end_time(DateTime::from_millis(until_millis))
                .set_next_token(next_token.take());
            for (id, metric) in COUNTED {
                request = request.metric_data_queries(self.query(id, metric));
            }
            let page = request.send().await.map_err(|e| {
                let message = describe_sdk_error("GetMetricData", &e);
                tracing::warn!(error = %message, "cloudwatch call failed");
                StoreError::Unavailable(message)
            })?;
            for result in page.metric_data_results() {
                let total: f64 = result.values().iter().sum();
                // Sums of counts are whole numbers; a negative or absurd value counts as none.
                let total = if total.is_finite() && total > 0.0 {
                    total.round() as u64
                } else {
                    0
                };
                match result.id() {
                    Some("accepted") => counts.accepted += total,
                    Some("delivered") => counts.delivered += total,
                    Some("failed") => counts.failed += total,
                    _ => {}
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(counts),
            }
        }
    }

    async fn oldest_age_secs(
        &self,
        queue: QueueName,
        now_millis: i64,
    ) -> Result<Option<u64>, StoreError> {
        let Some((_, name)) = self.queue_names.iter().find(|(q, _)| *q == queue) else {
            return Ok(None);
        };
        let metric = CloudWatchMetric::builder()
            .namespace("AWS/SQS")
            .metric_name("ApproximateAgeOfOldestMessage")
            .dimensions(Dimension::builder().name("QueueName").value(name).build())
            .build();
        let query = MetricDataQuery::builder()
            .id("age")
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(PERIOD_SECS)
                    .stat("Maximum")
                    .build(),
            )
            .return_data(true)
            .build();
        let page = self
            .client
            .get_metric_data()
            .start_time(DateTime::from_millis(now_millis - AGE_LOOKBACK_MILLIS))
            .end_time(DateTime::from_millis(now_millis))
            .metric_data_queries(query)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe_sdk_error("GetMetricData", &e)))?;
        // Newest first (GetMetricData's default order): the latest minute measured.
        let latest = page
            .metric_data_results()
            .iter()
            .flat_map(|r| r.values().iter().zip(r.timestamps()))
            .max_by_key(|(_, at)| at.to_millis().unwrap_or(i64::MIN))
            .map(|(value, _)| *value);
        Ok(latest
            .filter(|age| age.is_finite() && *age >= 0.0)
            .map(|age| age.round() as u64))
    }
}
