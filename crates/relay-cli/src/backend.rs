//! The store and queues the admin commands work on: the local SQLite file, or a deployed stack.

use std::sync::Arc;

use anyhow::Context;
use relay_aws::{AdminBackend, StackError, StackTarget};
use relay_core::{BodyStore, Queue, QueueConsumer, RecentActivity, Store};
use relay_local::{LocalBackend, LocalBodies, LocalOptions};

use crate::args::Global;
use crate::errors::{Kind, classified};

pub enum Backend {
    Local(LocalBackend),
    /// A deployed stack, found by relay-aws.
    Aws(Box<AdminBackend>),
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
        let target = StackTarget {
            stack: global.stack.clone(),
            table: global.table.clone(),
            events_queue_url: global.events_queue_url.clone(),
            deliveries_queue_url: global.deliveries_queue_url.clone(),
            failing_deliveries_queue_url: global.failing_deliveries_queue_url.clone(),
        };
        let aws = relay_aws::admin_backend(&target)
            .await
            .map_err(classify_stack_error)?;
        Ok(Backend::Aws(Box::new(aws)))
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Local(local) => Arc::new(local.clone()),
            Backend::Aws(aws) => Arc::new(aws.adapters.store.clone()),
        }
    }

    pub fn queue(&self) -> anyhow::Result<Arc<dyn Queue>> {
        match self {
            Backend::Local(local) => Ok(Arc::new(local.clone())),
            Backend::Aws(aws) => {
                aws.settings.require_deliveries_queue_url()?;
                Ok(Arc::new(aws.adapters.queue.clone()))
            }
        }
    }

    /// The queues' consumer side (receive, settle, redrive, depths). A queue URL that is not
    /// configured fails the call that needs it, naming its variable.
    pub fn consumer(&self) -> Arc<dyn QueueConsumer> {
        match self {
            Backend::Local(local) => Arc::new(local.clone()),
            Backend::Aws(aws) => Arc::new(aws.adapters.queue.clone()),
        }
    }

    /// Where bodies over the inline limit are kept (`events show` reads them); `None` on AWS
    /// without a bodies bucket, or when the data dir's bodies directory cannot be opened.
    pub fn bodies(&self) -> Option<Arc<dyn BodyStore>> {
        match self {
            Backend::Local(local) => {
                let data_dir = local.path().parent()?;
                // Expiry is left to `relay dev`'s own writes, which know the event retention.
                let bodies = LocalBodies::open(data_dir, std::time::Duration::MAX).ok()?;
                Some(Arc::new(bodies))
            }
            Backend::Aws(aws) => aws
                .adapters
                .bodies
                .clone()
                .map(|b| Arc::new(b) as Arc<dyn BodyStore>),
        }
    }

    /// Where the last hour's counts come from; `None` on AWS without a metrics namespace.
    pub fn activity(&self) -> Option<Arc<dyn RecentActivity>> {
        match self {
            Backend::Local(local) => Some(Arc::new(local.clone())),
            Backend::Aws(aws) => aws
                .activity
                .clone()
                .map(|a| Arc::new(a) as Arc<dyn RecentActivity>),
        }
    }
}

/// The CLI's class of a stack that cannot be used.
fn classify_stack_error(error: StackError) -> anyhow::Error {
    let kind = match &error {
        StackError::NotFound { .. } => Kind::NotFound,
        StackError::Refused { .. } | StackError::NotARelayStack(_) => Kind::Invalid,
        StackError::Unreachable { .. } => Kind::Unavailable,
        StackError::NoTable => {
            return crate::errors::usage("--aws needs --stack NAME or --table (env RELAY_TABLE)");
        }
    };
    classified(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stack_error_keeps_its_kind_and_text() {
        let cause = || "service error".to_owned();
        let cases = [
            (
                StackError::NotFound {
                    stack: "s".into(),
                    cause: cause(),
                },
                Kind::NotFound,
            ),
            (
                StackError::Refused {
                    stack: "s".into(),
                    cause: cause(),
                },
                Kind::Invalid,
            ),
            (
                StackError::Unreachable {
                    stack: "s".into(),
                    cause: cause(),
                },
                Kind::Unavailable,
            ),
            (StackError::NotARelayStack("s".into()), Kind::Invalid),
        ];
        for (error, kind) in cases {
            let text = error.to_string();
            let classified = classify_stack_error(error);
            assert_eq!(Kind::of(&classified), kind, "{text}");
            assert_eq!(classified.to_string(), text);
        }
        let usage = classify_stack_error(StackError::NoTable);
        assert_eq!(Kind::of(&usage), Kind::Usage);
        assert_eq!(
            usage.to_string(),
            "--aws needs --stack NAME or --table (env RELAY_TABLE)"
        );
    }
}
