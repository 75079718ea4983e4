//! What several provider files share when they verify: the secret rule of shared secrets, the
//! signed-timestamp checks, signature headers in base64, form and JSON fields, event-type tokens,
//! and the typed options of the source at hand.

use http::Method;

use super::{InboundRequest, Rejection, SourceView};

/// Only `POST`: what every provider but `token` answers.
pub(crate) const POST_ONLY: &[Method] = &[Method::POST];

/// The options of `source`'s provider as `T`, the type the `expected` provider's file decodes.
/// Another type is a wiring mistake in the registry, never the sender's: 500.
pub(crate) fn options_of<'a, T: 'static>(
    source: &'a dyn SourceView,
    expected: &str,
) -> Result<&'a T, Rejection> {
    source.provider().options::<T>().ok_or_else(|| Rejection {
        status: 500,
        message: format!(
            "the source is a {} source, not {expected}",
            source.provider().name()
        ),
    })
}

/// The fewest bytes a shared secret typed by a person (GitHub, hmac, token) or issued by a
/// provider (Shopify, Slack, Twilio) may have: short keys can be guessed offline from one signed
/// request. Every real provider secret is longer (Slack and Twilio issue 32 hex characters,
/// Shopify 32 or more).
pub const MIN_SHARED_SECRET_BYTES: usize = 16;

/// The rule of the shared-secret providers: not blank and at least `MIN_SHARED_SECRET_BYTES`
/// (surrounding whitespace not counted); `issued` says what the provider gives out.
pub(crate) fn require_shared_secret(secret: &str, issued: &str) -> Result<(), String> {
    let length = secret.trim().len();
    if length == 0 {
        return Err(format!("the secret is empty; expected {issued}"));
    }
    if length < MIN_SHARED_SECRET_BYTES {
        return Err(format!(
            "the secret is too short: {length} of at least {MIN_SHARED_SECRET_BYTES} characters; expected {issued}"
        ));
    }
    Ok(())
}

/// Every value of the signature header `name` of `request` decoded from base64; refused with
/// `missing` when the header is absent and with `not_base64` when no value decodes.
pub(crate) fn base64_signatures(
    request: &InboundRequest,
    name: &str,
    missing: &str,
    not_base64: &str,
) -> Result<Vec<Vec<u8>>, Rejection> {
    if request.header(name).is_none() {
        return Err(Rejection::unauthorized(missing));
    }
    let given: Vec<Vec<u8>> = request
        .header_values(name)
        .filter_map(crate::signing::decode_base64)
        .collect();
    if given.is_empty() {
        return Err(Rejection::unauthorized(not_base64));
    }
    Ok(given)
}

/// Parses a signed Unix timestamp in seconds (`header` names it in the refusal).
pub(crate) fn parse_timestamp(text: &str, header: &str) -> Result<i64, Rejection> {
    let text = text.trim();
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::unauthorized(format!(
            "{header} is not a Unix time in seconds"
        )));
    }
    text.parse()
        .map_err(|_| Rejection::unauthorized(format!("{header} is not a Unix time in seconds")))
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

/// True when the media type of `content_type` is `essence` (parameters and case ignored).
pub(crate) fn media_type_is(content_type: Option<&str>, essence: &str) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(essence))
    })
}

/// The media type of form bodies.
pub(crate) const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

pub(crate) fn is_form(request: &InboundRequest) -> bool {
    media_type_is(request.content_type(), FORM_MEDIA_TYPE)
}

/// The pairs of an `application/x-www-form-urlencoded` text, decoded (`+` is a space).
pub(crate) fn form_pairs(text: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of form field `name`.
pub(crate) fn form_field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A value usable as (part of) an event type: 1-128 visible ASCII characters without spaces.
pub(crate) fn type_token(text: &str) -> Option<&str> {
    let text = text.trim();
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'*' && b != b',');
    ok.then_some(text)
}

/// The top-level string field `field` of a JSON object body, without building a whole tree.
pub(crate) fn json_string_field(body: &[u8], field: &str) -> Result<Option<String>, String> {
    object_string_field(body, field).map_err(|e| format!("body is not a JSON object: {e}"))
}

/// The top-level string field `field` of the JSON object `json`; an error when `json` is no
/// JSON object.
pub(crate) fn object_string_field(
    json: &[u8],
    field: &str,
) -> Result<Option<String>, serde_json::Error> {
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
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = de.deserialize_map(FieldVisitor(field))?;
    de.end()?;
    Ok(value)
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
        assert_eq!(
            future.message,
            "timestamp 400 s in the future, tolerance 300 s"
        );
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
}
