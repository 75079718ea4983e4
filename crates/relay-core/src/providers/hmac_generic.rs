//! Any sender that signs with an HMAC in one header, configured per source (presets fill the
//! options for well-known senders, e.g. `typeform`).
//!
//! - Signature: header `header`, value `prefix` + the `encoding` (hex or base64) of the HMAC
//!   (`algorithm`: sha1, sha256, sha512) keyed with the secret as text. The prefix is matched
//!   without regard to case; every value of a repeated header is tried.
//! - What is signed: the raw body, or `signed_payload` with `{body}`, `{timestamp}` and `{id}`
//!   placeholders (default `{timestamp}.{body}` when a timestamp header is configured).
//! - Timestamp: when `timestamp_header` is set, its Unix seconds must be within the source's
//!   tolerance in both directions.
//! - Event type: `type_header`, else the JSON pointer `type_pointer` into the body, else
//!   `webhook` (a type that is not 1-128 visible ASCII characters also becomes `webhook`).
//!   Delivery id: `id_header`, else the JSON pointer `id_pointer`, else none; the receiver
//!   refuses (400) one over 512 bytes.
//! - `sources add` refuses a timestamp header that the signed payload does not contain: a
//!   tolerance on a timestamp nobody signed stops no replay.
//! - Secret: at least 16 characters (a preset may say where the sender shows it).
//! - Presets (each in its own file, `typeform.rs`, registered as a provider whose `preset_of` is
//!   `hmac`) fill these options for a well-known sender; `--preset NAME` or the preset's own
//!   `--provider NAME` starts from them.

use serde::{Deserialize, Serialize};

use super::config::decode;
use super::shared::{
    POST_ONLY, check_timestamp, options_of, parse_timestamp, require_shared_secret, type_token,
};
use super::{
    GivenOptions, InboundRequest, InvalidProviderOptions, Outcome, PROVIDERS, Provider,
    ProviderConfig, ProviderOption, Rejection, SourceView, Verified, WeakSourceSecret,
};
use crate::signing::{Algorithm, constant_time_eq, decode_base64, decode_hex, hmac};

pub(super) const PROVIDER: Provider = Provider {
    name: "hmac",
    help: "Any HMAC in one header: --header, --algorithm, --encoding, --prefix, ...",
    options: OPTIONS,
    sample_options: &[
        ("header", "x-sig"),
        ("timestamp-header", "x-ts"),
        ("type-pointer", "/type"),
        ("id-pointer", "/id"),
    ],
    preset_of: None,
    configure: |_, given| configure(given).map_err(InvalidProviderOptions),
    decode: decode::<HmacOptions>,
    validate_secret,
    methods: POST_ONLY,
    verify: |source, request, now| {
        verify(source, options_of(source, "hmac")?, request, now).map(Outcome::Event)
    },
};

/// The `sources add` options of `--provider hmac` and of its presets.
pub(super) const OPTIONS: &[ProviderOption] = &[
    option("preset", "start from a known sender's options (typeform)"),
    option("header", "the signature header"),
    option("algorithm", "sha1, sha256 or sha512 [default: sha256]"),
    option("encoding", "hex or base64 [default: hex]"),
    option("prefix", "text before the signature, e.g. sha256="),
    option(
        "timestamp-header",
        "header with the signed Unix timestamp, checked against --tolerance",
    ),
    option(
        "signed-payload",
        "what is signed, with {body}, {timestamp} and {id} placeholders [default: {body}, or {timestamp}.{body} with --timestamp-header]",
    ),
    option("type-header", "header naming the event type"),
    option(
        "type-pointer",
        "JSON pointer to the event type in the body, e.g. /type",
    ),
    option(
        "id-header",
        "header carrying the sender's delivery id (deduplication)",
    ),
    option(
        "id-pointer",
        "JSON pointer to the delivery id in the body, e.g. /id",
    ),
];

const fn option(name: &'static str, help: &'static str) -> ProviderOption {
    ProviderOption { name, help }
}

/// Options of the generic HMAC provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HmacOptions {
    pub header: String,
    pub algorithm: Algorithm,
    pub encoding: SignatureEncoding,
    #[serde(default)]
    pub prefix: String,
    /// Header naming the event type, when the sender sends one.
    #[serde(default)]
    pub type_header: Option<String>,
    /// Header carrying the sender's delivery id, used for deduplication.
    #[serde(default)]
    pub id_header: Option<String>,
    /// JSON pointer (`/type`, `/event/type`) to the event type in the body, when no header has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_pointer: Option<String>,
    /// JSON pointer to the sender's delivery id in the body, when no header has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pointer: Option<String>,
    /// Header carrying the signed Unix timestamp (seconds), checked against the tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// What is signed, with `{body}`, `{timestamp}` and `{id}` placeholders. Absent: the body
    /// alone, or `{timestamp}.{body}` when a timestamp header is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_payload: Option<String>,
    /// The preset these options came from (`typeform`), shown by `sources list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

impl Default for HmacOptions {
    fn default() -> Self {
        Self {
            header: String::new(),
            algorithm: Algorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: String::new(),
            type_header: None,
            id_header: None,
            type_pointer: None,
            id_pointer: None,
            timestamp_header: None,
            signed_payload: None,
            preset: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

impl From<HmacOptions> for ProviderConfig {
    fn from(options: HmacOptions) -> Self {
        ProviderConfig::new(&PROVIDER, options)
    }
}

impl HmacOptions {
    /// The options of the preset `name`.
    pub fn preset(name: &str) -> Option<Self> {
        let config = find_preset(name)?
            .new_config(&GivenOptions::default())
            .ok()?;
        config.options::<HmacOptions>().cloned()
    }

    /// The names of the presets.
    pub fn preset_names() -> impl Iterator<Item = &'static str> {
        presets().map(|preset| preset.name)
    }
}

/// The presets: the registered providers that are only a combination of hmac options (each in
/// its own file, e.g. `typeform.rs`, its entry's `preset_of` naming hmac).
fn presets() -> impl Iterator<Item = &'static Provider> {
    PROVIDERS
        .iter()
        .copied()
        .filter(|provider| provider.preset_of == Some(PROVIDER.name))
}

fn find_preset(name: &str) -> Option<&'static Provider> {
    presets().find(|preset| preset.name == name)
}

/// The options of a new hmac source from the flags; `--preset NAME` starts from that preset's
/// options (through its own entry, which comes back to `configure_preset`).
fn configure(given: &GivenOptions) -> Result<ProviderConfig, String> {
    let Some(name) = given.get("preset") else {
        return configure_from(given, HmacOptions::default());
    };
    let preset = find_preset(name).ok_or_else(|| {
        let names: Vec<&str> = HmacOptions::preset_names().collect();
        format!("no preset {name:?}; presets: {}", names.join(", "))
    })?;
    (preset.configure)(preset, given).map_err(|refused| refused.0)
}

/// The options of a new source of the preset `name` (its own `--provider name`, or `--provider
/// hmac --preset name`): the preset's `options` with the flags on top.
pub(super) fn configure_preset(
    given: &GivenOptions,
    name: &str,
    options: HmacOptions,
) -> Result<ProviderConfig, InvalidProviderOptions> {
    if let Some(other) = given.get("preset").filter(|other| *other != name) {
        return Err(InvalidProviderOptions(format!(
            "--provider {name} is the {name} preset; leave out --preset {other}"
        )));
    }
    configure_from(given, options).map_err(InvalidProviderOptions)
}

/// `options` with the flags given on top, checked as a new source's.
fn configure_from(
    given: &GivenOptions,
    mut options: HmacOptions,
) -> Result<ProviderConfig, String> {
    if let Some(header) = given.get("header") {
        options.header = header.to_owned();
    }
    if options.header.trim().is_empty() {
        return Err("--provider hmac needs --header NAME (or a --preset)".into());
    }
    if let Some(algorithm) = given.get("algorithm") {
        options.algorithm = match algorithm {
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(format!("--algorithm {other}: use sha1, sha256 or sha512")),
        };
    }
    if let Some(encoding) = given.get("encoding") {
        options.encoding = match encoding {
            "hex" => SignatureEncoding::Hex,
            "base64" => SignatureEncoding::Base64,
            other => return Err(format!("--encoding {other}: use hex or base64")),
        };
    }
    // An empty value clears what a preset set.
    let set = |field: &mut Option<String>, name: &str| {
        if let Some(value) = given.get(name) {
            *field = Some(value.to_owned()).filter(|v| !v.trim().is_empty());
        }
    };
    if let Some(prefix) = given.get("prefix") {
        options.prefix = prefix.to_owned();
    }
    set(&mut options.timestamp_header, "timestamp-header");
    set(&mut options.signed_payload, "signed-payload");
    set(&mut options.type_header, "type-header");
    set(&mut options.type_pointer, "type-pointer");
    set(&mut options.id_header, "id-header");
    set(&mut options.id_pointer, "id-pointer");
    validate_new_options(&options)?;
    Ok(options.into())
}

/// One piece of a signed-payload template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Body,
    Timestamp,
    Id,
}

/// Parses a template such as `{timestamp}.{body}`. `{body}` must appear exactly once.
pub fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let after = &rest[open..];
        let (part, len) = if after.starts_with("{body}") {
            (Part::Body, 6)
        } else if after.starts_with("{timestamp}") {
            (Part::Timestamp, 11)
        } else if after.starts_with("{id}") {
            (Part::Id, 4)
        } else {
            return Err(format!(
                "unknown placeholder at {:?}: use {{body}}, {{timestamp}} or {{id}}",
                after.chars().take(16).collect::<String>()
            ));
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &after[len..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    match parts.iter().filter(|p| **p == Part::Body).count() {
        1 => Ok(parts),
        0 => Err("the signed payload must contain {body}".into()),
        _ => Err("the signed payload must contain {body} once".into()),
    }
}

/// The template in force for `options`.
fn template(options: &HmacOptions) -> &str {
    match (&options.signed_payload, &options.timestamp_header) {
        (Some(t), _) => t,
        (None, Some(_)) => "{timestamp}.{body}",
        (None, None) => "{body}",
    }
}

/// Checks options given to `sources add` (also run at verification: a bad stored source is 500).
pub fn validate_options(options: &HmacOptions) -> Result<(), String> {
    if http::HeaderName::from_bytes(options.header.as_bytes()).is_err() {
        return Err(format!("invalid header name {:?}", options.header));
    }
    let parts = parse_template(template(options))?;
    if parts.contains(&Part::Timestamp) && options.timestamp_header.is_none() {
        return Err("{timestamp} in the signed payload needs a timestamp header".into());
    }
    if parts.contains(&Part::Id) && options.id_header.is_none() {
        return Err("{id} in the signed payload needs an id header".into());
    }
    for pointer in [&options.type_pointer, &options.id_pointer]
        .into_iter()
        .flatten()
    {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!("JSON pointer {pointer:?} must start with /"));
        }
    }
    Ok(())
}

/// Checks options for a new source: `validate_options`, and a timestamp header must be signed.
/// (Not part of `validate_options`, so sources stored before this rule keep verifying.)
pub fn validate_new_options(options: &HmacOptions) -> Result<(), String> {
    validate_options(options)?;
    let parts = parse_template(template(options))?;
    if let Some(header) = &options.timestamp_header
        && !parts.contains(&Part::Timestamp)
    {
        return Err(format!(
            "the signed payload {:?} has no {{timestamp}}, so {header} is not signed and its \
             tolerance stops no replay: put {{timestamp}} in --signed-payload or leave out \
             --timestamp-header",
            template(options)
        ));
    }
    Ok(())
}

/// A preset's sources follow the preset's rule (it says where the sender shows the secret).
fn validate_secret(config: &ProviderConfig, secret: &str) -> Result<(), WeakSourceSecret> {
    let preset = config
        .options::<HmacOptions>()
        .and_then(|options| options.preset.as_deref())
        .and_then(find_preset);
    match preset {
        Some(preset) => (preset.validate_secret)(config, secret),
        None => require_shared_secret(
            secret,
            "the secret the sender signs with: a random string of at least 16 characters",
        )
        .map_err(WeakSourceSecret),
    }
}

/// Strips `prefix` from `value` without regard to ASCII case.
pub fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// The text form of a JSON value used as a type or id (strings and numbers).
fn pointer_text(body: &serde_json::Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn verify(
    source: &dyn SourceView,
    options: &HmacOptions,
    request: &InboundRequest,
    now: i64,
) -> Result<Verified, Rejection> {
    let misconfigured = |e: String| Rejection {
        status: 500,
        message: format!("source is misconfigured: {e}"),
    };
    validate_options(options).map_err(misconfigured)?;
    let parts = parse_template(template(options)).map_err(misconfigured)?;

    if request.header(&options.header).is_none() {
        return Err(Rejection::unauthorized(format!(
            "no {} header",
            options.header
        )));
    }
    let given: Vec<Vec<u8>> = request
        .header_values(&options.header)
        .filter_map(|v| strip_prefix_ignore_case(v, &options.prefix))
        .filter_map(|v| match options.encoding {
            SignatureEncoding::Hex => decode_hex(v),
            SignatureEncoding::Base64 => decode_base64(v),
        })
        .collect();
    if given.is_empty() {
        let encoding = match options.encoding {
            SignatureEncoding::Hex => "hex",
            SignatureEncoding::Base64 => "base64",
        };
        return Err(Rejection::unauthorized(if options.prefix.is_empty() {
            format!("{} is not {encoding}", options.header)
        } else {
            format!(
                "{} is not of the form {}<{encoding}>",
                options.header, options.prefix
            )
        }));
    }

    let timestamp_text = match &options.timestamp_header {
        Some(name) => {
            let text = request
                .header(name)
                .ok_or_else(|| Rejection::unauthorized(format!("no {name} header")))?;
            let timestamp = parse_timestamp(text, name)?;
            check_timestamp(timestamp, now, source.tolerance_secs())?;
            Some(text)
        }
        None => None,
    };
    let header_id = options
        .id_header
        .as_deref()
        .and_then(|name| request.header(name));
    if parts.contains(&Part::Id) && header_id.is_none() {
        let name = options.id_header.as_deref().unwrap_or_default();
        return Err(Rejection::unauthorized(format!("no {name} header")));
    }
    let pieces: Vec<&[u8]> = parts
        .iter()
        .map(|part| match part {
            Part::Literal(text) => text.as_bytes(),
            Part::Body => &request.body[..],
            Part::Timestamp => timestamp_text.unwrap_or_default().as_bytes(),
            Part::Id => header_id.unwrap_or_default().as_bytes(),
        })
        .collect();
    let matched = source.secrets().iter().any(|secret| {
        let expected = hmac(options.algorithm, secret.as_bytes(), &pieces);
        given.iter().any(|g| constant_time_eq(&expected, g))
    });
    if !matched {
        return Err(Rejection::unauthorized("signature does not match"));
    }

    let needs_body = (options.type_header.is_none() && options.type_pointer.is_some())
        || (header_id.is_none() && options.id_pointer.is_some());
    let body = if needs_body {
        Some(
            serde_json::from_slice::<serde_json::Value>(&request.body).map_err(|e| {
                Rejection::malformed(format!(
                    "body is not JSON, so the event type or id cannot be read: {e}"
                ))
            })?,
        )
    } else {
        None
    };
    let from_body = |pointer: &Option<String>| {
        body.as_ref()
            .zip(pointer.as_deref())
            .and_then(|(b, p)| pointer_text(b, p))
    };
    let event_type = options
        .type_header
        .as_deref()
        .and_then(|name| request.header(name))
        .map(str::to_owned)
        .or_else(|| from_body(&options.type_pointer))
        .and_then(|t| type_token(&t).map(str::to_owned))
        .unwrap_or_else(|| "webhook".into());
    let delivery_id = header_id
        .map(str::to_owned)
        .or_else(|| from_body(&options.id_pointer))
        .filter(|id| !id.is_empty());
    Ok(Verified {
        event_type,
        delivery_id,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{request, source};
    use super::*;
    use crate::domain::model::Source;
    use crate::signing::{Algorithm, hmac_sha256};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn run(src: &Source, req: &InboundRequest, now: i64) -> Result<Verified, Rejection> {
        let options = src.provider.options::<HmacOptions>().unwrap();
        verify(src, options, req, now)
    }

    #[test]
    fn typeform_preset() {
        // Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>.
        let body = r#"{"event_id":"01H5","event_type":"form_response","form_response":{}}"#;
        let secret = "typeform-secret";
        let sig = format!(
            "sha256={}",
            STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]))
        );
        let src = source(HmacOptions::preset("typeform").unwrap().into(), secret);
        let verified = run(&src, &request(&[("typeform-signature", &sig)], body), 0).unwrap();
        assert_eq!(verified.event_type, "form_response");
        assert_eq!(verified.delivery_id.as_deref(), Some("01H5"));
        let tampered = body.replace("01H5", "01H6");
        let err = run(
            &src,
            &request(&[("Typeform-Signature", &sig)], &tampered),
            0,
        )
        .unwrap_err();
        assert_eq!(err.message, "signature does not match");
        let err = run(&src, &request(&[], body), 0).unwrap_err();
        assert_eq!(err.message, "no Typeform-Signature header");
        let err = run(
            &src,
            &request(&[("Typeform-Signature", "sha1=abc")], body),
            0,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Typeform-Signature is not of the form sha256=<base64>"
        );
        // Authentic but not JSON: the pointers cannot be read.
        let sig = format!(
            "SHA256={}",
            STANDARD.encode(hmac_sha256(secret.as_bytes(), &[b"x"]))
        );
        assert_eq!(
            run(&src, &request(&[("Typeform-Signature", &sig)], "x"), 0)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn algorithms_encodings_and_headers() {
        for (algorithm, len) in [
            (Algorithm::Sha1, 20),
            (Algorithm::Sha256, 32),
            (Algorithm::Sha512, 64),
        ] {
            let options = HmacOptions {
                header: "X-Sig".into(),
                algorithm,
                encoding: SignatureEncoding::Hex,
                type_header: Some("X-Event".into()),
                id_header: Some("X-Id".into()),
                ..HmacOptions::default()
            };
            let mac = hmac(algorithm, b"k", &[b"body"]);
            assert_eq!(mac.len(), len);
            let src = source(options.into(), "k");
            let req = request(
                &[
                    ("x-sig", &hex::encode_upper(&mac)),
                    ("X-Event", "a.b"),
                    ("x-id", "9"),
                ],
                "body",
            );
            let verified = run(&src, &req, 0).unwrap();
            assert_eq!(
                (
                    verified.event_type.as_str(),
                    verified.delivery_id.as_deref()
                ),
                ("a.b", Some("9"))
            );
            let wrong = hmac(algorithm, b"other", &[b"body"]);
            let req = request(&[("x-sig", &hex::encode(wrong))], "body");
            assert_eq!(
                run(&src, &req, 0).unwrap_err().message,
                "signature does not match"
            );
        }
    }

    #[test]
    fn timestamped_template() {
        let options = HmacOptions {
            header: "X-Signature".into(),
            encoding: SignatureEncoding::Base64,
            prefix: "v1=".into(),
            timestamp_header: Some("X-Timestamp".into()),
            type_pointer: Some("/event/type".into()),
            id_pointer: Some("/id".into()),
            ..HmacOptions::default()
        };
        let src = source(options.into(), "sekrit");
        let body = r#"{"id":42,"event":{"type":"thing.done"}}"#;
        let sign = |ts: i64, body: &str| {
            let mac = hmac_sha256(
                b"sekrit",
                &[ts.to_string().as_bytes(), b".", body.as_bytes()],
            );
            request(
                &[
                    ("X-Signature", &format!("v1={}", STANDARD.encode(mac))),
                    ("X-Timestamp", &ts.to_string()),
                ],
                body,
            )
        };
        let verified = run(&src, &sign(1000, body), 1000).unwrap();
        assert_eq!(verified.event_type, "thing.done");
        assert_eq!(verified.delivery_id.as_deref(), Some("42"));
        assert_eq!(
            run(&src, &sign(188, body), 1000).unwrap_err().message,
            "timestamp 812 s old, tolerance 300 s"
        );
        assert_eq!(
            run(&src, &sign(1400, body), 1000).unwrap_err().message,
            "timestamp 400 s in the future, tolerance 300 s"
        );
        let mut moved = sign(1000, body);
        moved
            .headers
            .insert("x-timestamp", http::HeaderValue::from_static("1001"));
        assert_eq!(
            run(&src, &moved, 1000).unwrap_err().message,
            "signature does not match"
        );
        let mut unstamped = sign(1000, body);
        unstamped.headers.remove("x-timestamp");
        assert_eq!(
            run(&src, &unstamped, 1000).unwrap_err().message,
            "no X-Timestamp header"
        );
    }

    #[test]
    fn template_with_id_and_literals() {
        let options = HmacOptions {
            header: "sig".into(),
            id_header: Some("msg-id".into()),
            signed_payload: Some("v0:{id}:{body}".into()),
            ..HmacOptions::default()
        };
        let src = source(options.into(), "k");
        let mac = hmac_sha256(b"k", &[b"v0:m1:{}"]);
        let req = request(&[("sig", &hex::encode(mac)), ("msg-id", "m1")], "{}");
        assert_eq!(
            run(&src, &req, 0).unwrap().delivery_id.as_deref(),
            Some("m1")
        );
        let req = request(
            &[
                ("sig", &hex::encode(hmac_sha256(b"k", &[b"v0:m1:{}"]))),
                ("msg-id", "m2"),
            ],
            "{}",
        );
        assert_eq!(run(&src, &req, 0).unwrap_err().status, 401);
    }

    #[test]
    fn templates_and_validation() {
        assert_eq!(parse_template("{body}").unwrap(), vec![Part::Body]);
        assert_eq!(
            parse_template("v0:{timestamp}:{body}").unwrap(),
            vec![
                Part::Literal("v0:".into()),
                Part::Timestamp,
                Part::Literal(":".into()),
                Part::Body
            ]
        );
        assert!(parse_template("{timestamp}").is_err());
        assert!(parse_template("{body}{body}").is_err());
        assert!(parse_template("{bodyx}").is_err());
        let mut options = HmacOptions {
            header: "x".into(),
            signed_payload: Some("{timestamp}.{body}".into()),
            ..HmacOptions::default()
        };
        assert!(
            validate_options(&options)
                .unwrap_err()
                .contains("timestamp header")
        );
        options.timestamp_header = Some("t".into());
        assert!(validate_options(&options).is_ok());
        options.type_pointer = Some("type".into());
        assert!(validate_options(&options).is_err());
        options.type_pointer = None;
        options.header = "bad header".into();
        assert!(validate_options(&options).is_err());
    }

    #[test]
    fn a_new_source_signs_its_timestamp() {
        let mut options = HmacOptions {
            header: "x-sig".into(),
            timestamp_header: Some("X-Ts".into()),
            ..HmacOptions::default()
        };
        // The default payload with a timestamp header is `{timestamp}.{body}`: accepted.
        assert!(validate_new_options(&options).is_ok());
        options.signed_payload = Some("{timestamp}:{body}".into());
        assert!(validate_new_options(&options).is_ok());
        options.signed_payload = Some("{body}".into());
        let err = validate_new_options(&options).unwrap_err();
        assert!(
            err.contains("no {timestamp}") && err.contains("X-Ts"),
            "{err}"
        );
        // A source stored with such options keeps verifying (the rule is for new sources).
        assert!(validate_options(&options).is_ok());
        options.timestamp_header = None;
        assert!(validate_new_options(&options).is_ok());
    }

    #[test]
    fn old_stored_options_still_load() {
        let json = r#"{"name":"n","provider":"hmac","header":"x-sig","algorithm":"sha256","encoding":"hex","prefix":"sha256=","type_header":null,"id_header":"x-id","secrets":["s"],"tolerance_secs":300,"created_at":1}"#;
        let src: Source = serde_json::from_str(json).unwrap();
        let options = src.provider.options::<HmacOptions>().unwrap();
        assert_eq!(options.id_header.as_deref(), Some("x-id"));
        assert_eq!(options.timestamp_header, None);
        let back: Source = serde_json::from_str(&serde_json::to_string(&src).unwrap()).unwrap();
        assert_eq!(back, src);
    }
}
