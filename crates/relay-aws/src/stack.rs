//! Where the admin commands find a deployed relay: a CloudFormation stack's outputs or the
//! `RELAY_*` variables, each overridden by what the operator names, and every AWS client those
//! commands use over one SDK config (`admin_backend`).

use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::config::{AwsSettings, Caller, load_sdk_config};
use crate::{AwsAdapters, AwsCredentials, CloudWatchActivity, adapters_from_sdk_config};

/// What the operator named: a stack, or the table and queues directly (each given one
/// replaces what the stack or the environment says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackTarget {
    pub stack: Option<String>,
    pub table: Option<String>,
    pub events_queue_url: Option<String>,
    pub deliveries_queue_url: Option<String>,
    pub failing_deliveries_queue_url: Option<String>,
}

/// Every AWS client the admin commands use, over one SDK config.
#[derive(Debug, Clone)]
pub struct AdminBackend {
    pub adapters: AwsAdapters,
    pub settings: AwsSettings,
    /// The functions' metrics, when their namespace is known (a stack, or
    /// `RELAY_METRICS_NAMESPACE`).
    pub activity: Option<CloudWatchActivity>,
    /// Where reconcile reads provider credentials (SSM, Secrets Manager). Built here, not with
    /// the adapters, so the receiver and fanout functions do not link those clients.
    pub credentials: AwsCredentials,
    /// The stack's `AllowPrivateDestinations` parameter; `None` without a stack.
    pub allow_private_destinations: Option<bool>,
}

/// Why a deployed relay could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    /// CloudFormation knows no stack of that name.
    #[error("cannot describe stack {stack}: {cause}")]
    NotFound { stack: String, cause: String },
    /// CloudFormation refused the call (credentials, permissions, a malformed name).
    #[error("cannot describe stack {stack}: {cause}")]
    Refused { stack: String, cause: String },
    /// CloudFormation did not answer.
    #[error("cannot describe stack {stack}: {cause}")]
    Unreachable { stack: String, cause: String },
    #[error("stack {0} has no TableName output (is it a relay stack?)")]
    NotARelayStack(String),
    /// Neither a stack, a table nor `RELAY_TABLE` says where the relay's table is.
    #[error("no table: name a stack or a table (env RELAY_TABLE)")]
    NoTable,
}

/// The clients over the relay `target` names, with the admin commands' retries and timeouts.
pub async fn admin_backend(target: &StackTarget) -> Result<AdminBackend, StackError> {
    let sdk = load_sdk_config(&Caller::Admin.policy()).await;
    let (mut settings, allow_private_destinations) = match &target.stack {
        Some(stack) => {
            let deployed = AwsSettings::from_stack(&sdk, stack).await?;
            (deployed.settings, deployed.allow_private_destinations)
        }
        None => (
            AwsSettings::from_env().unwrap_or_else(|_| AwsSettings::new(String::new())),
            None,
        ),
    };
    if let Some(table) = &target.table {
        settings.table = table.clone();
    }
    if let Some(url) = &target.events_queue_url {
        settings.events_queue_url = Some(url.clone());
    }
    if let Some(url) = &target.deliveries_queue_url {
        settings.deliveries_queue_url = Some(url.clone());
    }
    if let Some(url) = &target.failing_deliveries_queue_url {
        settings.failing_deliveries_queue_url = Some(url.clone());
    }
    if settings.table.is_empty() {
        return Err(StackError::NoTable);
    }
    // The template names each DLQ after its queue with a -dlq suffix.
    if settings.events_dlq_url.is_none() {
        settings.events_dlq_url = settings
            .events_queue_url
            .as_ref()
            .map(|u| format!("{u}-dlq"));
    }
    if settings.deliveries_dlq_url.is_none() {
        settings.deliveries_dlq_url = settings
            .deliveries_queue_url
            .as_ref()
            .map(|u| format!("{u}-dlq"));
    }
    let namespace = match &target.stack {
        Some(stack) => Some(CloudWatchActivity::stack_namespace(stack)),
        None => std::env::var(crate::metrics::NAMESPACE_VAR)
            .ok()
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty()),
    };
    Ok(AdminBackend {
        adapters: adapters_from_sdk_config(&sdk, &settings),
        activity: namespace
            .map(|ns| CloudWatchActivity::from_sdk_config(&sdk, ns).with_queues(&settings)),
        credentials: AwsCredentials::from_sdk_config(&sdk),
        settings,
        allow_private_destinations,
    })
}

/// What the admin commands read of a deployed stack.
#[derive(Debug, Clone)]
pub struct DeployedStack {
    pub settings: AwsSettings,
    /// Its `AllowPrivateDestinations` parameter; `None` when it has none.
    pub allow_private_destinations: Option<bool>,
}

impl AwsSettings {
    /// The table and queue URLs from a deployed stack's outputs, and its private destinations
    /// parameter.
    pub async fn from_stack(
        sdk: &aws_config::SdkConfig,
        stack: &str,
    ) -> Result<DeployedStack, StackError> {
        let described = aws_sdk_cloudformation::Client::new(sdk)
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| {
                let stack = stack.to_owned();
                // CloudFormation answers a missing stack with a ValidationError naming it. The
                // SDK has no variant for it, and an unhandled error's text leaves the message out.
                let missing = e.as_service_error().map(|service| {
                    service
                        .message()
                        .is_some_and(|message| message.contains("does not exist"))
                });
                let cause = DisplayErrorContext(e).to_string();
                match missing {
                    Some(true) => StackError::NotFound { stack, cause },
                    Some(false) => StackError::Refused { stack, cause },
                    None => StackError::Unreachable { stack, cause },
                }
            })?;
        let described = described.stacks().first();
        let outputs = described.map(|s| s.outputs().to_vec()).unwrap_or_default();
        let allow_private_destinations = described.and_then(|s| {
            s.parameters()
                .iter()
                .find(|p| p.parameter_key() == Some("AllowPrivateDestinations"))
                .and_then(|p| p.parameter_value())
                .map(|value| value.trim().eq_ignore_ascii_case("true"))
        });
        let output = |key: &str| {
            outputs
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
                .map(str::to_owned)
        };
        let table =
            output("TableName").ok_or_else(|| StackError::NotARelayStack(stack.to_owned()))?;
        Ok(DeployedStack {
            settings: Self {
                events_queue_url: output("EventsQueueUrl"),
                events_dlq_url: output("EventsDlqUrl"),
                deliveries_queue_url: output("DeliveriesQueueUrl"),
                deliveries_dlq_url: output("DeliveriesDlqUrl"),
                failing_deliveries_queue_url: output("FailingDeliveriesQueueUrl"),
                bodies_bucket: output("BodiesBucketName"),
                ..Self::new(table)
            },
            allow_private_destinations,
        })
    }
}
