//! Typeform: a preset of the generic HMAC provider (`--provider typeform`, the same as
//! `--provider hmac --preset typeform`); its sources are stored and verified as hmac sources.
//!
//! - Signature: `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`.
//! - Event type: the body's `/event_type` (`form_response`). Delivery id: `/event_id`.
//! - Secret: the one typed into the webhook's settings; at least 16 characters.

use super::hmac_generic::{self, HmacOptions, SignatureEncoding};
use super::shared::require_shared_secret;
use super::{Provider, WeakSourceSecret};
use crate::signing::Algorithm;

const NAME: &str = "typeform";

pub(super) const PROVIDER: Provider = Provider {
    name: NAME,
    help: "Typeform-Signature (the hmac provider with the typeform preset)",
    sample_options: &[],
    preset_of: Some(hmac_generic::PROVIDER.name),
    configure: |_, given| hmac_generic::configure_preset(given, NAME, options()),
    validate_secret: |_, secret| validate_secret(secret).map_err(WeakSourceSecret),
    // Options, decoding, methods and verification are hmac's.
    ..hmac_generic::PROVIDER
};

fn validate_secret(secret: &str) -> Result<(), String> {
    require_shared_secret(
        secret,
        "the secret typed into the Typeform webhook's settings (Connect > Webhooks > Edit > \
         Secret): a random string of at least 16 characters",
    )
}

fn options() -> HmacOptions {
    HmacOptions {
        header: "Typeform-Signature".into(),
        algorithm: Algorithm::Sha256,
        encoding: SignatureEncoding::Base64,
        prefix: "sha256=".into(),
        type_pointer: Some("/event_type".into()),
        id_pointer: Some("/event_id".into()),
        preset: Some(NAME.into()),
        ..HmacOptions::default()
    }
}
