//! The moto set-up every relay-aws integration test shares: the SDK config (endpoint, region,
//! test credentials), names unique to a test, and a fresh table or queue set made as the stack
//! makes them. Not every test binary uses every helper.
#![allow(dead_code)]

use std::time::Duration;

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use relay_aws::provision::{QueueSet, create_queues, create_table};
use relay_aws::{Caller, DynamoStore, SqsQueue, sdk_config_loader};

/// Each SDK call's bound, as the Lambdas and the CLI have it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The moto server of `MOTO_ENDPOINT`; without one the test fails, naming `what` needs it (a
/// contract rule must never pass unchecked).
pub fn moto_endpoint(what: &str) -> String {
    std::env::var("MOTO_ENDPOINT")
        .unwrap_or_else(|_| panic!("MOTO_ENDPOINT is not set: {what} needs a moto server"))
}

/// An SDK config for `endpoint` with moto's region and test credentials.
pub async fn sdk_config(endpoint: &str, timeout: Duration) -> aws_config::SdkConfig {
    sdk_config_loader(&Caller::Admin.policy().with_operation_timeout(timeout))
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto-tests"))
        .load()
        .await
}

/// `prefix-<12 characters of a new id>`: tests run in parallel against one server.
pub fn unique(prefix: &str) -> String {
    let id = relay_core::domain::ids::new_event_id();
    format!("{prefix}-{}", &id[id.len() - 12..])
}

/// A new table named `unique(prefix)`, keys and index as the template has them.
pub async fn fresh_table(sdk: &aws_config::SdkConfig, prefix: &str) -> String {
    let table = unique(prefix);
    create_table(&aws_sdk_dynamodb::Client::new(sdk), &table)
        .await
        .unwrap_or_else(|e| panic!("creating table {table} on moto: {e}"));
    table
}

/// The five queues (`unique(prefix)-*`), redrive policies as the template has them.
pub async fn fresh_queues(sdk: &aws_config::SdkConfig, prefix: &str) -> QueueSet {
    let prefix = unique(prefix);
    create_queues(&aws_sdk_sqs::Client::new(sdk), &prefix)
        .await
        .unwrap_or_else(|e| panic!("creating queues {prefix}-* on moto: {e}"))
}

/// The DynamoDB store over a fresh table on the moto of `MOTO_ENDPOINT` (required).
pub async fn fresh_store(what: &str, prefix: &str) -> DynamoStore {
    let sdk = sdk_config(&moto_endpoint(what), OPERATION_TIMEOUT).await;
    let table = fresh_table(&sdk, prefix).await;
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table)
}

/// The SQS queue adapter over fresh queues on the moto of `MOTO_ENDPOINT` (required).
pub async fn fresh_sqs_queue(what: &str, prefix: &str) -> SqsQueue {
    let sdk = sdk_config(&moto_endpoint(what), OPERATION_TIMEOUT).await;
    let queues = fresh_queues(&sdk, prefix).await;
    // No table: the queue adapter needs none.
    SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        &queues.settings(String::new()),
    )
}
