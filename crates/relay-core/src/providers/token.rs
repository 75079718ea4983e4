//! Shared token (Mailchimp and other senders that sign nothing).
//!
//! - Authentication: a shared secret, either in a query parameter of the URL the sender calls
//!   (`?token=...`, the parameter name configurable) or in a configured header (for
//!   `Authorization`, a `Bearer ` prefix is understood). Compared in constant time, over SHA-256
//!   digests so that not even the token's length shows in the timing. Any of the source's
//!   secrets passes.
//! - This is weaker than a signature: the body is not covered (whoever holds the URL can send
//!   any body), nothing dates the request (no replay window), and a token in the URL lands in the
//!   sender's and any proxy's logs. Prefer a signing provider when the sender offers one.
//! - `GET /{source}` with the right token answers 200 without queuing (Mailchimp checks the URL
//!   that way when the webhook is saved); without it or with a wrong one, 401.
//! - Event type: the form field `type` (Mailchimp posts `type=subscribe&data[email]=...`) or a
//!   JSON body's top-level `type`, else `webhook`. No delivery id: nothing is deduplicated.
//! - Secret (the token): at least 16 characters; being in the URL, it should be random.

use http::Method;
use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

use super::config::decode;
use super::shared::{
    form_field, form_pairs, is_form, json_string_field, media_type_is, options_of,
    require_shared_secret, type_token,
};
use super::{
    Answer, GivenOptions, InboundRequest, InvalidProviderOptions, Outcome, Provider,
    ProviderConfig, ProviderOption, Rejection, SourceView, Verified, WeakSourceSecret,
};
use crate::signing::constant_time_eq;

pub(super) const PROVIDER: Provider = Provider {
    name: "token",
    help: "A shared token in the URL (?token=...) or a header; weaker than a signature",
    options: &[
        ProviderOption {
            name: "token-param",
            help: "the query parameter carrying the token (default token)",
        },
        ProviderOption {
            name: "token-header",
            help: "take the token from this header instead (Authorization: Bearer is understood); not with --token-param",
        },
    ],
    sample_options: &[],
    preset_of: None,
    configure: |_, given| configure(given).map_err(InvalidProviderOptions),
    decode: decode::<TokenOptions>,
    validate_secret: |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    // Mailchimp checks the URL with a GET when the webhook is saved.
    methods: &[Method::POST, Method::GET],
    verify: |source, request, _now| verify(source, options_of(source, "token")?, request),
};

/// Options of the shared-token provider. The token itself is one of the source's secrets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenOptions {
    /// Query parameter carrying the token; `token` when neither this nor a header is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_param: Option<String>,
    /// Header carrying the token instead (`Authorization: Bearer <token>` is understood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_header: Option<String>,
}

impl TokenOptions {
    pub const DEFAULT_PARAM: &'static str = "token";
}

impl From<TokenOptions> for ProviderConfig {
    fn from(options: TokenOptions) -> Self {
        ProviderConfig::new(&PROVIDER, options)
    }
}

fn configure(given: &GivenOptions) -> Result<ProviderConfig, String> {
    let token_param = given.get("token-param").map(str::to_owned);
    let token_header = given.get("token-header").map(str::to_owned);
    if token_param.is_some() && token_header.is_some() {
        return Err("--token-param and --token-header exclude each other".into());
    }
    for name in token_header.iter().chain(token_param.iter()) {
        if name.trim().is_empty() {
            return Err("--token-param and --token-header must not be empty".into());
        }
    }
    if let Some(header) = &token_header {
        http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("invalid header name {header:?}"))?;
    }
    Ok(TokenOptions {
        token_param,
        token_header,
    }
    .into())
}

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    require_shared_secret(
        secret,
        "the token the sender puts in the URL or header: a random string of at least 16 \
         characters, e.g. from `openssl rand -hex 32`",
    )
}

/// Where the token is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlace<'a> {
    Query(&'a str),
    Header(&'a str),
}

pub fn place(options: &TokenOptions) -> TokenPlace<'_> {
    match (&options.token_header, &options.token_param) {
        (Some(header), _) => TokenPlace::Header(header),
        (None, Some(param)) => TokenPlace::Query(param),
        (None, None) => TokenPlace::Query(TokenOptions::DEFAULT_PARAM),
    }
}

/// The first non-empty value of query parameter `name` (percent-decoded).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// A header's token: the value, without a `Bearer ` scheme when the header is `Authorization`.
pub fn header_token<'a>(header: &str, value: &'a str) -> &'a str {
    let value = value.trim();
    let bearer = value
        .split_once(' ')
        .filter(|(scheme, _)| {
            header.eq_ignore_ascii_case("authorization") && scheme.eq_ignore_ascii_case("bearer")
        })
        .map(|(_, rest)| rest.trim());
    bearer.unwrap_or(value)
}

/// Constant-time comparison that hides the length as well.
pub fn token_matches(given: &str, secret: &str) -> bool {
    constant_time_eq(
        &Sha256::digest(given.as_bytes()),
        &Sha256::digest(secret.as_bytes()),
    )
}

pub(super) fn verify(
    source: &dyn SourceView,
    options: &TokenOptions,
    request: &InboundRequest,
) -> Result<Outcome, Rejection> {
    let given = match place(options) {
        TokenPlace::Query(param) => query_param(request.query.as_deref(), param)
            .ok_or_else(|| Rejection::unauthorized(format!("no {param} query parameter")))?,
        TokenPlace::Header(header) => request
            .header(header)
            .map(|v| header_token(header, v).to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Rejection::unauthorized(format!("no {header} header")))?,
    };
    // Every secret is compared, so timing does not tell which one matched.
    let matched = source
        .secrets()
        .iter()
        .fold(false, |acc, secret| token_matches(&given, secret) | acc);
    if !matched {
        return Err(Rejection::unauthorized("token does not match"));
    }
    if request.method == Method::GET {
        return Ok(Outcome::Answer(Answer {
            status: 200,
            body: serde_json::json!({ "status": "ok" }),
        }));
    }
    let event_type = if is_form(request) {
        form_field(&form_pairs(&request.body), "type")
            .and_then(|t| type_token(t).map(str::to_owned))
    } else if media_type_is(request.content_type(), "application/json") {
        json_string_field(&request.body, "type")
            .ok()
            .flatten()
            .and_then(|t| type_token(&t).map(str::to_owned))
    } else {
        None
    };
    Ok(Outcome::Event(Verified {
        event_type: event_type.unwrap_or_else(|| "webhook".into()),
        delivery_id: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{request, source};
    use super::*;
    use crate::domain::model::Source;

    fn src(options: TokenOptions) -> Source {
        source(options.into(), "t0ken-value")
    }

    fn with_query(mut req: InboundRequest, query: &str) -> InboundRequest {
        req.query = Some(query.into());
        req
    }

    fn run(src: &Source, req: &InboundRequest) -> Result<Outcome, Rejection> {
        let options = src.provider.options::<TokenOptions>().unwrap();
        verify(src, options, req)
    }

    #[test]
    fn mailchimp_form_post_and_get_check() {
        let src = src(TokenOptions::default());
        let body =
            "type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bemail%5D=api%40mailchimp.com";
        let req = with_query(
            request(
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            ),
            "token=t0ken-value",
        );
        let Outcome::Event(verified) = run(&src, &req).unwrap() else {
            panic!("expected an event")
        };
        assert_eq!(verified.event_type, "subscribe");
        assert_eq!(verified.delivery_id, None);

        let mut get = with_query(request(&[], ""), "token=t0ken-value");
        get.method = Method::GET;
        assert!(matches!(
            run(&src, &get).unwrap(),
            Outcome::Answer(Answer { status: 200, .. })
        ));
        get.query = Some("token=wrong".into());
        assert_eq!(run(&src, &get).unwrap_err().message, "token does not match");
        get.query = None;
        assert_eq!(
            run(&src, &get).unwrap_err().message,
            "no token query parameter"
        );
    }

    #[test]
    fn header_token_with_bearer_and_custom_param() {
        let src_h = src(TokenOptions {
            token_header: Some("Authorization".into()),
            token_param: None,
        });
        let req = request(
            &[
                ("authorization", "Bearer t0ken-value"),
                ("content-type", "application/json"),
            ],
            r#"{"type":"x.y"}"#,
        );
        let Outcome::Event(v) = run(&src_h, &req).unwrap() else {
            panic!()
        };
        assert_eq!(v.event_type, "x.y");
        let req = request(&[("authorization", "Bearer nope")], "{}");
        assert_eq!(run(&src_h, &req).unwrap_err().status, 401);
        // The token in the query does not count when a header is configured.
        let req = with_query(request(&[], "{}"), "token=t0ken-value");
        assert_eq!(
            run(&src_h, &req).unwrap_err().message,
            "no Authorization header"
        );

        let src_p = src(TokenOptions {
            token_param: Some("key".into()),
            token_header: None,
        });
        let req = with_query(request(&[], "plain"), "a=1&key=t0ken-value");
        let Outcome::Event(v) = run(&src_p, &req).unwrap() else {
            panic!()
        };
        assert_eq!(v.event_type, "webhook");
        let req = with_query(request(&[], "plain"), "token=t0ken-value");
        assert_eq!(
            run(&src_p, &req).unwrap_err().message,
            "no key query parameter"
        );
    }

    #[test]
    fn rotation_and_prefix_tokens_fail() {
        let mut src = src(TokenOptions::default());
        src.secrets = vec!["old".into(), "new".into()];
        let req = with_query(request(&[], ""), "token=old");
        assert!(run(&src, &req).is_ok());
        for wrong in ["ol", "oldx", "OLD", "%6Fld%20"] {
            let req = with_query(request(&[], ""), &format!("token={wrong}"));
            assert_eq!(run(&src, &req).unwrap_err().status, 401, "{wrong}");
        }
        // Percent-encoding is decoded.
        let req = with_query(request(&[], ""), "token=%6Fld");
        assert!(run(&src, &req).is_ok());
    }
}
