//! The HTTP client of the provider APIs: bearer credential (or a GitHub App's JWT), no proxy, no
//! redirects, and the providers' rate limits (`Retry-After`, `X-RateLimit-Remaining` /
//! `X-RateLimit-Reset`, a 429) honoured with waits bounded by a budget.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

use crate::ports::clock::SharedClock;

/// An API credential. Never printed: `Debug` shows only that there is one.
#[derive(Clone)]
pub struct Credential(String);

impl Credential {
    /// Surrounding whitespace (a file's trailing newline) is not part of it.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into().trim().to_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret itself, for what turns it into a request's `Authorization`.
    pub(super) fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

/// What a request sends as `Authorization: Bearer`: a credential as it is (a token, an API key),
/// or one minted and renewed during a run (a GitHub App's JWT, `github_app`). `Debug` shows no
/// secret.
pub trait Bearer: std::fmt::Debug + Send + Sync {
    /// The value to send at `now` (seconds since the epoch).
    fn current(&mut self, now: i64) -> Result<&str, ApiError>;
}

impl Bearer for Credential {
    fn current(&mut self, _now: i64) -> Result<&str, ApiError> {
        Ok(self.secret())
    }
}

/// How long a run may wait for rate limits before it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// The longest single wait; a provider asking for more stops the run.
    pub max_wait: Duration,
    /// All waits of one run together.
    pub total_wait: Duration,
    /// Tries of one request that keep being rate limited.
    pub max_tries: u32,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(60),
            total_wait: Duration::from_secs(300),
            max_tries: 5,
        }
    }
}

/// Why an API call did not give an answer to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the API refused the credential ({status}): check the credential the source's reconcile settings name"
    )]
    Unauthorized { status: u16 },
    #[error("rate limited by the API: {0}")]
    RateLimited(String),
    #[error("the API answered {status}: {message}")]
    Status { status: u16, message: String },
    /// The credential cannot be used as it is (a GitHub App key that does not parse).
    #[error("{0}")]
    Credential(String),
    #[error("cannot reach the API: {0}")]
    Transport(String),
    #[error("unexpected answer from the API: {0}")]
    Invalid(String),
}

/// An error's message followed by its causes (`error sending request: client error (Connect):
/// tcp connect error: Connection refused`), so the reason survives; no URL is in it.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

impl ApiError {
    /// True when further calls in this run would fail the same way.
    pub fn stops_the_run(&self) -> bool {
        matches!(
            self,
            ApiError::Unauthorized { .. }
                | ApiError::RateLimited(_)
                | ApiError::Transport(_)
                | ApiError::Credential(_)
        )
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    bearer: Box<dyn Bearer>,
    headers: HeaderMap,
    policy: RateLimitPolicy,
    clock: SharedClock,
    waited: Duration,
    /// Set when an answer said no requests remain: the next request waits until then (secs).
    paused_until: Option<i64>,
}

/// The longest error text kept from an API answer.
const MESSAGE_EXCERPT_CHARS: usize = 200;

impl ApiClient {
    pub fn new(
        base_url: &str,
        bearer: impl Bearer + 'static,
        policy: RateLimitPolicy,
        clock: SharedClock,
    ) -> Result<Self, ApiError> {
        let mut base = Url::parse(base_url)
            .map_err(|e| ApiError::Invalid(format!("API URL {base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ApiError::Invalid(format!(
                "API URL {base_url:?}: not http or https"
            )));
        }
        // Joined paths go under the base, not beside its last segment.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .user_agent(concat!(
                "webhook-relay-reconcile/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ApiError::Transport(with_causes(&e)))?;
        Ok(Self {
            http,
            base,
            bearer: Box::new(bearer),
            headers: HeaderMap::new(),
            policy,
            clock,
            waited: Duration::ZERO,
            paused_until: None,
        })
    }

    /// A header sent with every request (GitHub's `Accept` and API version).
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        self
    }

    /// `path` (no leading `/`) under the base URL.
    pub fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ApiError::Invalid(format!("path {path:?}: {e}")))
    }

    /// A URL the API handed out (a `Link: rel="next"`), accepted only on the base's origin so
    /// the credential never goes anywhere else.
    pub fn same_origin_url(&self, text: &str) -> Result<Url, ApiError> {
        let url = Url::parse(text)
            .or_else(|_| self.base.join(text))
            .map_err(|e| ApiError::Invalid(format!("next page URL: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(ApiError::Invalid(
                "the next page is on another host; not following it".into(),
            ));
        }
        Ok(url)
    }

    pub async fn get(&mut self, url: Url) -> Result<ApiResponse, ApiError> {
        self.send(Method::GET, url).await
    }

    pub async fn post(&mut self, url: Url) -> Result<ApiResponse, ApiError> {
        self.send(Method::POST, url).await
    }

    /// Time waited for rate limits so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    async fn send(&mut self, method: Method, url: Url) -> Result<ApiResponse, ApiError> {
        if let Some(until) = self.paused_until.take() {
            let wait =
                Duration::from_secs(until.saturating_sub(self.clock.now_secs()).max(0) as u64);
            self.wait(wait, "no requests remain until the limit resets")
                .await?;
        }
        let mut tries = 0;
        loop {
            tries += 1;
            // Asked each time: a GitHub App's JWT is renewed during a long run.
            let bearer = self.bearer.current(self.clock.now_secs())?;
            let response = self
                .http
                .request(method.clone(), url.clone())
                .headers(self.headers.clone())
                .bearer_auth(bearer)
                .send()
                .await
                .map_err(|e| ApiError::Transport(with_causes(&e.without_url())))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| ApiError::Transport(with_causes(&e.without_url())))?;
            let now = self.clock.now_secs();
            if let Some(wait) = wait_for_rate_limit(status, &headers, now) {
                if tries >= self.policy.max_tries {
                    return Err(ApiError::RateLimited(format!(
                        "still limited after {tries} tries"
                    )));
                }
                self.wait(wait, &format!("answered {status}")).await?;
                continue;
            }
            if status == 401 {
                return Err(ApiError::Unauthorized { status });
            }
            if !(200..300).contains(&status) {
                return Err(ApiError::Status {
                    status,
                    message: excerpt(&body),
                });
            }
            if remaining(&headers) == Some(0) {
                self.paused_until = Some(now + reset_in(&headers, now).as_secs() as i64);
            }
            return Ok(ApiResponse {
                status,
                headers,
                body,
            });
        }
    }

    /// Waits `wait` when the budget allows it; otherwise stops the run.
    async fn wait(&mut self, wait: Duration, why: &str) -> Result<(), ApiError> {
        if wait > self.policy.max_wait || self.waited + wait > self.policy.total_wait {
            return Err(ApiError::RateLimited(format!(
                "{why}; the API asks to wait {}s, more than this run waits (at most {}s at once, {}s in all)",
                wait.as_secs(),
                self.policy.max_wait.as_secs(),
                self.policy.total_wait.as_secs()
            )));
        }
        self.waited += wait;
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// How long to wait before trying a request again that the answer `status` with `headers`
/// refused for its rate limit; `None` when it was not a rate limit. A 429 (Stripe, GitHub), or
/// GitHub's 403 with `X-RateLimit-Remaining: 0` or a `Retry-After` (its secondary limit); the
/// wait is `Retry-After` (seconds), else until `X-RateLimit-Reset` (epoch seconds), else 1 s.
pub fn wait_for_rate_limit(status: u16, headers: &HeaderMap, now: i64) -> Option<Duration> {
    let retry_after = header_number(headers, "retry-after");
    let limited = match status {
        429 => true,
        403 => remaining(headers) == Some(0) || retry_after.is_some(),
        _ => false,
    };
    if !limited {
        return None;
    }
    Some(match retry_after {
        Some(secs) => Duration::from_secs(secs.max(0) as u64),
        None => reset_in(headers, now),
    })
}

/// Until `X-RateLimit-Reset` (at least 1 s; 1 s when absent).
fn reset_in(headers: &HeaderMap, now: i64) -> Duration {
    match header_number(headers, "x-ratelimit-reset") {
        Some(reset) => Duration::from_secs(reset.saturating_sub(now).max(1) as u64),
        None => Duration::from_secs(1),
    }
}

fn remaining(headers: &HeaderMap) -> Option<i64> {
    header_number(headers, "x-ratelimit-remaining")
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(MESSAGE_EXCERPT_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn retry_after_sets_the_wait_of_a_429() {
        let wait = wait_for_rate_limit(429, &headers(&[("retry-after", "7")]), NOW);
        assert_eq!(wait, Some(Duration::from_secs(7)));
        // Stripe's 429 without Retry-After: a short pause.
        assert_eq!(
            wait_for_rate_limit(429, &HeaderMap::new(), NOW),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn github_primary_limit_waits_until_the_reset() {
        let limited = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000042"),
        ]);
        assert_eq!(
            wait_for_rate_limit(403, &limited, NOW),
            Some(Duration::from_secs(42))
        );
        // A reset already past still waits a moment.
        let past = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1699999990"),
        ]);
        assert_eq!(
            wait_for_rate_limit(403, &past, NOW),
            Some(Duration::from_secs(1))
        );
        // Its secondary limit: 403 with Retry-After.
        assert_eq!(
            wait_for_rate_limit(403, &headers(&[("retry-after", "60")]), NOW),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn other_answers_are_no_rate_limit() {
        assert_eq!(wait_for_rate_limit(403, &HeaderMap::new(), NOW), None);
        let some_left = headers(&[("x-ratelimit-remaining", "10")]);
        assert_eq!(wait_for_rate_limit(403, &some_left, NOW), None);
        assert_eq!(wait_for_rate_limit(200, &some_left, NOW), None);
        assert_eq!(
            wait_for_rate_limit(503, &headers(&[("retry-after", "5")]), NOW),
            None
        );
        assert_eq!(wait_for_rate_limit(401, &HeaderMap::new(), NOW), None);
    }

    #[test]
    fn credentials_never_print() {
        let credential = Credential::new("ghp_secret_token\n");
        assert_eq!(format!("{credential:?}"), "Credential(..)");
        assert_eq!(credential.0, "ghp_secret_token");
    }

    #[test]
    fn next_pages_only_on_the_same_origin() {
        let client = ApiClient::new(
            "http://127.0.0.1:9/api",
            Credential::new("t"),
            RateLimitPolicy::default(),
            crate::ports::clock::FixedClock::at_secs(NOW),
        )
        .unwrap();
        assert_eq!(
            client.url("repos/o/r").unwrap().as_str(),
            "http://127.0.0.1:9/api/repos/o/r"
        );
        assert!(
            client
                .same_origin_url("http://127.0.0.1:9/api/x?cursor=a")
                .is_ok()
        );
        assert!(
            client
                .same_origin_url("http://evil.example/api/x?cursor=a")
                .is_err()
        );
        assert!(client.same_origin_url("http://127.0.0.1:10/api/x").is_err());
    }
}
