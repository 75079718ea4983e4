//! Entry points for the cargo-fuzz targets in `fuzz/` (and for property tests): each takes
//! arbitrary bytes, runs one provider's pure parsing code on them and checks what must always
//! hold. A panic is a finding. Not part of the relay's API: built with the feature `fuzzing`
//! (which fuzz/Cargo.toml enables) and for relay-core's own tests.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::shared::form_pairs;
use super::{
    InboundRequest, Outcome, PROVIDERS, ProviderConfig, SourceView, hmac_generic, slack, standard,
    stripe, token, twilio,
};

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// `Stripe-Signature` values, one per line.
pub fn stripe_header(data: &[u8]) {
    let text = text(data);
    if let Ok(parsed) = stripe::parse_signature_header(text.lines()) {
        assert!(parsed.v1.iter().all(|s| s.len() == 32));
    }
}

/// `webhook-signature` / `svix-signature` values, one per line.
pub fn standard_signatures(data: &[u8]) {
    let text = text(data);
    let parsed = standard::parse_signatures(text.lines());
    assert!(parsed.len() <= text.len());
}

/// First line: `X-Slack-Signature`; second line: content type (empty for none); rest: body.
pub fn slack_request(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let signature = text(parts.next().unwrap_or_default());
    let content_type = text(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();
    assert!(
        slack::parse_signatures([signature.as_str()])
            .iter()
            .all(|s| s.len() == 32)
    );
    let ct = (!content_type.is_empty()).then_some(content_type.as_str());
    if let Ok(slack::SlackBody::Event { event_type, .. }) = slack::classify(ct, body) {
        assert!(!event_type.is_empty() && !event_type.contains(['*', ',', ' ']));
    }
}

/// First line: URL; second: query; third: signature settings header; rest: form body.
pub fn twilio_request(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let url = text(parts.next().unwrap_or_default());
    let query = text(parts.next().unwrap_or_default());
    let settings = text(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();
    let variants = twilio::url_variants(&url);
    assert!(!variants.is_empty() && variants.len() <= 2);
    if url.contains("://") {
        assert!(variants.contains(&url), "{url:?} not among {variants:?}");
    }
    let params = form_pairs(body);
    let base = twilio::signature_base(&url, &params);
    assert!(base.starts_with(&url));
    let _ = twilio::body_sha256_param(Some(&query));
    let _ = twilio::signature_algorithm(Some(&settings));
}

/// First line: query; second: header name; rest: header value.
pub fn token_request(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let query = text(parts.next().unwrap_or_default());
    let header = text(parts.next().unwrap_or_default());
    let value = text(parts.next().unwrap_or_default());
    if let Some(found) = token::query_param(Some(&query), "token") {
        assert!(!found.is_empty());
        assert!(token::token_matches(&found, &found));
    }
    let stripped = token::header_token(&header, &value);
    assert!(value.contains(stripped));
}

/// A signed-payload template.
pub fn hmac_template(data: &[u8]) {
    let text = text(data);
    if let Ok(parts) = hmac_generic::parse_template(&text) {
        let rebuilt: String = parts
            .iter()
            .map(|p| match p {
                hmac_generic::Part::Literal(l) => l.as_str(),
                hmac_generic::Part::Body => "{body}",
                hmac_generic::Part::Timestamp => "{timestamp}",
                hmac_generic::Part::Id => "{id}",
            })
            .collect();
        assert_eq!(rebuilt, text);
    }
}

/// The config each registered provider runs with in `verify_request`, by `--provider` name: its
/// sample source (`Provider::sample_options`). A provider whose sample configures nothing is
/// left out (the registry's completeness test says which).
pub fn fuzzed_providers() -> Vec<(&'static str, ProviderConfig)> {
    PROVIDERS
        .iter()
        .filter_map(|provider| {
            let config = provider.new_config(&provider.sample()).ok()?;
            Some((provider.name, config))
        })
        .collect()
}

/// A source no input can sign for.
struct FuzzSource {
    provider: ProviderConfig,
    secrets: Vec<String>,
}

impl SourceView for FuzzSource {
    fn provider(&self) -> &ProviderConfig {
        &self.provider
    }

    fn secrets(&self) -> &[String] {
        &self.secrets
    }

    fn tolerance_secs(&self) -> u64 {
        300
    }
}

/// A whole request (`Name: value` header lines, an empty line, the body) through every provider:
/// none of `fuzzed_providers` may panic, and nothing unsigned may pass.
pub fn verify_request(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    let mut query = None;
    for line in head.split(|b| *b == b'\n') {
        if let Some(q) = line.strip_prefix(b"?") {
            query = Some(text(q));
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) {
            headers.append(name, value);
        }
    }
    let request = InboundRequest {
        method: Method::POST,
        path: "/fuzz".into(),
        query,
        headers,
        body: Bytes::copy_from_slice(body),
    };
    for (_, provider) in fuzzed_providers() {
        let source = FuzzSource {
            provider,
            // A secret no input can know (the token provider compares it as given).
            secrets: vec!["whsec_ZnV6ei1zZWNyZXQtbm9ib2R5LWd1ZXNzZXM=".into()],
        };
        match super::verify(&source, &request, 1_700_000_000) {
            Ok(Outcome::Event(_) | Outcome::Answer(_)) => {
                panic!(
                    "{} accepted a request signed with an unknown secret",
                    source.provider.name()
                )
            }
            Err(rejection) => {
                assert!(matches!(rejection.status, 400 | 401), "{rejection:?}");
                assert!(!rejection.message.contains("ZnV6ei1zZWNyZXQ"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_take_odd_input() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\n\n\n",
            b"t=1,v1=zz,v1=,=,,t=",
            b"https://[::1:80\n?\nalgorithm=\n\xff\xfe",
            b"{\n\n{\"type\":\"url_verification\"}",
            b"{body}{timestamp}{id}{",
            b"x-sig: abc\nx-ts: 99999999999999999999\n?token=&token=%zz\n\n{\"type\":1}",
            b"webhook-id: a\nwebhook-timestamp: -1\nwebhook-signature: v1,\xc3\n\n",
        ];
        for input in inputs {
            stripe_header(input);
            standard_signatures(input);
            slack_request(input);
            twilio_request(input);
            token_request(input);
            hmac_template(input);
            verify_request(input);
        }
    }
}
