//! Creates the table and queues the adapters expect, for tests and throwaway stacks (moto,
//! LocalStack). Production stacks come from `infra/template.yaml`, which must match this shape.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::config::AwsSettings;
use crate::dynamo::{EXPIRES_AT, GSI1, GSI1_PROJECTED, GSI1PK, GSI1SK, PK, SK};

/// Queues keep messages this long (the maximum), so nothing expires before a redrive.
pub const RETENTION_SECS: u32 = 1_209_600;
pub const EVENTS_MAX_RECEIVE: u32 = 5;
pub const DELIVERIES_MAX_RECEIVE: u32 = 10;

/// Creates the table (pk/sk, GSI `gsi1` projecting `GSI1_PROJECTED`, on-demand) and enables TTL
/// on `expires_at`. infra/template.yaml declares the same table.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    let string_attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1PK, KeyType::Hash)?)
        .key_schema(key(GSI1SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(
                    GSI1_PROJECTED
                        .iter()
                        .map(|name| (*name).to_owned())
                        .collect(),
                ))
                .build(),
        )
        .build()?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr(PK)?)
        .attribute_definitions(string_attr(SK)?)
        .attribute_definitions(string_attr(GSI1PK)?)
        .attribute_definitions(string_attr(GSI1SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await
        .context("CreateTable")?;
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(120))
        .await
        .context("waiting for the table")?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(EXPIRES_AT)
                .build()?,
        )
        .send()
        .await
        .context("UpdateTimeToLive")?;
    Ok(())
}

/// The five queue URLs of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSet {
    pub events: String,
    pub events_dlq: String,
    pub deliveries: String,
    pub deliveries_dlq: String,
    pub failing_deliveries: String,
}

impl QueueSet {
    /// Settings for `table` over these queues.
    pub fn settings(&self, table: impl Into<String>) -> AwsSettings {
        AwsSettings {
            events_queue_url: Some(self.events.clone()),
            events_dlq_url: Some(self.events_dlq.clone()),
            deliveries_queue_url: Some(self.deliveries.clone()),
            deliveries_dlq_url: Some(self.deliveries_dlq.clone()),
            failing_deliveries_queue_url: Some(self.failing_deliveries.clone()),
            ..AwsSettings::new(table)
        }
    }
}

/// Creates `<prefix>-events`, `<prefix>-deliveries` and their `-dlq`s, each main queue
/// redriving to its DLQ after a few receives, and `<prefix>-failing-deliveries`, redriving to
/// the deliveries DLQ.
pub async fn create_queues(client: &aws_sdk_sqs::Client, prefix: &str) -> Result<QueueSet> {
    let events_dlq = create_queue(client, &format!("{prefix}-events-dlq"), None).await?;
    let deliveries_dlq = create_queue(client, &format!("{prefix}-deliveries-dlq"), None).await?;
    let events = create_queue(
        client,
        &format!("{prefix}-events"),
        Some((&events_dlq, EVENTS_MAX_RECEIVE)),
    )
    .await?;
    let deliveries = create_queue(
        client,
        &format!("{prefix}-deliveries"),
        Some((&deliveries_dlq, DELIVERIES_MAX_RECEIVE)),
    )
    .await?;
    let failing_deliveries = create_queue(
        client,
        &format!("{prefix}-failing-deliveries"),
        Some((&deliveries_dlq, DELIVERIES_MAX_RECEIVE)),
    )
    .await?;
    Ok(QueueSet {
        events,
        events_dlq,
        deliveries,
        deliveries_dlq,
        failing_deliveries,
    })
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter: Option<(&str, u32)>,
) -> Result<String> {
    let mut request = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            RETENTION_SECS.to_string(),
        )
        // As the template: 1 MiB, so a 256 KiB body escaped into JSON always fits. Visibility
        // is shorter than the template's 6 x function timeout, so tests see redelivery sooner.
        .attributes(QueueAttributeName::MaximumMessageSize, "1048576")
        .attributes(QueueAttributeName::VisibilityTimeout, "60");
    if let Some((dlq_url, max_receive)) = dead_letter {
        let arn = client
            .get_queue_attributes()
            .queue_url(dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .context("GetQueueAttributes")?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .context("DLQ has no QueueArn")?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": max_receive.to_string(),
        });
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let out = request.send().await.context("CreateQueue")?;
    out.queue_url.context("CreateQueue returned no URL")
}

/// Creates the bodies bucket (as the template's `BodiesBucket`, without its lifecycle rule and
/// encryption, which moto does not apply) and returns the `S3Bodies` over it.
pub async fn create_bodies_bucket(
    sdk: &aws_config::SdkConfig,
    bucket: &str,
) -> Result<crate::S3Bodies> {
    let client = crate::S3Bodies::client(sdk);
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .context("CreateBucket")?;
    Ok(crate::S3Bodies::new(client, bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack's table (infra/template.yaml) projects the same attributes into gsi1 as the
    /// table made here, so tests on moto see what production sees.
    #[test]
    fn template_index_projects_what_provisioning_does() {
        let template = include_str!("../../../infra/template.yaml");
        let index = template
            .split("- IndexName: gsi1")
            .nth(1)
            .and_then(|rest| rest.split("TimeToLiveSpecification").next())
            .expect("the template declares gsi1");
        assert!(index.contains("ProjectionType: INCLUDE"), "{index}");
        let listed: Vec<&str> = index
            .split("NonKeyAttributes:")
            .nth(1)
            .expect("gsi1 lists its attributes")
            .lines()
            .filter_map(|line| line.trim().strip_prefix("- "))
            .collect();
        assert_eq!(listed, GSI1_PROJECTED);
        assert!(!listed.contains(&"body"));
    }
}
