//! SQS and DynamoDB adapters of the relay's ports (`relay_core::Store`, `relay_core::Queue`,
//! `relay_core::QueueConsumer`), plus the SQS calls by queue URL no port covers (`SqsAdmin`), and
//! the functions' metrics read back from CloudWatch for `relay status` (`cloudwatch`), and where
//! the admin commands find a deployed stack (`stack`).
//!
//! Build the SDK config once (`load_sdk_config`) and the adapters from it (`connect`), at cold
//! start, and share them.

pub mod cloudwatch;
pub mod config;
pub mod dynamo;
pub mod lambda;
pub mod logging;
pub mod metrics;
#[cfg(feature = "provision")]
pub mod provision;
pub mod s3;
pub mod secrets;
pub mod sqs;
#[cfg(feature = "stack")]
pub mod stack;
pub mod wiring;

pub use cloudwatch::CloudWatchActivity;
pub use config::{
    AwsSettings, Caller, SdkPolicy, SettingsError, load_sdk_config, sdk_config_loader,
};
pub use dynamo::DynamoStore;
pub use s3::S3Bodies;
pub use secrets::AwsCredentials;
pub use sqs::{QueueDepth, RedriveMethod, RedriveProgress, SqsAdmin, SqsMessage, SqsQueue};
#[cfg(feature = "stack")]
pub use stack::{AdminBackend, DeployedStack, StackError, StackTarget, admin_backend};

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

/// Every adapter over one SDK config.
#[derive(Debug, Clone)]
pub struct AwsAdapters {
    pub store: DynamoStore,
    pub queue: SqsQueue,
    pub admin: SqsAdmin,
    /// Bodies over the inline limit, when `RELAY_BODIES_BUCKET` names the bucket.
    pub bodies: Option<S3Bodies>,
}

/// Loads the SDK config from the environment, with `caller`'s retries and timeouts, and builds
/// every adapter from `settings`.
pub async fn connect(settings: &AwsSettings, caller: Caller) -> AwsAdapters {
    let sdk = load_sdk_config(&settings.sdk_policy(caller)).await;
    adapters_from_sdk_config(&sdk, settings)
}

/// Builds the adapters from an SDK config the caller already has.
pub fn adapters_from_sdk_config(
    sdk: &aws_config::SdkConfig,
    settings: &AwsSettings,
) -> AwsAdapters {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    AwsAdapters {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table.clone()),
        queue: SqsQueue::new(sqs.clone(), settings),
        admin: SqsAdmin::new(sqs),
        bodies: settings
            .bodies_bucket
            .as_ref()
            .map(|bucket| S3Bodies::new(S3Bodies::client(sdk), bucket.clone())),
    }
}

/// A short description of an SDK failure for logs and 503 bodies: the operation and the
/// error's code or kind. Never the message text, which can echo request contents.
pub(crate) fn describe_sdk_error<E: ProvideErrorMetadata>(
    operation: &str,
    err: &SdkError<E, HttpResponse>,
) -> String {
    let what = match err {
        SdkError::ServiceError(service) => match service.err().code() {
            Some(code) => code.to_owned(),
            None => format!("HTTP {}", service.raw().status().as_u16()),
        },
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => "timed out".to_owned(),
        SdkError::DispatchFailure(failure) if failure.is_io() => "connection failed".to_owned(),
        SdkError::DispatchFailure(_) => "request not sent".to_owned(),
        SdkError::ResponseError(response) => {
            format!(
                "unreadable response (HTTP {})",
                response.raw().status().as_u16()
            )
        }
        SdkError::ConstructionFailure(_) => "request could not be built".to_owned(),
        _ => "unknown SDK error".to_owned(),
    };
    format!("{operation}: {what}")
}
