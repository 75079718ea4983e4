//! Any sender that signs the raw body with an HMAC in one header: configurable header,
//! algorithm, encoding and prefix (e.g. Typeform: `Typeform-Signature: sha256=<base64>`).

use super::{InboundRequest, Rejection, Verified};
use crate::model::{HmacOptions, SignatureEncoding, Source};
use crate::signing::{constant_time_eq, decode_base64, decode_hex, hmac};

pub(super) fn verify(
    source: &Source,
    options: &HmacOptions,
    request: &InboundRequest,
) -> Result<Verified, Rejection> {
    let header = request
        .header(&options.header)
        .ok_or_else(|| Rejection::unauthorized(format!("no {} header", options.header)))?;
    let encoded = header.strip_prefix(options.prefix.as_str()).ok_or_else(|| {
        Rejection::unauthorized(format!(
            "{} does not start with {:?}",
            options.header, options.prefix
        ))
    })?;
    let given = match options.encoding {
        SignatureEncoding::Hex => decode_hex(encoded),
        SignatureEncoding::Base64 => decode_base64(encoded),
    }
    .ok_or_else(|| Rejection::unauthorized(format!("{} is not valid {:?}", options.header, options.encoding)))?;
    let matched = source.secrets.iter().any(|secret| {
        constant_time_eq(
            &hmac(options.algorithm, secret.as_bytes(), &[&request.body]),
            &given,
        )
    });
    if !matched {
        return Err(Rejection::unauthorized("signature does not match"));
    }
    let event_type = options
        .type_header
        .as_deref()
        .and_then(|name| request.header(name))
        .unwrap_or("webhook")
        .to_owned();
    Ok(Verified {
        event_type,
        delivery_id: options
            .id_header
            .as_deref()
            .and_then(|name| request.header(name))
            .map(str::to_owned),
    })
}
