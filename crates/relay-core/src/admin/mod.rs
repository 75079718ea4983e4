//! The operators' use cases: sources, subscriptions, events, replay, redrive and status, over the ports
//! they need. Inputs are plain structs; the `relay` CLI (and any console) maps its own arguments
//! onto them and prints what comes back. Every rule an operator's change must keep lives here.
//!
//! Messages say what was wrong and never contain a secret. They name the options as the `relay`
//! CLI spells them (`--secret`, `--public-url`), the names its users and scripts know;
//! `AdminError::Invalid::field` names the input field for callers that show it elsewhere.

pub mod activity;
pub mod bulk_replay;
pub mod events;
pub mod redrive;
pub mod sources;
pub mod status;
pub mod subscriptions;
#[cfg(test)]
mod tests;

use crate::ports::{QueueError, StoreError};

/// Why an admin use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(Missing),
    /// An input the use case does not accept; `field` names the input field.
    #[error("{reason}")]
    Invalid { field: &'static str, reason: String },
    /// The change clashes with what is stored (a source of that name exists already).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What was looked for and not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Source(String),
    /// The source a new subscription names.
    SourceToSubscribe(String),
    Subscription(String),
    /// Events are kept for a limited time.
    Event(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Source(name) => write!(f, "no source named {name}"),
            Missing::SourceToSubscribe(name) => {
                write!(
                    f,
                    "no source named {name}; add it first with relay sources add"
                )
            }
            Missing::Subscription(id) => write!(f, "no subscription {id}"),
            Missing::Event(id) => {
                write!(f, "no event {id} (events are kept for a limited time)")
            }
        }
    }
}

impl AdminError {
    pub(crate) fn invalid(field: &'static str, reason: impl std::fmt::Display) -> Self {
        AdminError::Invalid {
            field,
            reason: reason.to_string(),
        }
    }
}
