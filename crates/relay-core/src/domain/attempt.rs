//! One delivery attempt as the `Deliverer` port takes and answers it: what is sent (`Attempt`)
//! and what came of it (`AttemptResult`, `Outcome`). The HTTP client in `delivery` is one
//! deliverer; tests script others.

use std::time::Duration;

use bytes::Bytes;

use crate::domain::model::{AttemptOutcome, EventEnvelope, Subscription};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered {
        status: u16,
    },
    /// 410: the subscriber asks never to be called again.
    Gone,
    /// Any other status, 3xx included (redirects are not followed).
    Status {
        status: u16,
    },
    Timeout,
    Connect(String),
    /// The destination is not a permitted address; retrying cannot help.
    Refused(String),
    /// The request could not be built (bad URL or header); retrying cannot help.
    Invalid(String),
}

impl Outcome {
    pub fn kind(&self) -> AttemptOutcome {
        match self {
            Outcome::Delivered { .. } => AttemptOutcome::Ok,
            Outcome::Gone => AttemptOutcome::Gone,
            Outcome::Status { status } if (300..400).contains(status) => AttemptOutcome::Redirect,
            Outcome::Status { .. } => AttemptOutcome::HttpStatus,
            Outcome::Timeout => AttemptOutcome::Timeout,
            Outcome::Connect(_) => AttemptOutcome::Connect,
            Outcome::Refused(_) => AttemptOutcome::RefusedDestination,
            Outcome::Invalid(_) => AttemptOutcome::InvalidRequest,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status } | Outcome::Status { status } => Some(*status),
            Outcome::Gone => Some(410),
            _ => None,
        }
    }

    /// Whether a later attempt might succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Outcome::Status { .. } | Outcome::Timeout | Outcome::Connect(_)
        )
    }
}

#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub outcome: Outcome,
    pub latency: Duration,
    pub excerpt: String,
    pub retry_after: Option<Duration>,
}

/// One attempt's inputs. `body` is shared, not copied, between the subscriptions of an event.
pub struct Attempt<'a> {
    pub event: &'a EventEnvelope,
    pub body: Bytes,
    pub subscription: &'a Subscription,
    pub attempt: u32,
    /// Signing time, seconds since the epoch.
    pub now_secs: i64,
    /// From connecting until the response body is read.
    pub timeout: Duration,
}
