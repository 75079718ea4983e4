//! Identifiers and secrets minted by the relay.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

/// Event ids are time-ordered (UUIDv7) so listings sort by arrival; they become `webhook-id`.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

pub fn new_subscription_id() -> String {
    format!("sub_{}", uuid::Uuid::now_v7().simple())
}

/// A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}
