//! Twilio.
//!
//! - Signature: `X-Twilio-Signature: <base64 HMAC-SHA1>` keyed with the account Auth Token over
//!   the full URL Twilio called followed, for form posts, by every parameter name and value
//!   (names sorted, each name's distinct values sorted, as `twilio.request_validator` does).
//!   When Twilio signs with a SharedKey, `X-Twilio-Webhooks-Signature-Settings:
//!   key=...,algorithm=HMAC_SHA256` selects HMAC-SHA256 instead; the SharedKey secret is then
//!   the source's secret.
//! - The URL: the source's `public_url` (the URL configured in Twilio, without the query) when
//!   set, else rebuilt from `X-Forwarded-Proto` (function URLs and proxies set it; `http` when
//!   absent), `Host` and the request path; the request's query string is appended as received.
//!   Like Twilio's libraries, the URL is tried without an explicit port and with the scheme's
//!   default port (`:443` / `:80`), since Twilio's signers are not consistent about it.
//! - Bodies that are not a form (JSON): Twilio adds `bodySHA256=<hex SHA-256 of the body>` to the
//!   query; it must equal the body's hash and the signature covers the URL with that query and no
//!   parameters. A non-form, non-empty body without `bodySHA256` is refused: nothing would sign it.
//! - No timestamp is signed: Twilio requests cannot be checked for age (a replay within the
//!   dedup window is dropped by the idempotency token).
//! - Event type: form `MessageStatus`/`SmsStatus` → `message.<status>` (`message.delivered`,
//!   `message.received`), `CallStatus` → `call.<status>` (`call.completed`), a JSON body's `type`
//!   (Event Streams), else `twilio`. Delivery id: `I-Twilio-Idempotency-Token` (the receiver
//!   refuses, 400, one over 512 bytes).
//! - Secret: the account's Auth Token (32 hex characters) or the SharedKey; at least 16 characters.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

use super::config::decode;
use super::shared::{
    POST_ONLY, base64_signatures, form_field, form_pairs, is_form, json_string_field, options_of,
    require_shared_secret, type_token,
};
use super::{
    GivenOptions, InboundRequest, InvalidProviderOptions, Outcome, Provider, ProviderConfig,
    ProviderOption, Rejection, SourceView, Verified, WeakSourceSecret,
};
use crate::signing::{Algorithm, constant_time_eq, hmac};

const SIGNATURE_HEADER: &str = "x-twilio-signature";
const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";
const ID_HEADER: &str = "i-twilio-idempotency-token";

pub(super) const PROVIDER: Provider = Provider {
    name: "twilio",
    help: "X-Twilio-Signature (the account's Auth Token); see --public-url",
    options: &[ProviderOption {
        name: "public-url",
        help: "the URL Twilio calls, without the query (e.g. https://x.lambda-url.us-east-1.on.aws/twilio). Default: rebuilt from Host, X-Forwarded-Proto and the path of each request",
    }],
    sample_options: &[],
    preset_of: None,
    configure: |_, given| configure(given),
    decode: decode::<TwilioOptions>,
    validate_secret: |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    methods: POST_ONLY,
    verify: |source, request, _now| {
        verify(source, options_of(source, "twilio")?, request).map(Outcome::Event)
    },
};

/// Options of the Twilio provider.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TwilioOptions {
    /// The URL Twilio was told to call, without the query (the request's own query is appended),
    /// e.g. `https://hooks.example.com/prod/twilio`. Absent: rebuilt from `X-Forwarded-Proto`,
    /// `Host` and the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl From<TwilioOptions> for ProviderConfig {
    fn from(options: TwilioOptions) -> Self {
        ProviderConfig::new(&PROVIDER, options)
    }
}

fn configure(given: &GivenOptions) -> Result<ProviderConfig, InvalidProviderOptions> {
    let public_url = given
        .get("public-url")
        .map(check_public_url)
        .transpose()
        .map_err(|e| InvalidProviderOptions(e.to_string()))?;
    Ok(TwilioOptions { public_url }.into())
}

/// A `--public-url` that is not an http(s) URL with a host and without a query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPublicUrl {
    #[error("invalid --public-url {url}: {reason}")]
    Unparsable {
        url: String,
        reason: url::ParseError,
    },
    #[error("--public-url must be an http or https URL with a host")]
    NotHttpWithHost,
    #[error(
        "--public-url is the URL without its query: the query of each request is appended as received"
    )]
    HasQuery,
}

/// Checks a `--public-url`: http(s), a host, no query or fragment; returns it trimmed.
pub fn check_public_url(url: &str) -> Result<String, InvalidPublicUrl> {
    let url = url.trim();
    let parsed = url::Url::parse(url).map_err(|reason| InvalidPublicUrl::Unparsable {
        url: url.to_owned(),
        reason,
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(InvalidPublicUrl::NotHttpWithHost);
    }
    if url.contains('?') || url.contains('#') {
        return Err(InvalidPublicUrl::HasQuery);
    }
    Ok(url.to_owned())
}

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    require_shared_secret(
        secret,
        "the account's Auth Token, 32 hex characters (Twilio Console > Account Info), or the \
         SharedKey when Twilio signs with HMAC_SHA256",
    )
}

/// The algorithm named by `X-Twilio-Webhooks-Signature-Settings` (absent: HMAC-SHA1).
pub fn signature_algorithm(settings: Option<&str>) -> Result<Algorithm, Rejection> {
    let named = settings
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| part.split_once('='))
        .find(|(name, value)| name.trim() == "algorithm" && !value.trim().is_empty())
        .map(|(_, value)| value.trim().to_ascii_uppercase());
    match named.as_deref() {
        None | Some("HMAC_SHA1") => Ok(Algorithm::Sha1),
        Some("HMAC_SHA256") => Ok(Algorithm::Sha256),
        Some(_) => Err(Rejection::unauthorized(
            "X-Twilio-Webhooks-Signature-Settings names an unsupported algorithm",
        )),
    }
}

/// The URL Twilio called, as Twilio's signer saw it (before the port variants).
pub fn called_url(options: &TwilioOptions, request: &InboundRequest) -> Result<String, Rejection> {
    let base = match options.public_url.as_deref() {
        Some(public) => public.trim_end_matches('?').to_owned(),
        None => {
            let host = request.header("host").ok_or_else(|| {
                Rejection::unauthorized(
                    "cannot rebuild the URL Twilio called: no Host header (set the source's --public-url)",
                )
            })?;
            let scheme = request
                .header("x-forwarded-proto")
                .and_then(|p| p.split(',').next())
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| p == "https" || p == "http")
                .unwrap_or_else(|| "http".into());
            format!("{scheme}://{host}{}", request.path)
        }
    };
    Ok(match request.query.as_deref() {
        Some(query) if !query.is_empty() => format!("{base}?{query}"),
        _ => base,
    })
}

/// Splits `scheme://authority` off the rest, keeping every byte as given.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((scheme, &rest[..end], &rest[end..]))
}

/// The port at the end of an authority, if any (`host:8443`, `[::1]:80`).
fn port_of(authority: &str) -> Option<(&str, &str)> {
    let (host, port) = authority.rsplit_once(':')?;
    let is_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let ipv6_inside = host.contains('[') && !host.ends_with(']');
    (is_port && !ipv6_inside).then_some((host, port))
}

/// The URL variants Twilio's libraries try: without any explicit port, and with the scheme's
/// default port when none is given. One of them is always the URL itself.
pub fn url_variants(url: &str) -> Vec<String> {
    let Some((scheme, authority, rest)) = split_authority(url) else {
        return vec![url.to_owned()];
    };
    let mut variants = Vec::with_capacity(2);
    match port_of(authority) {
        Some((host, _)) => {
            variants.push(format!("{scheme}://{host}{rest}"));
            variants.push(url.to_owned());
        }
        None => {
            variants.push(url.to_owned());
            let port = if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            variants.push(format!("{scheme}://{authority}:{port}{rest}"));
        }
    }
    variants
}

/// The text Twilio signs: the URL, then each parameter name and value (names sorted, distinct
/// values of a name sorted).
pub fn signature_base(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().insert(value);
    }
    let mut base = url.to_owned();
    for (name, values) in sorted {
        for value in values {
            base.push_str(name);
            base.push_str(value);
        }
    }
    base
}

/// The first `bodySHA256` of a query string, decoded.
pub fn body_sha256_param(query: Option<&str>) -> Option<String> {
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

pub(super) fn verify(
    source: &dyn SourceView,
    options: &TwilioOptions,
    request: &InboundRequest,
) -> Result<Verified, Rejection> {
    let given = base64_signatures(
        request,
        SIGNATURE_HEADER,
        "no X-Twilio-Signature header",
        "X-Twilio-Signature is not base64",
    )?;
    let algorithm = signature_algorithm(request.header(SETTINGS_HEADER))?;
    let url = called_url(options, request)?;

    let form = is_form(request);
    let params = if let Some(expected_hash) = body_sha256_param(request.query.as_deref()) {
        let actual = hex::encode(Sha256::digest(&request.body));
        if !constant_time_eq(actual.as_bytes(), expected_hash.as_bytes()) {
            return Err(Rejection::unauthorized(
                "body does not match the bodySHA256 query parameter",
            ));
        }
        Vec::new()
    } else if form {
        form_pairs(&request.body)
    } else if request.body.is_empty() {
        Vec::new()
    } else {
        return Err(Rejection::unauthorized(
            "body is not covered by the signature: Twilio signs bodies that are not a form through a bodySHA256 query parameter, and there is none",
        ));
    };

    let matched = url_variants(&url).iter().any(|candidate| {
        let base = signature_base(candidate, &params);
        source.secrets().iter().any(|secret| {
            let expected = hmac(algorithm, secret.as_bytes(), &[base.as_bytes()]);
            given.iter().any(|g| constant_time_eq(&expected, g))
        })
    });
    if !matched {
        return Err(Rejection::unauthorized(
            "signature does not match (Twilio signs the exact URL it called: check the source's public URL)",
        ));
    }

    let status_type = |prefix: &str, field: &str| {
        form_field(&params, field)
            .and_then(type_token)
            .map(|status| format!("{prefix}.{}", status.to_ascii_lowercase()))
    };
    let event_type = if form {
        status_type("message", "MessageStatus")
            .or_else(|| status_type("message", "SmsStatus"))
            .or_else(|| status_type("call", "CallStatus"))
    } else {
        json_string_field(&request.body, "type")
            .ok()
            .flatten()
            .and_then(|t| type_token(&t).map(str::to_owned))
    }
    .unwrap_or_else(|| "twilio".into());
    Ok(Verified {
        event_type,
        delivery_id: request.header(ID_HEADER).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{request, source, vectors};
    use super::*;
    use crate::domain::model::Source;

    fn vector_form() -> String {
        let v = &vectors()["twilio"];
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, val) in v["params"].as_object().unwrap() {
            form.append_pair(k, val.as_str().unwrap());
        }
        form.finish()
    }

    fn vector_source(public_url: Option<&str>) -> Source {
        let v = &vectors()["twilio"];
        source(
            TwilioOptions {
                public_url: public_url.map(str::to_owned),
            }
            .into(),
            v["auth_token"].as_str().unwrap(),
        )
    }

    fn vector_request(extra: &[(&str, &str)], path: &str, query: &str) -> InboundRequest {
        let sig = vectors()["twilio"]["headers"]["X-Twilio-Signature"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut headers = vec![
            ("X-Twilio-Signature", sig.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        headers.extend_from_slice(extra);
        let mut req = request(&headers, &vector_form());
        req.path = path.into();
        req.query = Some(query.into());
        req
    }

    fn verify_with(src: &Source, req: &InboundRequest) -> Result<Verified, Rejection> {
        let options = src.provider.options::<TwilioOptions>().unwrap();
        verify(src, options, req)
    }

    #[test]
    fn official_vector_with_public_url() {
        let src = vector_source(Some("https://mycompany.com/myapp.php"));
        let req = vector_request(&[], "/twilio", "foo=1&bar=2");
        let verified = verify_with(&src, &req).unwrap();
        // The vector's parameters carry no status: a plain `twilio` event.
        assert_eq!(verified.event_type, "twilio");
        assert_eq!(verified.delivery_id, None);
    }

    #[test]
    fn official_vector_with_url_rebuilt_from_headers() {
        let src = vector_source(None);
        let req = vector_request(
            &[
                ("Host", "mycompany.com"),
                ("X-Forwarded-Proto", "https"),
                ("I-Twilio-Idempotency-Token", "idem-1"),
            ],
            "/myapp.php",
            "foo=1&bar=2",
        );
        let verified = verify_with(&src, &req).unwrap();
        assert_eq!(verified.delivery_id.as_deref(), Some("idem-1"));
        // Plain http (no X-Forwarded-Proto) is another URL: refused.
        let req = vector_request(&[("Host", "mycompany.com")], "/myapp.php", "foo=1&bar=2");
        let err = verify_with(&src, &req).unwrap_err();
        assert!(err.message.starts_with("signature does not match"));
    }

    #[test]
    fn port_variants_like_the_libraries() {
        // Twilio called https://mycompany.com:443/... or the relay sits behind a proxy that
        // keeps the port in Host: both spellings verify the vector.
        let src = vector_source(None);
        let req = vector_request(
            &[
                ("Host", "mycompany.com:443"),
                ("X-Forwarded-Proto", "https"),
            ],
            "/myapp.php",
            "foo=1&bar=2",
        );
        assert!(verify_with(&src, &req).is_ok());
        let src = vector_source(Some("https://mycompany.com:443/myapp.php"));
        assert!(verify_with(&src, &vector_request(&[], "/x", "foo=1&bar=2")).is_ok());
        assert_eq!(
            url_variants("https://a.example/x?y=1"),
            vec!["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("http://a.example:8080"),
            vec!["http://a.example", "http://a.example:8080"]
        );
        assert_eq!(
            url_variants("http://[::1]/p"),
            vec!["http://[::1]/p", "http://[::1]:80/p"]
        );
    }

    #[test]
    fn tampered_wrong_token_unsigned() {
        let src = vector_source(Some("https://mycompany.com/myapp.php"));
        let mut req = vector_request(&[], "/twilio", "foo=1&bar=2");
        req.body = bytes::Bytes::from(vector_form().replace("1234", "9999"));
        assert!(
            verify_with(&src, &req)
                .unwrap_err()
                .message
                .starts_with("signature does not match")
        );
        let req = vector_request(&[], "/twilio", "foo=1&bar=3");
        assert_eq!(verify_with(&src, &req).unwrap_err().status, 401);
        let mut wrong = src.clone();
        wrong.secrets = vec!["54321".into()];
        let req = vector_request(&[], "/twilio", "foo=1&bar=2");
        assert_eq!(verify_with(&wrong, &req).unwrap_err().status, 401);
        let mut unsigned = req.clone();
        unsigned.headers.remove(SIGNATURE_HEADER);
        assert_eq!(
            verify_with(&src, &unsigned).unwrap_err().message,
            "no X-Twilio-Signature header"
        );
    }

    /// JSON body signed through bodySHA256: values computed with the official twilio Python
    /// library (twilio 9.13, `RequestValidator("12345").compute_hash/compute_signature`).
    #[test]
    fn json_body_through_body_sha256() {
        let body = r#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let src = vector_source(Some("https://mycompany.com/myapp.php"));
        let mut req = request(
            &[
                ("X-Twilio-Signature", "a9nBmqA0ju/hNViExpshrM61xv4="),
                ("Content-Type", "application/json"),
            ],
            body,
        );
        req.query = Some(format!("foo=1&bar=2&bodySHA256={hash}"));
        assert_eq!(verify_with(&src, &req).unwrap().event_type, "twilio");
        let mut tampered = req.clone();
        tampered.body = bytes::Bytes::from_static(br#"{"property": "other", "boolean": true}"#);
        assert_eq!(
            verify_with(&src, &tampered).unwrap_err().message,
            "body does not match the bodySHA256 query parameter"
        );
        let mut no_hash = req.clone();
        no_hash.query = Some("foo=1&bar=2".into());
        assert!(
            verify_with(&src, &no_hash)
                .unwrap_err()
                .message
                .contains("not covered")
        );
    }

    #[test]
    fn sha256_shared_key_and_event_types() {
        let secret = "shared-key-secret";
        let src = source(
            TwilioOptions {
                public_url: Some("https://h.example/t".into()),
            }
            .into(),
            secret,
        );
        let form = "MessageSid=SM1&MessageStatus=Delivered&To=%2B1555";
        let params = form_pairs(form.as_bytes());
        let base = signature_base("https://h.example/t", &params);
        let mac = hmac(Algorithm::Sha256, secret.as_bytes(), &[base.as_bytes()]);
        let sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac);
        let req = request(
            &[
                ("X-Twilio-Signature", &sig),
                (
                    "X-Twilio-Webhooks-Signature-Settings",
                    "key=webhooks_sharedkey_1, algorithm=HMAC_SHA256",
                ),
                (
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
            ],
            form,
        );
        assert_eq!(
            verify_with(&src, &req).unwrap().event_type,
            "message.delivered"
        );
        // The same signature announced as SHA-1 does not verify.
        let mut sha1 = req.clone();
        sha1.headers.insert(
            SETTINGS_HEADER,
            http::HeaderValue::from_static("algorithm=HMAC_SHA1"),
        );
        assert_eq!(verify_with(&src, &sha1).unwrap_err().status, 401);
        let mut unknown = req.clone();
        unknown.headers.insert(
            SETTINGS_HEADER,
            http::HeaderValue::from_static("algorithm=MD5"),
        );
        assert!(
            verify_with(&src, &unknown)
                .unwrap_err()
                .message
                .contains("unsupported algorithm")
        );

        for (form, expected) in [
            ("CallSid=CA1&CallStatus=completed", "call.completed"),
            (
                "MessageSid=SM1&SmsStatus=received&Body=hi",
                "message.received",
            ),
            ("AccountSid=AC1", "twilio"),
        ] {
            let base = signature_base("https://h.example/t", &form_pairs(form.as_bytes()));
            let mac = hmac(Algorithm::Sha1, secret.as_bytes(), &[base.as_bytes()]);
            let sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac);
            let req = request(
                &[
                    ("X-Twilio-Signature", &sig),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                form,
            );
            assert_eq!(verify_with(&src, &req).unwrap().event_type, expected);
        }
    }

    #[test]
    fn repeated_parameters_sort_distinct_values() {
        let params = form_pairs(b"b=2&a=z&a=y&a=z");
        assert_eq!(signature_base("u", &params), "uayazb2");
    }
}
