//! The outbound HTTP client: one signed POST per (event, subscription) attempt, with the
//! Standard Webhooks headers, no redirects, no proxy from the environment, and the SSRF guard.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

pub use crate::domain::attempt::{Attempt, AttemptResult, Outcome};
use crate::outbound::netguard::{GuardedResolver, RefusedDestination, non_global_reason};
use crate::signing::standard_signature_header;

pub const USER_AGENT: &str = concat!("webhook-relay/", env!("CARGO_PKG_VERSION"));
/// How much of a subscriber's response body the attempt log keeps.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub timeout: Duration,
    /// Permit loopback and private destinations (`relay dev` default; off on Lambda).
    pub allow_private: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            allow_private: false,
        }
    }
}

#[async_trait::async_trait]
impl crate::ports::Deliverer for DeliveryClient {
    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    async fn deliver(&self, attempt: Attempt<'_>) -> AttemptResult {
        self.send(attempt).await
    }
}

/// The HTTP client of the delivery client could not be built (TLS or resolver setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct DeliveryClientError(pub reqwest::Error);

pub struct DeliveryClient {
    http: reqwest::Client,
    config: DeliveryConfig,
}

impl DeliveryClient {
    pub fn new(config: DeliveryConfig) -> Result<Self, DeliveryClientError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64);
        if !config.allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(GuardedResolver));
        }
        let http = builder.build().map_err(DeliveryClientError)?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// Sends one signed attempt and classifies the answer.
    pub async fn deliver(&self, attempt: Attempt<'_>) -> AttemptResult {
        self.send(attempt).await
    }

    async fn send(&self, attempt: Attempt<'_>) -> AttemptResult {
        let started = Instant::now();
        let finish =
            |outcome: Outcome, excerpt: String, retry_after: Option<Duration>| AttemptResult {
                outcome,
                latency: started.elapsed(),
                excerpt,
                retry_after,
            };
        let url = match reqwest::Url::parse(&attempt.subscription.url) {
            Ok(url) => url,
            Err(e) => {
                return finish(
                    Outcome::Invalid(format!("invalid URL: {e}")),
                    String::new(),
                    None,
                );
            }
        };
        if let Err(refused) = self.check_destination(&url) {
            return finish(Outcome::Refused(refused.to_string()), String::new(), None);
        }
        let headers = match delivery_headers(&attempt) {
            Ok(headers) => headers,
            Err(e) => return finish(Outcome::Invalid(e.to_string()), String::new(), None),
        };
        let response = self
            .http
            .post(url)
            .headers(headers)
            .timeout(attempt.timeout)
            .body(attempt.body)
            .send()
            .await;
        let mut response = match response {
            Ok(response) => response,
            Err(e) => return finish(classify_error(&e), String::new(), None),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::domain::retry::parse_retry_after(v, attempt.now_secs));
        // Keep the start of the body for the attempt log; do not read the rest.
        let mut excerpt = Vec::new();
        while excerpt.len() < RESPONSE_EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        excerpt.truncate(RESPONSE_EXCERPT_BYTES);
        let excerpt = String::from_utf8_lossy(&excerpt).into_owned();
        let outcome = match status {
            200..=299 => Outcome::Delivered { status },
            410 => Outcome::Gone,
            _ => Outcome::Status { status },
        };
        finish(outcome, excerpt, retry_after)
    }

    /// Scheme check, and for IP-literal hosts the address check (the resolver never sees them).
    fn check_destination(&self, url: &reqwest::Url) -> Result<(), RefusedUrl> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RefusedUrl::Scheme(url.scheme().to_owned()));
        }
        if self.config.allow_private {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(RefusedUrl::NoHost),
        };
        match non_global_reason(ip) {
            Some(reason) => Err(RefusedUrl::NotGlobal { ip, reason }),
            None => Ok(()),
        }
    }
}

/// Why an attempt's URL is refused before any connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RefusedUrl {
    #[error("scheme {0} is not http or https")]
    Scheme(String),
    #[error("URL has no host")]
    NoHost,
    /// An IP-literal host that is not a global unicast address.
    #[error("destination {ip} is a {reason}")]
    NotGlobal {
        ip: std::net::IpAddr,
        reason: &'static str,
    },
}

/// The headers of one attempt: Standard Webhooks signature over the exact body, the relay's own
/// headers, then the subscription's extra headers (which cannot override the relay's).
pub fn delivery_headers(attempt: &Attempt<'_>) -> Result<HeaderMap, InvalidDeliveryHeader> {
    let event = attempt.event;
    let secrets = attempt.subscription.active_secrets(attempt.now_secs);
    let signature = standard_signature_header(&secrets, &event.id, attempt.now_secs, &attempt.body);
    let mut headers = HeaderMap::with_capacity(8 + attempt.subscription.headers.len());
    for (name, value) in &attempt.subscription.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| InvalidDeliveryHeader::SubscriptionName { name: name.clone() })?;
        if is_reserved(&name) {
            continue;
        }
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| InvalidDeliveryHeader::SubscriptionValue { name: name.clone() })?;
        headers.append(name, value);
    }
    let text = |value: &str| {
        HeaderValue::from_str(value).map_err(|_| InvalidDeliveryHeader::Value {
            value: value.to_owned(),
        })
    };
    if let Some(content_type) = &event.content_type {
        headers.insert(http::header::CONTENT_TYPE, text(content_type)?);
    }
    headers.insert("webhook-id", text(&event.id)?);
    headers.insert("webhook-timestamp", HeaderValue::from(attempt.now_secs));
    headers.insert("webhook-signature", text(&signature)?);
    headers.insert("x-relay-source", text(&event.source)?);
    headers.insert("x-relay-event-type", text(&event.event_type)?);
    headers.insert("x-relay-attempt", HeaderValue::from(attempt.attempt));
    Ok(headers)
}

/// A header of an attempt that HTTP cannot carry: the attempt is invalid, not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDeliveryHeader {
    #[error("invalid header name {name:?} in subscription")]
    SubscriptionName { name: String },
    #[error("invalid value for header {name} in subscription")]
    SubscriptionValue { name: HeaderName },
    #[error("invalid header value {value:?}")]
    Value { value: String },
}

fn is_reserved(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("webhook-")
        || name.starts_with("x-relay-")
        || matches!(
            name,
            "content-type"
                | "content-length"
                | "host"
                | "user-agent"
                | "transfer-encoding"
                | "connection"
        )
}

fn classify_error(error: &reqwest::Error) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<RefusedDestination>() {
            return Outcome::Refused(refused.to_string());
        }
        source = current.source();
    }
    if error.is_timeout() {
        Outcome::Timeout
    } else if error.is_connect() {
        Outcome::Connect("could not connect".into())
    } else if error.is_builder() {
        Outcome::Invalid("invalid request".into())
    } else {
        Outcome::Connect("request failed before a response".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{
        AttemptOutcome, BodyEncoding, EventEnvelope, SigningSecret, Subscription,
    };
    use bytes::Bytes;

    fn event() -> EventEnvelope {
        EventEnvelope {
            id: "evt_1".into(),
            source: "github".into(),
            event_type: "push".into(),
            content_type: Some("application/json".into()),
            received_at: 0,
            body: "{}".into(),
            body_encoding: BodyEncoding::Utf8,
            reconciled: false,
            stored_body: None,
        }
    }

    fn subscription(url: &str) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            source: "github".into(),
            url: url.into(),
            events: vec!["*".into()],
            secrets: vec![
                SigningSecret {
                    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                    expires_at: None,
                },
                SigningSecret {
                    secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
                    expires_at: Some(50),
                },
            ],
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            refused: None,
            headers: vec![
                ("Authorization".into(), "Bearer abc".into()),
                ("webhook-id".into(), "spoof".into()),
            ],
            created_at: 0,
            filter: None,
            policy: Default::default(),
            paused_until: None,
            pause_streak: 0,
            revision: 0,
        }
    }

    #[test]
    fn headers_follow_the_contract() {
        let event = event();
        let sub = subscription("https://example.com/hook");
        let attempt = Attempt {
            event: &event,
            body: Bytes::from_static(b"{}"),
            subscription: &sub,
            attempt: 3,
            now_secs: 100,
            timeout: Duration::from_secs(15),
        };
        let headers = delivery_headers(&attempt).unwrap();
        assert_eq!(headers["webhook-id"], "evt_1");
        assert_eq!(headers["webhook-timestamp"], "100");
        assert_eq!(headers["x-relay-attempt"], "3");
        assert_eq!(headers["x-relay-source"], "github");
        assert_eq!(headers["x-relay-event-type"], "push");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["authorization"], "Bearer abc");
        assert_eq!(headers.get_all("webhook-id").iter().count(), 1);
        // The expired secret no longer signs.
        let sig = headers["webhook-signature"].to_str().unwrap();
        assert_eq!(sig.split(' ').count(), 1);
        let expected = standard_signature_header(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "evt_1",
            100,
            b"{}",
        );
        assert_eq!(sig, expected);
        // Before the expiry both sign.
        let attempt = Attempt {
            now_secs: 10,
            ..attempt
        };
        let headers = delivery_headers(&attempt).unwrap();
        assert_eq!(
            headers["webhook-signature"]
                .to_str()
                .unwrap()
                .split(' ')
                .count(),
            2
        );
    }

    #[test]
    fn ip_literals_are_checked_before_any_request() {
        let client = DeliveryClient::new(DeliveryConfig::default()).unwrap();
        for url in [
            "http://127.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
        ] {
            let url = reqwest::Url::parse(url).unwrap();
            assert!(client.check_destination(&url).is_err(), "{url}");
        }
        let url = reqwest::Url::parse("https://8.8.8.8/").unwrap();
        assert!(client.check_destination(&url).is_ok());
        let url = reqwest::Url::parse("ftp://example.com/").unwrap();
        assert!(client.check_destination(&url).is_err());
        let open = DeliveryClient::new(DeliveryConfig {
            allow_private: true,
            ..DeliveryConfig::default()
        })
        .unwrap();
        let url = reqwest::Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(open.check_destination(&url).is_ok());
    }

    #[test]
    fn outcomes_classify() {
        assert!(Outcome::Status { status: 500 }.is_retryable());
        assert!(Outcome::Status { status: 302 }.is_retryable());
        assert_eq!(
            Outcome::Status { status: 302 }.kind(),
            AttemptOutcome::Redirect
        );
        assert!(!Outcome::Gone.is_retryable());
        assert!(!Outcome::Refused("x".into()).is_retryable());
        assert!(Outcome::Timeout.is_retryable());
    }
}
