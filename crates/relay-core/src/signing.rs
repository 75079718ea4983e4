//! HMAC primitives and Standard Webhooks signing, shared by inbound verification and outbound
//! delivery so there is one implementation of each.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// HMAC over the concatenation of `parts` (avoids building a joined copy of the body).
pub fn hmac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match <M as KeyInit>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => return Vec::new(),
        };
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<Sha1>>(key, parts),
        Algorithm::Sha256 => run::<Hmac<Sha256>>(key, parts),
        Algorithm::Sha512 => run::<Hmac<Sha512>>(key, parts),
    }
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac(Algorithm::Sha256, key, parts)
}

/// Constant-time equality; lengths are not secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Decodes a hex signature; `None` when it is not hex.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.trim()).ok()
}

pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

/// The key bytes of a Standard Webhooks secret (`whsec_` + base64). Secrets without the prefix
/// are accepted as bare base64, as the official libraries do.
pub fn standard_secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).ok()
}

/// How many key bytes a `whsec_` secret holds (the Standard Webhooks spec: 24 to 64).
pub const WHSEC_KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Checks a secret given for a subscription: `whsec_` + base64 of 24 to 64 bytes.
pub fn validate_signing_secret(secret: &str) -> Result<(), InvalidSigningSecret> {
    validate_whsec(secret, "a signing secret")
}

/// A secret that is not `whsec_` + base64 of `WHSEC_KEY_BYTES` bytes. `what` names the secret in
/// the message, which never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSigningSecret {
    #[error("{what} starts with whsec_")]
    MissingPrefix { what: String },
    #[error(
        "{what} holds {} to {} bytes, this one holds {key_bytes}",
        WHSEC_KEY_BYTES.start(),
        WHSEC_KEY_BYTES.end()
    )]
    WrongKeyLength { what: String, key_bytes: usize },
    #[error("{what} is whsec_ followed by base64")]
    NotBase64 { what: String },
}

/// Checks `whsec_` + base64 of `WHSEC_KEY_BYTES` bytes; `what` names the secret in the message,
/// which never contains the secret.
pub fn validate_whsec(secret: &str, what: &str) -> Result<(), InvalidSigningSecret> {
    let named = || what.to_owned();
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return Err(InvalidSigningSecret::MissingPrefix { what: named() });
    };
    match STANDARD.decode(encoded) {
        Ok(key) if WHSEC_KEY_BYTES.contains(&key.len()) => Ok(()),
        Ok(key) => Err(InvalidSigningSecret::WrongKeyLength {
            what: named(),
            key_bytes: key.len(),
        }),
        Err(_) => Err(InvalidSigningSecret::NotBase64 { what: named() }),
    }
}

/// One `v1,<base64>` entry: HMAC-SHA256 over `{id}.{timestamp}.{body}`.
pub fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// The `webhook-signature` header value: one entry per secret, space-separated.
pub fn standard_signature_header<S: AsRef<str>>(
    secrets: &[S],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut header = String::new();
    for secret in secrets {
        if let Some(key) = standard_secret_key(secret.as_ref()) {
            if !header.is_empty() {
                header.push(' ');
            }
            header.push_str(&standard_signature(&key, id, timestamp, body));
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let text = include_str!("../testdata/providers.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn standard_webhooks_vector() {
        let v = &vectors()["standard_webhooks"];
        let key = standard_secret_key(v["secret"].as_str().unwrap()).unwrap();
        let sig = standard_signature(
            &key,
            v["id"].as_str().unwrap(),
            v["timestamp"].as_i64().unwrap(),
            v["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(sig, v["signature"].as_str().unwrap());
    }

    #[test]
    fn header_has_one_entry_per_secret() {
        let v = &vectors()["standard_webhooks"];
        let secret = v["secret"].as_str().unwrap();
        let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let header = standard_signature_header(&[secret, other], "msg_1", 1, b"{}");
        let entries: Vec<_> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.starts_with("v1,")));
        assert_ne!(entries[0], entries[1]);
    }

    #[test]
    fn secret_validation() {
        assert!(validate_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(validate_signing_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(validate_signing_secret("whsec_AAAA").is_err());
        assert!(validate_signing_secret("whsec_!!!").is_err());
        // An empty key (anyone could sign) and a one-byte key.
        assert_eq!(
            validate_signing_secret("whsec_").unwrap_err().to_string(),
            "a signing secret holds 24 to 64 bytes, this one holds 0"
        );
        assert!(validate_signing_secret("whsec_AA==").is_err());
        let longest = format!("whsec_{}", STANDARD.encode([7u8; 64]));
        assert!(validate_signing_secret(&longest).is_ok());
        let too_long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert!(validate_signing_secret(&too_long).is_err());
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
