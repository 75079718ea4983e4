//! Who may use the console, and which requests may change something.
//!
//! - On a loopback address the console is the operator's own machine: no token, but the Host
//!   must name a loopback host, so a page elsewhere cannot reach it through DNS rebinding.
//! - On any other address a random access token (256 bits from the OS) is required: in the URL
//!   of the first visit (answered with a cookie and a redirect that drops it from the URL), then
//!   in that cookie.
//! - Every action is a POST carrying the per-process CSRF token in a hidden field, with an
//!   Origin that is this console's own.
//!
//! Tokens are compared in constant time.

use std::net::{IpAddr, SocketAddr};

use rand::TryRngCore;
use subtle::ConstantTimeEq;

/// The cookie that carries the access token after the first visit.
pub const TOKEN_COOKIE: &str = "relay_console_token";
/// The query parameter of the first visit's URL.
pub const TOKEN_PARAM: &str = "token";
/// The hidden form field of every action.
pub const CSRF_FIELD: &str = "csrf";

pub struct Access {
    /// Required when the console listens beyond loopback.
    token: Option<String>,
    csrf: String,
}

/// What the access check says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// The right token in the URL: set the cookie and load the URL without it.
    SetCookie {
        location: String,
    },
    Refuse {
        status: u16,
        message: String,
    },
}

impl Access {
    /// The rule for a console listening on `listen`.
    pub fn for_listen(listen: SocketAddr) -> anyhow::Result<Self> {
        let token = if listen.ip().is_loopback() {
            None
        } else {
            Some(random_token()?)
        };
        Ok(Self {
            token,
            csrf: random_token()?,
        })
    }

    #[cfg(test)]
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The console's URL as printed at start: with the token when one is required.
    pub fn start_url(&self, listen: SocketAddr, path: &str) -> String {
        match &self.token {
            Some(token) => format!("http://{listen}{path}?{TOKEN_PARAM}={token}"),
            None => format!("http://{listen}{path}"),
        }
    }

    /// What the start message says about access.
    pub fn start_note(&self) -> &'static str {
        if self.token.is_some() {
            "listening beyond loopback: the access token in this URL is required (a cookie keeps it after the first visit)"
        } else {
            "loopback only: no access token"
        }
    }

    /// Checks a request's access token (or, on loopback, its Host).
    pub fn admit(&self, headers: &http::HeaderMap, path: &str, query: Option<&str>) -> Verdict {
        let Some(token) = &self.token else {
            return match host_name(headers) {
                Some(host) if is_loopback_host(host) => Verdict::Admit,
                _ => refuse(
                    403,
                    "the console on a loopback address answers only to a loopback Host (localhost, 127.0.0.1, [::1])",
                ),
            };
        };
        if let Some(given) = query_value(query, TOKEN_PARAM) {
            if !same(&given, token) {
                return refuse(403, "wrong access token");
            }
            let rest = query_without(query, TOKEN_PARAM);
            let location = if rest.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{rest}")
            };
            return Verdict::SetCookie { location };
        }
        match cookie_value(headers, TOKEN_COOKIE) {
            Some(given) if same(given, token) => Verdict::Admit,
            Some(_) => refuse(403, "wrong access token: open the URL printed at start"),
            None => refuse(
                401,
                "this console requires its access token: open the URL printed at start",
            ),
        }
    }

    /// The Set-Cookie value that keeps the access token.
    pub fn cookie(&self, path: &str) -> Option<String> {
        self.token
            .as_ref()
            .map(|token| format!("{TOKEN_COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict"))
    }

    /// Checks an action: the Origin is this console's and the form carries the CSRF token.
    pub fn check_action(
        &self,
        headers: &http::HeaderMap,
        form_csrf: Option<&str>,
    ) -> Result<(), String> {
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or("a request without Host is refused")?;
        let origin = headers
            .get(http::header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .ok_or("an action without Origin is refused")?;
        if !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Err("an action from another origin is refused".into());
        }
        match form_csrf {
            Some(given) if same(given, &self.csrf) => Ok(()),
            Some(_) => Err("wrong CSRF token: reload the page and try again".into()),
            None => Err("an action without its CSRF token is refused".into()),
        }
    }
}

fn refuse(status: u16, message: &str) -> Verdict {
    Verdict::Refuse {
        status,
        message: message.to_owned(),
    }
}

/// 32 bytes from the operating system's generator, as hex.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the operating system's random generator failed: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Constant time in the contents (a length that differs answers at once).
fn same(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The Host header without its port.
fn host_name(headers: &http::HeaderMap) -> Option<&str> {
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next();
    }
    Some(host.rsplit_once(':').map_or(host, |(name, _)| name))
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn query_without(query: Option<&str>, name: &str) -> String {
    let kept = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key != name);
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn loopback_needs_no_token_but_a_loopback_host() {
        let access = Access::for_listen("127.0.0.1:8081".parse().unwrap()).unwrap();
        assert!(access.token().is_none());
        for host in [
            "127.0.0.1:8081",
            "localhost:8081",
            "[::1]:8081",
            "localhost",
        ] {
            assert_eq!(
                access.admit(&headers(&[("host", host)]), "/console", None),
                Verdict::Admit,
                "{host}"
            );
        }
        let rebound = access.admit(&headers(&[("host", "evil.example:8081")]), "/console", None);
        assert!(matches!(rebound, Verdict::Refuse { status: 403, .. }));
        assert!(matches!(
            access.admit(&headers(&[]), "/console", None),
            Verdict::Refuse { status: 403, .. }
        ));
    }

    #[test]
    fn beyond_loopback_the_token_is_required_then_kept_in_a_cookie() {
        let access = Access::for_listen("0.0.0.0:8081".parse().unwrap()).unwrap();
        let token = access.token().unwrap().to_owned();
        assert_eq!(token.len(), 64, "256 bits as hex");
        let any_host = headers(&[("host", "relay.internal:8081")]);
        assert!(matches!(
            access.admit(&any_host, "/console", None),
            Verdict::Refuse { status: 401, .. }
        ));
        assert!(matches!(
            access.admit(&any_host, "/console", Some("token=nope")),
            Verdict::Refuse { status: 403, .. }
        ));
        assert_eq!(
            access.admit(
                &any_host,
                "/console/events",
                Some(&format!("source=gh&token={token}"))
            ),
            Verdict::SetCookie {
                location: "/console/events?source=gh".into()
            }
        );
        let with_cookie = headers(&[
            ("host", "relay.internal:8081"),
            ("cookie", &format!("other=1; {TOKEN_COOKIE}={token}")),
        ]);
        assert_eq!(access.admit(&with_cookie, "/console", None), Verdict::Admit);
        let wrong_cookie = headers(&[("cookie", &format!("{TOKEN_COOKIE}=x{token}"))]);
        assert!(matches!(
            access.admit(&wrong_cookie, "/console", None),
            Verdict::Refuse { status: 403, .. }
        ));
        let other = Access::for_listen("0.0.0.0:8081".parse().unwrap()).unwrap();
        assert_ne!(other.token(), access.token(), "a new token per process");
    }

    #[test]
    fn an_action_needs_its_own_origin_and_the_csrf_token() {
        let access = Access::for_listen("127.0.0.1:8081".parse().unwrap()).unwrap();
        let csrf = access.csrf().to_owned();
        let own = headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081"),
        ]);
        assert_eq!(access.check_action(&own, Some(&csrf)), Ok(()));
        assert!(access.check_action(&own, None).is_err());
        assert!(access.check_action(&own, Some("0")).is_err());
        let foreign = headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://evil.example"),
        ]);
        assert!(access.check_action(&foreign, Some(&csrf)).is_err());
        let no_origin = headers(&[("host", "127.0.0.1:8081")]);
        assert!(access.check_action(&no_origin, Some(&csrf)).is_err());
    }
}
