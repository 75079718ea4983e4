//! Where the admin commands find a deployed relay (`AwsSettings::from_stack`) against a moto
//! server (`MOTO_ENDPOINT`): a relay stack's outputs, and each way a stack cannot be used, with
//! the error the CLI turns into its kind. Without `MOTO_ENDPOINT` the moto tests fail saying so.

mod common;

use std::time::Duration;

use common::{OPERATION_TIMEOUT, moto_endpoint, sdk_config, unique};
use relay_aws::{AwsSettings, StackError};

/// A stack of one queue whose outputs are `outputs` (key, literal value), with the template's
/// `AllowPrivateDestinations` parameter set to `allow_private` when given.
async fn create_stack(
    sdk: &aws_config::SdkConfig,
    name: &str,
    outputs: &[(&str, &str)],
    allow_private: Option<&str>,
) {
    let outputs: serde_json::Map<String, serde_json::Value> = outputs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), serde_json::json!({ "Value": value })))
        .collect();
    let mut template = serde_json::json!({
        "Resources": { "Queue": { "Type": "AWS::SQS::Queue" } },
        "Outputs": outputs,
    });
    let mut create = aws_sdk_cloudformation::Client::new(sdk)
        .create_stack()
        .stack_name(name);
    if let Some(value) = allow_private {
        template["Parameters"] = serde_json::json!({
            "AllowPrivateDestinations": { "Type": "String", "Default": "false" }
        });
        create = create.parameters(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key("AllowPrivateDestinations")
                .parameter_value(value)
                .build(),
        );
    }
    let created = create.template_body(template.to_string()).send().await;
    // A slow first CreateStack on a busy machine can time out after moto applied it; the SDK's
    // retry then finds the stack this call made (the name is unique to the test).
    if let Err(e) = created
        && e.as_service_error().and_then(|e| e.meta().code()) != Some("AlreadyExistsException")
    {
        panic!("creating stack {name} on moto: {e:?}");
    }
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
            ("BodiesBucketName", "relay-bodies"),
        ],
        None,
    )
    .await;
    let deployed = AwsSettings::from_stack(&sdk, &name).await.unwrap();
    assert_eq!(deployed.allow_private_destinations, None);
    let settings = deployed.settings;
    assert_eq!(settings.table, "relay-table");
    assert_eq!(settings.bodies_bucket.as_deref(), Some("relay-bodies"));
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
async fn the_private_destinations_parameter_is_read() {
    let sdk = sdk_config(&moto_endpoint("from_stack"), OPERATION_TIMEOUT).await;
    for (value, read) in [("true", Some(true)), ("false", Some(false))] {
        let name = unique("relay-private");
        create_stack(&sdk, &name, &[("TableName", "t")], Some(value)).await;
        let deployed = AwsSettings::from_stack(&sdk, &name).await.unwrap();
        assert_eq!(deployed.allow_private_destinations, read, "{value}");
    }
}

#[tokio::test]
async fn a_stack_without_a_table_is_not_a_relay_stack() {
    let sdk = sdk_config(&moto_endpoint("from_stack"), OPERATION_TIMEOUT).await;
    let name = unique("other-stack");
    create_stack(
        &sdk,
        &name,
        &[("EventsQueueUrl", "http://sqs/events")],
        None,
    )
    .await;
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
