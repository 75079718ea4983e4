//! What the providers' unit tests share: the official vectors, requests, sources.

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::{InboundRequest, ProviderConfig};
use crate::domain::model::Source;

pub fn vectors() -> serde_json::Value {
    let text = include_str!("../../testdata/providers.json");
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
        reconcile: None,
    }
}

/// The config `--provider name` makes without options.
pub fn config(name: &str) -> ProviderConfig {
    ProviderConfig::named(name).unwrap()
}
