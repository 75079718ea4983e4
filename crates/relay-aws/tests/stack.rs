//! Where the admin commands find a deployed relay (`AwsSettings::from_stack`) against a moto
//! server (`MOTO_ENDPOINT`): a relay stack's outputs, and each way a stack cannot be used, with
//! the error the CLI turns into its kind. Without `MOTO_ENDPOINT` the moto tests fail saying so.

mod common;

use std::time::Duration;

use common::{OPERATION_TIMEOUT, moto_endpoint, sdk_config, unique};
use relay_aws::{AwsSettings, StackError};

/// A stack of one queue whose outputs are `outputs` (key, literal value).
async fn create_stack(sdk: &aws_config::SdkConfig, name: &str, outputs: &[(&str, &str)]) {
    let outputs: serde_json::Map<String, serde_json::Value> = outputs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), serde_json::json!({ "Value": value })))
        .collect();
    let template = serde_json::json!({
        "Resources": { "Queue": { "Type": "AWS::SQS::Queue" } },
        "Outputs": outputs,
    });
    aws_sdk_cloudformation::Client::new(sdk)
        .create_stack()
        .stack_name(name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating stack {name} on moto: {e:?}"));
}

#[tokio::test]
async fn a_relay_stack_gives_its_table_and_queues() {
    let sdk = sdk_config(&moto_endpoint("from_stack"), OPERATION_TIMEOUT).await;
    let name = unique("relay-stack");
    create_stack(
        &sdk,
        &name,
        &[
            ("TableName", "relay-table"),
            ("EventsQueueUrl", "http://sqs/events"),
            ("EventsDlqUrl", "http://sqs/events-dlq"),
            ("DeliveriesQueueUrl", "http://sqs/deliveries"),
            ("DeliveriesDlqUrl", "http://sqs/deliveries-dlq"),
        ],
    )
    .await;
    let settings = AwsSettings::from_stack(&sdk, &name).await.unwrap();
    assert_eq!(settings.table, "relay-table");
    let urls = [
        (settings.require_events_queue_url(), "http://sqs/events"),
        (settings.require_events_dlq_url(), "http://sqs/events-dlq"),
        (
            settings.require_deliveries_queue_url(),
            "http://sqs/deliveries",
        ),
        (
            settings.require_deliveries_dlq_url(),
            "http://sqs/deliveries-dlq",
        ),
    ];
    for (url, output) in urls {
        assert_eq!(url.unwrap(), output);
    }
}

#[tokio::test]
async fn a_stack_without_a_table_is_not_a_relay_stack() {
    let sdk = sdk_config(&moto_endpoint("from_stack"), OPERATION_TIMEOUT).await;
    let name = unique("other-stack");
    create_stack(&sdk, &name, &[("EventsQueueUrl", "http://sqs/events")]).await;
    let error = AwsSettings::from_stack(&sdk, &name).await.unwrap_err();
    assert_eq!(error, StackError::NotARelayStack(name.clone()));
    assert_eq!(
        error.to_string(),
        format!("stack {name} has no TableName output (is it a relay stack?)")
    );
}

#[tokio::test]
async fn a_missing_stack_is_not_found() {
    let sdk = sdk_config(&moto_endpoint("from_stack"), OPERATION_TIMEOUT).await;
    let name = unique("absent-stack");
    let error = AwsSettings::from_stack(&sdk, &name).await.unwrap_err();
    assert!(
        matches!(&error, StackError::NotFound { stack, .. } if *stack == name),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot describe stack {name}: ")),
        "{error}"
    );
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_unreachable() {
    // A port just released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let sdk = sdk_config(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).await;
    let error = AwsSettings::from_stack(&sdk, "relay").await.unwrap_err();
    assert!(
        matches!(&error, StackError::Unreachable { stack, .. } if stack == "relay"),
        "{error:?}"
    );
}
