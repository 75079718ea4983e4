//! Sources: add (with each provider's options and secret rules), list, update, remove.

use crate::model::{
    HmacOptions, ProviderConfig, SignatureEncoding, Source, TokenOptions, TwilioOptions,
};
use crate::ports::Catalog;
use crate::providers::{validate_hmac_options, validate_source_secret};
use crate::receive::validate_source_name;
use crate::signing::Algorithm;

use super::{AdminError, Missing};

/// The options of the generic HMAC provider (and of the presets built on it), each as given;
/// `None` keeps the preset's or the default value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HmacInput {
    pub preset: Option<String>,
    pub header: Option<String>,
    /// `sha1`, `sha256` or `sha512`.
    pub algorithm: Option<String>,
    /// `hex` or `base64`.
    pub encoding: Option<String>,
    pub prefix: Option<String>,
    /// An empty value of these clears the option.
    pub timestamp_header: Option<String>,
    pub signed_payload: Option<String>,
    pub type_header: Option<String>,
    pub type_pointer: Option<String>,
    pub id_header: Option<String>,
    pub id_pointer: Option<String>,
}

impl HmacInput {
    /// True when any option was given.
    pub fn given(&self) -> bool {
        [
            &self.preset,
            &self.header,
            &self.algorithm,
            &self.encoding,
            &self.prefix,
            &self.timestamp_header,
            &self.signed_payload,
            &self.type_header,
            &self.type_pointer,
            &self.id_header,
            &self.id_pointer,
        ]
        .iter()
        .any(|o| o.is_some())
    }
}

/// A source to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    pub name: String,
    /// The provider's name: github, stripe, shopify, slack, twilio, standard, hmac, token, or
    /// typeform (the hmac provider with the typeform preset).
    pub provider: String,
    /// Several during rotation; any one that verifies passes.
    pub secrets: Vec<String>,
    pub tolerance_secs: u64,
    pub hmac: HmacInput,
    /// twilio: the URL Twilio calls, without the query.
    pub public_url: Option<String>,
    /// token: the query parameter carrying the token.
    pub token_param: Option<String>,
    /// token: the header carrying the token instead.
    pub token_header: Option<String>,
}

/// A change to a stored source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceChange {
    pub add_secrets: Vec<String>,
    pub remove_secrets: Vec<String>,
    pub tolerance_secs: Option<u64>,
    /// twilio: the new public URL; an empty value goes back to rebuilding it from each request.
    pub public_url: Option<String>,
}

/// Adds a source. Refused when the name is taken or invalid, an option belongs to another
/// provider, or a secret is weaker than the provider issues.
pub async fn add_source(
    catalog: &dyn Catalog,
    input: NewSource,
    now_secs: i64,
) -> Result<Source, AdminError> {
    let name = input.name;
    validate_source_name(&name).map_err(|reason| AdminError::invalid("name", reason))?;
    if catalog.get_source(&name).await?.is_some() {
        return Err(AdminError::Conflict(format!(
            "source {name} exists already; use relay sources update"
        )));
    }
    let provider = provider_config(
        &input.provider,
        input.hmac,
        input.public_url,
        input.token_param,
        input.token_header,
    )?;
    check_source_secrets(&provider, &input.secrets, "secrets", "--secret")?;
    let source = Source {
        name,
        provider,
        secrets: input.secrets,
        tolerance_secs: input.tolerance_secs,
        created_at: now_secs,
    };
    catalog.put_source(&source).await?;
    Ok(source)
}

pub async fn list_sources(catalog: &dyn Catalog) -> Result<Vec<Source>, AdminError> {
    Ok(catalog.list_sources().await?)
}

/// Removes a source and, with it, its subscriptions.
pub async fn remove_source(catalog: &dyn Catalog, name: &str) -> Result<(), AdminError> {
    if catalog.remove_source(name).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(Missing::Source(name.to_owned())))
    }
}

/// Changes a source's secrets, tolerance or Twilio public URL. Added secrets keep the rules of
/// `add_source`; a source keeps at least one secret.
pub async fn update_source(
    catalog: &dyn Catalog,
    name: &str,
    change: SourceChange,
) -> Result<Source, AdminError> {
    let mut source = catalog
        .get_source(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(Missing::Source(name.to_owned())))?;
    check_source_secrets(
        &source.provider,
        &change.add_secrets,
        "add_secrets",
        "--add-secret",
    )?;
    if let Some(url) = change.public_url {
        let ProviderConfig::Twilio(options) = &mut source.provider else {
            return Err(AdminError::invalid(
                "public_url",
                "--public-url is an option of twilio sources",
            ));
        };
        options.public_url = if url.trim().is_empty() {
            None
        } else {
            Some(check_public_url(&url)?)
        };
    }
    for secret in change.add_secrets {
        if !source.secrets.contains(&secret) {
            source.secrets.push(secret);
        }
    }
    source
        .secrets
        .retain(|s| !change.remove_secrets.contains(s));
    if source.secrets.is_empty() {
        return Err(AdminError::invalid(
            "remove_secrets",
            "a source keeps at least one secret",
        ));
    }
    if let Some(tolerance) = change.tolerance_secs {
        source.tolerance_secs = tolerance;
    }
    catalog.put_source(&source).await?;
    Ok(source)
}

/// The provider configuration for a new source, refusing options of other providers.
fn provider_config(
    provider: &str,
    hmac: HmacInput,
    public_url: Option<String>,
    token_param: Option<String>,
    token_header: Option<String>,
) -> Result<ProviderConfig, AdminError> {
    let uses_hmac = matches!(provider, "hmac" | "typeform");
    if !uses_hmac && hmac.given() {
        return Err(AdminError::invalid(
            "hmac",
            "--preset, --header, --algorithm, --encoding, --prefix, --timestamp-header, --signed-payload, --type-*, --id-* are options of --provider hmac",
        ));
    }
    if provider != "twilio" && public_url.is_some() {
        return Err(AdminError::invalid(
            "public_url",
            "--public-url is an option of --provider twilio",
        ));
    }
    if provider != "token" && (token_param.is_some() || token_header.is_some()) {
        return Err(AdminError::invalid(
            "token",
            "--token-param and --token-header are options of --provider token",
        ));
    }
    Ok(match provider {
        "github" => ProviderConfig::Github,
        "stripe" => ProviderConfig::Stripe,
        "shopify" => ProviderConfig::Shopify,
        "slack" => ProviderConfig::Slack,
        "twilio" => ProviderConfig::Twilio(TwilioOptions {
            public_url: public_url.map(|u| check_public_url(&u)).transpose()?,
        }),
        "standard" => ProviderConfig::Standard,
        "hmac" => ProviderConfig::Hmac(hmac_options(hmac, None)?),
        "typeform" => ProviderConfig::Hmac(hmac_options(hmac, Some("typeform"))?),
        "token" => {
            for name in token_header.iter().chain(token_param.iter()) {
                if name.trim().is_empty() {
                    return Err(AdminError::invalid(
                        "token",
                        "--token-param and --token-header must not be empty",
                    ));
                }
            }
            if let Some(header) = &token_header {
                http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    AdminError::invalid("token_header", format!("invalid header name {header:?}"))
                })?;
            }
            ProviderConfig::Token(TokenOptions {
                token_param,
                token_header,
            })
        }
        other => {
            return Err(AdminError::invalid(
                "provider",
                format!("no provider {other:?}"),
            ));
        }
    })
}

/// Refuses secrets weaker than `provider` issues, naming the option (the message never holds
/// the secret, so several secrets are told apart by position).
fn check_source_secrets(
    provider: &ProviderConfig,
    secrets: &[String],
    field: &'static str,
    option: &str,
) -> Result<(), AdminError> {
    for (index, secret) in secrets.iter().enumerate() {
        validate_source_secret(provider, secret).map_err(|e| {
            let reason = if secrets.len() > 1 {
                format!("{option} (number {}): {e}", index + 1)
            } else {
                format!("{option}: {e}")
            };
            AdminError::invalid(field, reason)
        })?;
    }
    Ok(())
}

/// The generic HMAC options from the input, on top of a preset when one is named.
fn hmac_options(input: HmacInput, preset: Option<&str>) -> Result<HmacOptions, AdminError> {
    let invalid = |reason: String| AdminError::invalid("hmac", reason);
    let preset = match (preset, input.preset.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(format!(
                "--provider {a} is the {a} preset; leave out --preset {b}"
            )));
        }
        (Some(p), _) | (None, Some(p)) => Some(p),
        (None, None) => None,
    };
    let mut options = match preset {
        Some(name) => HmacOptions::preset(name).ok_or_else(|| {
            invalid(format!(
                "no preset {name:?}; presets: {}",
                HmacOptions::PRESETS.join(", ")
            ))
        })?,
        None => HmacOptions::default(),
    };
    if let Some(header) = input.header {
        options.header = header;
    }
    if options.header.trim().is_empty() {
        return Err(invalid(
            "--provider hmac needs --header NAME (or a --preset)".into(),
        ));
    }
    if let Some(algorithm) = input.algorithm {
        options.algorithm = match algorithm.as_str() {
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(invalid(format!(
                    "--algorithm {other}: use sha1, sha256 or sha512"
                )));
            }
        };
    }
    if let Some(encoding) = input.encoding {
        options.encoding = match encoding.as_str() {
            "hex" => SignatureEncoding::Hex,
            "base64" => SignatureEncoding::Base64,
            other => return Err(invalid(format!("--encoding {other}: use hex or base64"))),
        };
    }
    let set = |field: &mut Option<String>, value: Option<String>| {
        if let Some(value) = value {
            *field = Some(value).filter(|v| !v.trim().is_empty());
        }
    };
    if let Some(prefix) = input.prefix {
        options.prefix = prefix;
    }
    set(&mut options.timestamp_header, input.timestamp_header);
    set(&mut options.signed_payload, input.signed_payload);
    set(&mut options.type_header, input.type_header);
    set(&mut options.type_pointer, input.type_pointer);
    set(&mut options.id_header, input.id_header);
    set(&mut options.id_pointer, input.id_pointer);
    validate_hmac_options(&options).map_err(|e| invalid(e.to_string()))?;
    Ok(options)
}

/// Checks a Twilio public URL: http(s), a host, no query or fragment.
fn check_public_url(url: &str) -> Result<String, AdminError> {
    let invalid = |reason: String| AdminError::invalid("public_url", reason);
    let url = url.trim();
    let parsed =
        url::Url::parse(url).map_err(|e| invalid(format!("invalid --public-url {url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid(
            "--public-url must be an http or https URL with a host".into(),
        ));
    }
    if url.contains('?') || url.contains('#') {
        return Err(invalid(
            "--public-url is the URL without its query: the query of each request is appended as received".into(),
        ));
    }
    Ok(url.to_owned())
}
