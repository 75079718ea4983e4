//! Bodies too large to travel inline, by claim check: the receiver stores such a body once in
//! the body store (`ports::BodyStore`) and the queue messages and the archived event carry its
//! key, SHA-256 and length (`model::StoredBody`); whoever needs the bytes reads them back here,
//! checked against the hash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::domain::model::{EventEnvelope, StoredBody};
use crate::ports::BodyStore;

pub use crate::domain::model::INLINE_BODY_MAX_BYTES;

/// The key of an event's stored body. Every object lives under `bodies/`, the one prefix the
/// functions' IAM policies grant and the bucket's lifecycle rule expires.
pub fn body_key(event_id: &str) -> String {
    format!("bodies/{event_id}")
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Whether a body of `len` bytes travels inside the queue messages (else through the store).
pub fn travels_inline(len: usize) -> bool {
    len <= INLINE_BODY_MAX_BYTES
}

/// The claim check of `body` stored for `event_id`.
pub fn claim_check(event_id: &str, body: &[u8]) -> StoredBody {
    StoredBody {
        key: body_key(event_id),
        sha256: sha256_hex(body),
        bytes: body.len() as u64,
    }
}

/// Why an event's body could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyReadError {
    /// The stored body is gone (expired with its retention, or deleted): it never comes back.
    #[error("the stored body {key} is gone (expired or deleted)")]
    Gone { key: String },
    /// What the store returned is not the body that was accepted: never delivered.
    #[error("the stored body {key} does not match its SHA-256")]
    Mismatch { key: String },
    /// The store could not be read now, or none is configured: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// An inline body that does not decode.
    #[error("{0}")]
    Undecodable(String),
}

/// The original bytes of the event's body: the inline body decoded, or the stored body read
/// and checked against its hash and length.
pub async fn read_body(
    store: Option<&dyn BodyStore>,
    event: &EventEnvelope,
) -> Result<Bytes, BodyReadError> {
    let Some(stored) = &event.stored_body else {
        return event
            .body_bytes()
            .map(|body| Bytes::from(body.into_owned()))
            .map_err(|e| BodyReadError::Undecodable(e.to_string()));
    };
    let Some(store) = store else {
        return Err(BodyReadError::Unavailable(format!(
            "event {} has a stored body and no body store is configured",
            event.id
        )));
    };
    let body = store
        .get(&stored.key)
        .await
        .map_err(|e| BodyReadError::Unavailable(e.to_string()))?
        .ok_or_else(|| BodyReadError::Gone {
            key: stored.key.clone(),
        })?;
    if body.len() as u64 != stored.bytes || sha256_hex(&body) != stored.sha256 {
        return Err(BodyReadError::Mismatch {
            key: stored.key.clone(),
        });
    }
    Ok(body)
}

/// A copy of `event` carrying `body` inline, for what looks into bodies (content filters,
/// `events show`); never queued (a stored body's message would not fit).
pub fn with_inline_body(event: &EventEnvelope, body: &[u8]) -> EventEnvelope {
    let (encoded, body_encoding) = EventEnvelope::encode_body(body);
    EventEnvelope {
        body: encoded,
        body_encoding,
        stored_body: None,
        ..event.clone()
    }
}

/// Stored bodies read for one fanout batch: each key is read once however many of the batch's
/// messages (an event and its retries, several subscriptions' deliveries) carry it.
#[derive(Default)]
pub struct BatchBodies {
    reads: Mutex<HashMap<String, Arc<SharedRead>>>,
}

/// One read of a stored body, made by the first message that needs it and shared by the rest.
type SharedRead = OnceCell<Result<Bytes, BodyReadError>>;

impl BatchBodies {
    /// `read_body`, shared by every message of the batch with the same stored body.
    pub async fn read(
        &self,
        store: Option<&dyn BodyStore>,
        event: &EventEnvelope,
    ) -> Result<Bytes, BodyReadError> {
        let Some(stored) = &event.stored_body else {
            return read_body(store, event).await;
        };
        let cell = {
            let mut reads = self
                .reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(reads.entry(stored.key.clone()).or_default())
        };
        cell.get_or_init(|| read_body(store, event)).await.clone()
    }
}
