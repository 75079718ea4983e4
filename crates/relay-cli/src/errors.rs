//! Error classes, as the CLI contract names them: the exit status (2 for usage, 1 otherwise)
//! and the `kind` of a `--json` error. The class is read from the cause chain, so the core's
//! typed errors keep theirs through `anyhow`'s context.

use relay_core::admin::AdminError;
use relay_core::ports::{QueueError, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A command line the CLI does not accept (exit 2).
    Usage,
    NotFound,
    Conflict,
    Invalid,
    /// The store, a queue or a provider's API did not answer.
    Unavailable,
    /// A fault of the relay itself (stored data it cannot read, a broken invariant).
    Internal,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::NotFound => "not_found",
            Kind::Conflict => "conflict",
            Kind::Invalid => "invalid",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
        }
    }

    pub fn exit_code(self) -> u8 {
        if self == Kind::Usage { 2 } else { 1 }
    }

    /// The class of `error`: the first classified cause in its chain, else internal.
    pub fn of(error: &anyhow::Error) -> Kind {
        error
            .chain()
            .find_map(|cause| {
                if let Some(classified) = cause.downcast_ref::<Classified>() {
                    Some(classified.kind)
                } else if let Some(admin) = cause.downcast_ref::<AdminError>() {
                    Some(match admin {
                        AdminError::NotFound(_) => Kind::NotFound,
                        AdminError::Invalid { .. } => Kind::Invalid,
                        AdminError::Conflict(_) => Kind::Conflict,
                        AdminError::Store(store) => Kind::of_store(store),
                        AdminError::Queue(_) => Kind::Unavailable,
                    })
                } else if let Some(store) = cause.downcast_ref::<StoreError>() {
                    Some(Kind::of_store(store))
                } else {
                    cause
                        .downcast_ref::<QueueError>()
                        .map(|_| Kind::Unavailable)
                }
            })
            .unwrap_or(Kind::Internal)
    }

    fn of_store(error: &StoreError) -> Kind {
        match error {
            StoreError::Unavailable(_) => Kind::Unavailable,
            StoreError::Corrupt(_) => Kind::Internal,
            StoreError::Conflict(_) | StoreError::Stale(_) => Kind::Conflict,
        }
    }
}

/// An error the CLI raises itself, with its class.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    pub kind: Kind,
    pub message: String,
}

pub fn classified(kind: Kind, message: impl std::fmt::Display) -> anyhow::Error {
    Classified {
        kind,
        message: message.to_string(),
    }
    .into()
}

/// A flag value the CLI cannot use (exit 2, like the usage errors clap reports).
pub fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    classified(Kind::Usage, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use relay_core::admin::Missing;

    #[test]
    fn the_class_survives_context() {
        let missing: anyhow::Error = AdminError::NotFound(Missing::Source("x".into())).into();
        assert_eq!(Kind::of(&missing.context("removing x")), Kind::NotFound);
        let busy = Err::<(), _>(StoreError::Unavailable("GetItem: timed out".into()))
            .context("cannot list sources")
            .unwrap_err();
        assert_eq!(Kind::of(&busy), Kind::Unavailable);
        let stale: anyhow::Error = AdminError::Store(StoreError::Stale("sub_1".into())).into();
        assert_eq!(Kind::of(&stale), Kind::Conflict);
        assert_eq!(Kind::of(&usage("--keep-old: no unit")), Kind::Usage);
        assert_eq!(Kind::of(&anyhow::anyhow!("something else")), Kind::Internal);
    }

    #[test]
    fn only_usage_exits_2() {
        let kinds = [
            Kind::Usage,
            Kind::NotFound,
            Kind::Conflict,
            Kind::Invalid,
            Kind::Unavailable,
            Kind::Internal,
        ];
        let codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes, [2, 1, 1, 1, 1, 1]);
    }
}
