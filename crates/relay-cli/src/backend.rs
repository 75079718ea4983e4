//! The store and queues the admin commands work on: the local SQLite file, or a deployed stack.

use std::sync::Arc;

use anyhow::Context;
use relay_aws::{AwsAdapters, AwsSettings, CloudWatchActivity};
use relay_core::{Queue, QueueConsumer, RecentActivity, Store};
use relay_local::{LocalBackend, LocalOptions};

use crate::args::Global;
use crate::errors::{Kind, classified};

pub enum Backend {
    Local(LocalBackend),
    Aws {
        adapters: Box<AwsAdapters>,
        settings: AwsSettings,
        /// The functions' metrics, when their namespace is known (`--stack`, or
        /// `RELAY_METRICS_NAMESPACE`).
        activity: Option<CloudWatchActivity>,
        /// Where reconcile reads provider credentials (SSM, Secrets Manager). Built here, not
        /// with the adapters, so the receiver and fanout functions do not link those clients.
        credentials: Box<relay_aws::AwsCredentials>,
    },
}

impl Backend {
    /// The backend the global flags name. A local store is created only when `creates`;
    /// otherwise a data dir without one is refused, and nothing is written.
    pub async fn open(global: &Global, creates: bool) -> anyhow::Result<Self> {
        if !global.aws {
            let store = global.data_dir.join(relay_local::DB_FILE);
            if !creates && !store.is_file() {
                return Err(classified(
                    Kind::NotFound,
                    format!(
                        "no relay store in {} ({} does not exist): run relay dev or relay sources add there first, or pass --data-dir",
                        global.data_dir.display(),
                        store.display()
                    ),
                ));
            }
            let local = LocalBackend::open(&global.data_dir, LocalOptions::default())
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open the store in {}", global.data_dir.display()))
                .map_err(|e| classified(Kind::Unavailable, format!("{e:#}")))?;
            return Ok(Backend::Local(local));
        }
        let sdk = relay_aws::load_sdk_config(&relay_aws::Caller::Admin.policy()).await;
        let mut settings = match &global.stack {
            Some(stack) => stack_settings(&sdk, stack).await?,
            None => AwsSettings::from_env().unwrap_or_else(|_| AwsSettings::new(String::new())),
        };
        if let Some(table) = &global.table {
            settings.table = table.clone();
        }
        if let Some(url) = &global.events_queue_url {
            settings.events_queue_url = Some(url.clone());
        }
        if let Some(url) = &global.deliveries_queue_url {
            settings.deliveries_queue_url = Some(url.clone());
        }
        if settings.table.is_empty() {
            return Err(crate::errors::usage(
                "--aws needs --stack NAME or --table (env RELAY_TABLE)",
            ));
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
        let adapters = Box::new(relay_aws::adapters_from_sdk_config(&sdk, &settings));
        let namespace = match &global.stack {
            Some(stack) => Some(CloudWatchActivity::stack_namespace(stack)),
            None => std::env::var(relay_aws::metrics::NAMESPACE_VAR)
                .ok()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty()),
        };
        let activity = namespace
            .map(|ns| CloudWatchActivity::from_sdk_config(&sdk, ns).with_queues(&settings));
        Ok(Backend::Aws {
            adapters,
            settings,
            activity,
            credentials: Box::new(relay_aws::AwsCredentials::from_sdk_config(&sdk)),
        })
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Local(local) => Arc::new(local.clone()),
            Backend::Aws { adapters, .. } => Arc::new(adapters.store.clone()),
        }
    }

    pub fn queue(&self) -> anyhow::Result<Arc<dyn Queue>> {
        match self {
            Backend::Local(local) => Ok(Arc::new(local.clone())),
            Backend::Aws {
                adapters, settings, ..
            } => {
                settings.require_deliveries_queue_url()?;
                Ok(Arc::new(adapters.queue.clone()))
            }
        }
    }

    /// The queues' consumer side (receive, settle, redrive, depths). A queue URL that is not
    /// configured fails the call that needs it, naming its variable.
    pub fn consumer(&self) -> Arc<dyn QueueConsumer> {
        match self {
            Backend::Local(local) => Arc::new(local.clone()),
            Backend::Aws { adapters, .. } => Arc::new(adapters.queue.clone()),
        }
    }

    /// Where the last hour's counts come from; `None` on AWS without a metrics namespace.
    pub fn activity(&self) -> Option<Arc<dyn RecentActivity>> {
        match self {
            Backend::Local(local) => Some(Arc::new(local.clone())),
            Backend::Aws { activity, .. } => activity
                .clone()
                .map(|a| Arc::new(a) as Arc<dyn RecentActivity>),
        }
    }
}

/// Reads the table and queue URLs from a deployed stack's outputs.
async fn stack_settings(sdk: &aws_config::SdkConfig, stack: &str) -> anyhow::Result<AwsSettings> {
    let client = aws_sdk_cloudformation::Client::new(sdk);
    let described = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            // CloudFormation answers a missing stack with a ValidationError naming it.
            let kind = match e.as_service_error() {
                Some(service) if service.to_string().contains("does not exist") => Kind::NotFound,
                Some(_) => Kind::Invalid,
                None => Kind::Unavailable,
            };
            let cause = aws_sdk_cloudformation::error::DisplayErrorContext(e);
            classified(kind, format!("cannot describe stack {stack}: {cause}"))
        })?;
    let outputs = described
        .stacks()
        .first()
        .map(|s| s.outputs().to_vec())
        .unwrap_or_default();
    let output = |key: &str| {
        outputs
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_owned)
    };
    let table = output("TableName").ok_or_else(|| {
        classified(
            Kind::Invalid,
            format!("stack {stack} has no TableName output (is it a relay stack?)"),
        )
    })?;
    let mut settings = AwsSettings::new(table);
    settings.events_queue_url = output("EventsQueueUrl");
    settings.events_dlq_url = output("EventsDlqUrl");
    settings.deliveries_queue_url = output("DeliveriesQueueUrl");
    settings.deliveries_dlq_url = output("DeliveriesDlqUrl");
    Ok(settings)
}
