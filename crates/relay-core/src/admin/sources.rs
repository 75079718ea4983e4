//! Sources: add (with each provider's options and secret rules, from its registry entry), list,
//! update, remove.

use crate::domain::model::{ProviderConfig, Source};
use crate::ports::Catalog;
use crate::providers::{
    GivenOptions, TwilioOptions, check_public_url, find, validate_source_secret,
};
use crate::receive::validate_source_name;

use super::{AdminError, Missing};

/// A source to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    pub name: String,
    /// The provider's registry name (`providers::PROVIDERS`).
    pub provider: String,
    /// Several during rotation; any one that verifies passes.
    pub secrets: Vec<String>,
    pub tolerance_secs: u64,
    /// The provider's options by flag name (`Provider::options`: `header`, `public-url`, ...).
    pub options: GivenOptions,
    /// Accept secrets weaker than the provider's rule (a secret set years ago, a provider's
    /// test secret); `relay status` lists such sources as a warning. Never an empty one.
    pub allow_weak_secret: bool,
}

/// A change to a stored source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceChange {
    pub add_secrets: Vec<String>,
    /// Accept added secrets weaker than the provider's rule (see `NewSource`).
    pub allow_weak_secret: bool,
    pub remove_secrets: Vec<String>,
    pub tolerance_secs: Option<u64>,
    /// twilio: the new public URL; an empty value goes back to rebuilding it from each request.
    pub public_url: Option<String>,
    /// How `relay reconcile` reaches the provider's API.
    pub reconcile: crate::reconcile::ReconcileChange,
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
    let entry = find(&input.provider).ok_or_else(|| {
        AdminError::invalid("provider", format!("no provider {:?}", input.provider))
    })?;
    let provider = entry
        .new_config(&input.options)
        .map_err(|reason| AdminError::invalid("options", reason))?;
    check_source_secrets(
        &provider,
        &input.secrets,
        "secrets",
        "--secret",
        input.allow_weak_secret,
    )?;
    let source = Source {
        name,
        provider,
        secrets: input.secrets,
        tolerance_secs: input.tolerance_secs,
        created_at: now_secs,
        reconcile: None,
    };
    catalog.put_source(&source).await?;
    Ok(source)
}

pub async fn list_sources(catalog: &dyn Catalog) -> Result<Vec<Source>, AdminError> {
    Ok(catalog.list_sources().await?)
}

/// Removes a source and, with it, its subscriptions.
/// Removes a source. A source that still has subscriptions is refused unless `cascade`
/// (then they go with it), so a typo cannot silently drop every consumer of a source.
pub async fn remove_source(
    catalog: &dyn Catalog,
    name: &str,
    cascade: bool,
) -> Result<(), AdminError> {
    if !cascade {
        let subscriptions = catalog.source_subscriptions(name).await?.len();
        if subscriptions > 0 {
            return Err(AdminError::Conflict(format!(
                "source {name} has {subscriptions} subscription(s); remove them first, or pass --cascade to remove them with it"
            )));
        }
    }
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
        change.allow_weak_secret,
    )?;
    if let Some(url) = change.public_url {
        let Some(mut options) = source.provider.options::<TwilioOptions>().cloned() else {
            return Err(AdminError::invalid(
                "public_url",
                "--public-url is an option of twilio sources",
            ));
        };
        options.public_url = if url.trim().is_empty() {
            None
        } else {
            Some(
                check_public_url(&url)
                    .map_err(|reason| AdminError::invalid("public_url", reason))?,
            )
        };
        source.provider = options.into();
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
    if !change.reconcile.is_empty() {
        let settings = crate::reconcile::change_settings(&source, change.reconcile)
            .map_err(|reason| AdminError::invalid("reconcile", reason))?;
        source.reconcile = Some(settings);
    }
    catalog.put_source(&source).await?;
    Ok(source)
}

/// Refuses secrets weaker than `provider` issues, naming the option (the message never holds
/// the secret, so several secrets are told apart by position).
fn check_source_secrets(
    provider: &ProviderConfig,
    secrets: &[String],
    field: &'static str,
    option: &str,
    allow_weak: bool,
) -> Result<(), AdminError> {
    for (index, secret) in secrets.iter().enumerate() {
        let which = if secrets.len() > 1 {
            format!("{option} (number {})", index + 1)
        } else {
            option.to_owned()
        };
        if allow_weak {
            // Weak is accepted, empty never (each provider's rule says so in its own words).
            if secret.trim().is_empty() {
                return Err(AdminError::invalid(field, format!("{which} is empty")));
            }
            continue;
        }
        validate_source_secret(provider, secret).map_err(|e| {
            AdminError::invalid(
                field,
                format!(
                    "{which}: {e}; a secret already in use with the provider can be kept with \
                     --allow-weak-secret"
                ),
            )
        })?;
    }
    Ok(())
}

/// How many of a source's secrets are weaker than its provider's rule (accepted with
/// `--allow-weak-secret`); `relay status` warns about them.
pub fn weak_secret_count(source: &Source) -> usize {
    source
        .secrets
        .iter()
        .filter(|secret| validate_source_secret(&source.provider, secret).is_err())
        .count()
}
