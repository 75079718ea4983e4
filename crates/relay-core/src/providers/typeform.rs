//! Typeform: a preset of the generic HMAC provider (`--provider typeform`, the same as
//! `--provider hmac --preset typeform`); its sources are stored and verified as hmac sources.
//!
//! - Signature: `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`.
//! - Event type: the body's `/event_type` (`form_response`). Delivery id: `/event_id`.
//! - Secret: the one typed into the webhook's settings; at least 16 characters.

use super::hmac_generic::{self, Preset};
use super::{InvalidProviderOptions, Provider};
use crate::provider_config::{HmacOptions, SignatureEncoding};
use crate::signing::Algorithm;

pub(super) const PROVIDER: Provider = Provider {
    name: "typeform",
    help: "Typeform-Signature (the hmac provider with the typeform preset)",
    options: hmac_generic::OPTIONS,
    configure: |given| {
        hmac_generic::configure(given, Some(PRESET.name)).map_err(InvalidProviderOptions)
    },
    ..hmac_generic::PROVIDER
};

pub(super) const PRESET: Preset = Preset {
    name: "typeform",
    options,
    issued: "the secret typed into the Typeform webhook's settings (Connect > Webhooks > Edit > \
             Secret): a random string of at least 16 characters",
};

fn options() -> HmacOptions {
    HmacOptions {
        header: "Typeform-Signature".into(),
        algorithm: Algorithm::Sha256,
        encoding: SignatureEncoding::Base64,
        prefix: "sha256=".into(),
        type_pointer: Some("/event_type".into()),
        id_pointer: Some("/event_id".into()),
        preset: Some(PRESET.name.into()),
        ..HmacOptions::default()
    }
}
