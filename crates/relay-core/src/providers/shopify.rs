//! Shopify.
//!
//! - Signature: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>` keyed with the
//!   app's client secret (or the webhook signing secret shown in the admin for shop-created
//!   webhooks). No timestamp is signed: age cannot be checked; replays within the dedup window are
//!   dropped by the webhook id.
//! - Event type: `X-Shopify-Topic` with `/` turned into `.` (`orders/create` → `orders.create`),
//!   so subscriptions can use `orders.*`.
//! - Delivery id: `X-Shopify-Webhook-Id` (the same across Shopify's retries of one delivery),
//!   else `X-Shopify-Event-Id`; the receiver refuses (400) one over 512 bytes.
//! - Secret: at least 16 characters (Shopify issues 32 or more).

use super::shared::{base64_signatures, require_shared_secret, type_token};
use super::{InboundRequest, Outcome, Provider, Rejection, SourceView, Verified, WeakSourceSecret};
use crate::signing::{constant_time_eq, hmac_sha256};

pub(super) const PROVIDER: Provider = Provider::without_options(
    "shopify",
    "X-Shopify-Hmac-Sha256 (the app's client secret)",
    |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    |source, request, _now| verify(source, request).map(Outcome::Event),
);

const SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    require_shared_secret(
        secret,
        "the app's client secret (Partner or Dev Dashboard > the app > client credentials), or \
         the signing secret the Shopify admin shows under Settings > Notifications > Webhooks",
    )
}

pub(super) fn verify(
    source: &dyn SourceView,
    request: &InboundRequest,
) -> Result<Verified, Rejection> {
    let given = base64_signatures(
        request,
        SIGNATURE_HEADER,
        "no X-Shopify-Hmac-Sha256 header",
        "X-Shopify-Hmac-Sha256 is not base64",
    )?;
    let matched = source.secrets().iter().any(|secret| {
        let expected = hmac_sha256(secret.as_bytes(), &[&request.body]);
        given.iter().any(|g| constant_time_eq(&expected, g))
    });
    if !matched {
        return Err(Rejection::unauthorized("signature does not match"));
    }
    let topic = request
        .header("x-shopify-topic")
        .and_then(type_token)
        .ok_or_else(|| Rejection::malformed("no X-Shopify-Topic header"))?;
    Ok(Verified {
        event_type: topic.replace('/', "."),
        delivery_id: request
            .header("x-shopify-webhook-id")
            .or_else(|| request.header("x-shopify-event-id"))
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config, request, source, vectors};
    use super::*;
    use crate::domain::model::Source;

    fn vector(extra: &[(&str, &str)], body: Option<&str>) -> (Source, InboundRequest) {
        let v = &vectors()["shopify"];
        let sig = v["headers"]["X-Shopify-Hmac-Sha256"].as_str().unwrap();
        let mut headers = vec![
            ("X-Shopify-Hmac-Sha256", sig),
            ("X-Shopify-Topic", "orders/create"),
        ];
        headers.extend_from_slice(extra);
        (
            source(config("shopify"), v["secret"].as_str().unwrap()),
            request(&headers, body.unwrap_or(v["body"].as_str().unwrap())),
        )
    }

    #[test]
    fn official_vector_verifies() {
        let (src, req) = vector(
            &[
                ("X-Shopify-Webhook-Id", "b54557e4"),
                ("X-Shopify-Event-Id", "e-1"),
            ],
            None,
        );
        let verified = verify(&src, &req).unwrap();
        assert_eq!(verified.event_type, "orders.create");
        assert_eq!(verified.delivery_id.as_deref(), Some("b54557e4"));
        let (src, req) = vector(&[("x-shopify-event-id", "e-1")], None);
        assert_eq!(
            verify(&src, &req).unwrap().delivery_id.as_deref(),
            Some("e-1")
        );
    }

    #[test]
    fn tampered_wrong_secret_unsigned() {
        let (src, req) = vector(&[], Some(r#"{"foo": "baz"}"#));
        assert_eq!(
            verify(&src, &req).unwrap_err().message,
            "signature does not match"
        );
        let (mut src, req) = vector(&[], None);
        let right = src.secrets[0].clone();
        src.secrets = vec!["wrong".into()];
        assert_eq!(verify(&src, &req).unwrap_err().status, 401);
        src.secrets.push(right);
        assert!(verify(&src, &req).is_ok());
        let err = verify(&src, &request(&[("X-Shopify-Topic", "a/b")], "{}")).unwrap_err();
        assert_eq!(err.message, "no X-Shopify-Hmac-Sha256 header");
        let err = verify(&src, &request(&[("X-Shopify-Hmac-Sha256", "%%%")], "{}")).unwrap_err();
        assert_eq!(err.message, "X-Shopify-Hmac-Sha256 is not base64");
    }

    #[test]
    fn authentic_without_topic_is_400() {
        let v = &vectors()["shopify"];
        let req = request(
            &[(
                "X-Shopify-Hmac-Sha256",
                v["headers"]["X-Shopify-Hmac-Sha256"].as_str().unwrap(),
            )],
            v["body"].as_str().unwrap(),
        );
        let src = source(config("shopify"), v["secret"].as_str().unwrap());
        assert_eq!(verify(&src, &req).unwrap_err().status, 400);
    }
}
