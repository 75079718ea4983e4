//! Inbound verification. Each provider is one file that says where its signature, event type and
//! delivery id come from; `verify` dispatches on the source's configured provider.

mod github;
mod hmac_generic;
mod standard;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::model::{ProviderConfig, Source};

/// An inbound HTTP request with its body exactly as the provider sent it.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub method: Method,
    /// The path without the query, e.g. `/github`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl InboundRequest {
    /// The first value of a header, trimmed; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .find(|v| !v.is_empty())
    }

    /// Every value of a header (repeated headers and comma-joined ones are both seen).
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .get_all(name)
            .into_iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }
}

/// What verification learned about an authentic request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub event_type: String,
    /// The provider's own delivery id, used to drop duplicate deliveries.
    pub delivery_id: Option<String>,
}

/// Why a request is refused: a status code and a message safe to show the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

impl Rejection {
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            message: message.into(),
        }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }
}

/// Verifies `request` for `source` at `now` (seconds since the epoch).
pub fn verify(source: &Source, request: &InboundRequest, now: i64) -> Result<Verified, Rejection> {
    if source.secrets.is_empty() {
        return Err(Rejection::unauthorized(
            "source has no secret configured; add one with relay sources update --add-secret",
        ));
    }
    match &source.provider {
        ProviderConfig::Github => github::verify(source, request),
        ProviderConfig::Standard => standard::verify(source, request, now),
        ProviderConfig::Hmac(options) => hmac_generic::verify(source, options, request),
    }
}

/// Checks a signed timestamp against the tolerance, in both directions.
pub(crate) fn check_timestamp(timestamp: i64, now: i64, tolerance: u64) -> Result<(), Rejection> {
    let age = now.saturating_sub(timestamp);
    let tolerance_i = i64::try_from(tolerance).unwrap_or(i64::MAX);
    if age > tolerance_i {
        return Err(Rejection::unauthorized(format!(
            "timestamp {age} s old, tolerance {tolerance} s"
        )));
    }
    if -age > tolerance_i {
        return Err(Rejection::unauthorized(format!(
            "timestamp {} s in the future, tolerance {tolerance} s",
            -age
        )));
    }
    Ok(())
}

/// The top-level string field `field` of a JSON object body, without building a whole tree.
pub(crate) fn json_string_field(body: &[u8], field: &str) -> Result<Option<String>, String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct FieldVisitor<'f>(&'f str);
    impl<'de> Visitor<'de> for FieldVisitor<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if found.is_none() && key == self.0 {
                    let value: serde_json::Value = map.next_value()?;
                    found = value.as_str().map(str::to_owned);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = de
        .deserialize_map(FieldVisitor(field))
        .map_err(|e| format!("body is not a JSON object: {e}"))?;
    de.end()
        .map_err(|e| format!("body is not a JSON object: {e}"))?;
    Ok(value)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn vectors() -> serde_json::Value {
        let text = include_str!("../../../../../shared/vectors/providers.json");
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn request(headers: &[(&str, &str)], body: &str) -> InboundRequest {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        InboundRequest {
            method: Method::POST,
            path: "/test".into(),
            query: None,
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    pub fn source(provider: ProviderConfig, secret: &str) -> Source {
        Source {
            name: "test".into(),
            provider,
            secrets: vec![secret.into()],
            tolerance_secs: 300,
            created_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_directions() {
        assert!(check_timestamp(1000, 1000, 300).is_ok());
        assert!(check_timestamp(700, 1000, 300).is_ok());
        let old = check_timestamp(188, 1000, 300).unwrap_err();
        assert_eq!(old.message, "timestamp 812 s old, tolerance 300 s");
        let future = check_timestamp(1400, 1000, 300).unwrap_err();
        assert_eq!(future.message, "timestamp 400 s in the future, tolerance 300 s");
    }

    #[test]
    fn reads_one_json_field() {
        let body = br#"{"zen":"x","nested":{"action":"no"},"action":"opened"}"#;
        assert_eq!(
            json_string_field(body, "action").unwrap(),
            Some("opened".into())
        );
        assert_eq!(json_string_field(br#"{"a":1}"#, "action").unwrap(), None);
        assert!(json_string_field(b"[1,2]", "action").is_err());
        assert!(json_string_field(b"{} trailing", "action").is_err());
    }

    #[test]
    fn repeated_headers_and_case() {
        let req = test_support::request(&[("X-Thing", " a "), ("x-thing", "b")], "");
        assert_eq!(req.header("x-THING"), Some("a"));
        assert_eq!(req.header_values("x-thing").count(), 2);
    }
}
