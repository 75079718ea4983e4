//! Recent counts for `relay status` on AWS: the totals of the EMF metrics both functions write
//! (`metrics`), read back with one CloudWatch `GetMetricData` call per page.

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Metric as CloudWatchMetric, MetricDataQuery, MetricStat};
use relay_core::metrics::Metric;
use relay_core::{ActivityCounts, RecentActivity, StoreError};

use crate::describe_sdk_error;

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
}

impl CloudWatchActivity {
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
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
}
