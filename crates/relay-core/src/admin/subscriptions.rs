//! Subscriptions: add, update, list, remove, enable, disable, rotate the signing secret. Every change to
//! a stored subscription goes through `subscriptions::modify_subscription`, so no operator's
//! change undoes the fanout's (or another operator's).

use std::net::IpAddr;
use std::time::Duration;

use crate::domain::filter::{EventInput, Filter};
use crate::domain::ids;
use crate::domain::model::{DeliveryPolicy, EventEnvelope, SigningSecret, Subscription};
use crate::domain::patterns::parse_list;
use crate::domain::policy::{self, PolicyChange};
use crate::fanout::targets::takes_type;
use crate::outbound::netguard::non_global_reason;
use crate::ports::subscriptions::modify_subscription;
use crate::ports::{Catalog, EventArchive, HostResolver};
use crate::signing::validate_signing_secret;

use super::{AdminError, Missing};

/// A subscription to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    pub source: String,
    pub url: String,
    /// Event-type patterns as a comma list (`push,issues.*`); empty means every type.
    pub events: String,
    /// `whsec_` + base64; generated when `None`.
    pub secret: Option<String>,
    /// Extra headers for every delivery, each as `Name: value`.
    pub headers: Vec<String>,
    /// A content filter (`Filter::parse` checked it).
    pub filter: Option<Filter>,
    /// Retry schedule, timeout, concurrency and rate; unset fields take the relay's settings.
    pub policy: DeliveryPolicy,
}

/// A rotated signing secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotated {
    pub subscription: Subscription,
    /// The new secret, signing from now on.
    pub secret: String,
    /// Seconds since the epoch until which the old secrets keep signing too.
    pub old_secrets_expire_at: i64,
}

/// Where the relay that will send a subscription's deliveries lets them go.
pub enum Destinations<'a> {
    /// Private destinations are allowed (`relay dev` by default, a stack deployed with
    /// `AllowPrivateDestinations=true`): nothing to check.
    Any,
    /// Deliveries to non-global addresses are refused; `because` names the setting that says
    /// so, and host names are resolved through `resolver`.
    GlobalOnly {
        resolver: &'a dyn HostResolver,
        because: String,
    },
}

/// Refuses a subscription URL whose deliveries the destination guard would refuse: an
/// IP-literal host, or a name resolving to any address, that is not globally routable.
///
/// An early, clear refusal, not the boundary: deliveries are checked again on every connection,
/// so a name that cannot be resolved now (not yet in DNS) is accepted, and one that later
/// resolves elsewhere is refused at delivery and listed by `relay status`.
pub async fn check_destination(
    url: &str,
    destinations: &Destinations<'_>,
) -> Result<(), AdminError> {
    let Destinations::GlobalOnly { resolver, because } = destinations else {
        return Ok(());
    };
    let parsed = parse_url(url)?;
    let (name, addresses) = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => (None, vec![IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => (None, vec![IpAddr::V6(ip)]),
        Some(url::Host::Domain(name)) => {
            let port = parsed.port_or_known_default().unwrap_or(443);
            match resolver.resolve(name, port).await {
                Ok(addresses) => (Some(name), addresses),
                Err(_) => return Ok(()),
            }
        }
        None => return Ok(()),
    };
    let Some((ip, reason)) = addresses
        .iter()
        .find_map(|ip| non_global_reason(*ip).map(|reason| (ip, reason)))
    else {
        return Ok(());
    };
    let what = match name {
        Some(name) => format!("{name} resolves to {ip}, a {reason}"),
        None => format!("{ip} is a {reason}"),
    };
    Err(AdminError::invalid(
        "url",
        format!("--url {url}: {what}; deliveries there would be refused because {because}"),
    ))
}

/// An http or https URL with a host.
fn parse_url(url: &str) -> Result<url::Url, AdminError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| AdminError::invalid("url", format!("invalid --url {url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(AdminError::invalid(
            "url",
            "--url must be an http or https URL with a host",
        ));
    }
    Ok(parsed)
}

/// Adds a subscription to an existing source; its signing secret is `subscription.secrets[0]`.
pub async fn add_subscription(
    catalog: &dyn Catalog,
    input: NewSubscription,
    now_secs: i64,
) -> Result<Subscription, AdminError> {
    let source = input.source;
    if catalog.get_source(&source).await?.is_none() {
        return Err(AdminError::NotFound(Missing::SourceToSubscribe(source)));
    }
    let url = input.url;
    parse_url(&url)?;
    let events =
        parse_list(&input.events).map_err(|e| AdminError::invalid("events", e.to_string()))?;
    let secret = match input.secret {
        Some(secret) => {
            validate_signing_secret(&secret).map_err(|e| AdminError::invalid("secret", e))?;
            secret
        }
        None => ids::new_signing_secret(),
    };
    let headers = input
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    policy::validate(&input.policy).map_err(|e| AdminError::invalid("policy", e.to_string()))?;
    let mut subscription = Subscription {
        id: ids::new_subscription_id(),
        source,
        url,
        events,
        secrets: vec![SigningSecret {
            secret,
            expires_at: None,
        }],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        refused: None,
        headers,
        filter: input.filter,
        policy: input.policy,
        paused_until: None,
        pause_streak: 0,
        created_at: now_secs,
        revision: 0,
    };
    subscription.revision = catalog.put_subscription(&subscription).await?;
    Ok(subscription)
}

/// `Name: value`, with a valid header name.
fn parse_header(line: &str) -> Result<(String, String), AdminError> {
    let (name, value) = line.split_once(':').ok_or_else(|| {
        AdminError::invalid("headers", format!("--header {line:?}: use 'Name: value'"))
    })?;
    let name = name.trim();
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| AdminError::invalid("headers", format!("invalid header name {name:?}")))?;
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Every subscription (by id), or those of one source.
pub async fn list_subscriptions(
    catalog: &dyn Catalog,
    source: Option<&str>,
) -> Result<Vec<Subscription>, AdminError> {
    Ok(match source {
        Some(source) => catalog.source_subscriptions(source).await?,
        None => catalog.list_subscriptions().await?,
    })
}

fn subscription_not_found(id: &str) -> AdminError {
    AdminError::NotFound(Missing::Subscription(id.to_owned()))
}

pub async fn remove_subscription(catalog: &dyn Catalog, id: &str) -> Result<(), AdminError> {
    if catalog.remove_subscription(id).await? {
        Ok(())
    } else {
        Err(subscription_not_found(id))
    }
}

pub async fn get_subscription(catalog: &dyn Catalog, id: &str) -> Result<Subscription, AdminError> {
    catalog
        .get_subscription(id)
        .await?
        .ok_or_else(|| subscription_not_found(id))
}

/// What `subscriptions update` changes; `None` keeps what is stored. The id and the signing
/// secrets are never changed here (`rotate_secret` changes the secret).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionChange {
    pub url: Option<String>,
    /// Event-type patterns as a comma list; empty means every type.
    pub events: Option<String>,
    /// `Some(None)` removes the filter.
    pub filter: Option<Option<Filter>>,
    /// Replaces every extra header, each as `Name: value` (`Some(vec![])` removes them all).
    pub headers: Option<Vec<String>>,
    /// Sets or resets fields of the delivery policy.
    pub policy: PolicyChange,
}

impl SubscriptionChange {
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.events.is_none()
            && self.filter.is_none()
            && self.headers.is_none()
            && self.policy.is_empty()
    }
}

/// Changes a subscription's URL, event types, filter or headers, keeping its id and secrets.
/// Everything is checked before anything is written, and the write is on the revision read
/// (`modify_subscription`), so a concurrent change (the fanout's health, another operator) is
/// never undone. A new URL starts the subscription's health afresh: the failures and refusals
/// it carried were the old URL's.
pub async fn update_subscription(
    catalog: &dyn Catalog,
    id: &str,
    change: SubscriptionChange,
) -> Result<Subscription, AdminError> {
    if change.is_empty() {
        return Err(AdminError::invalid(
            "change",
            "nothing to change: give --url, --events, --filter, --filter-file, --no-filter, --header, --no-headers, --retry-schedule, --timeout, --max-in-flight or --rate",
        ));
    }
    if let Some(url) = &change.url {
        parse_url(url)?;
    }
    let mut policy_check = DeliveryPolicy::default();
    change.policy.apply(&mut policy_check);
    policy::validate(&policy_check).map_err(|e| AdminError::invalid("policy", e.to_string()))?;
    let events = match &change.events {
        Some(events) => {
            Some(parse_list(events).map_err(|e| AdminError::invalid("events", e.to_string()))?)
        }
        None => None,
    };
    let headers = match &change.headers {
        Some(lines) => Some(
            lines
                .iter()
                .map(|h| parse_header(h))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    modify_subscription(catalog, id, |sub| {
        if let Some(url) = &change.url
            && *url != sub.url
        {
            sub.url.clone_from(url);
            sub.failing_since = None;
            sub.refused = None;
        }
        if let Some(events) = &events {
            sub.events.clone_from(events);
        }
        if let Some(filter) = &change.filter {
            sub.filter.clone_from(filter);
        }
        if let Some(headers) = &headers {
            sub.headers.clone_from(headers);
        }
        change.policy.apply(&mut sub.policy);
        true
    })
    .await?
    .ok_or_else(|| subscription_not_found(id))
}

/// Enables or disables a subscription by hand. Enabling is a fresh start: the health window
/// counts from the next failure, so a subscription is not disabled again for an old run.
pub async fn set_enabled(
    catalog: &dyn Catalog,
    id: &str,
    enabled: bool,
) -> Result<Subscription, AdminError> {
    modify_subscription(catalog, id, |sub| {
        sub.enabled = enabled;
        sub.disabled_reason = (!enabled).then(|| "disabled by an operator".to_owned());
        if enabled {
            sub.failing_since = None;
        }
        true
    })
    .await?
    .ok_or_else(|| subscription_not_found(id))
}

/// Gives the subscription a new signing secret. The old secrets keep signing for `keep_old`
/// (so subscribers can switch over), one already expiring sooner keeps its earlier expiry, and
/// expired ones are dropped.
pub async fn rotate_secret(
    catalog: &dyn Catalog,
    id: &str,
    keep_old: Duration,
    now_secs: i64,
) -> Result<Rotated, AdminError> {
    let until = now_secs.saturating_add(i64::try_from(keep_old.as_secs()).unwrap_or(i64::MAX));
    let secret = ids::new_signing_secret();
    let subscription = modify_subscription(catalog, id, |sub| {
        sub.secrets
            .retain(|s| s.expires_at.is_none_or(|at| at > now_secs));
        for old in &mut sub.secrets {
            old.expires_at = Some(old.expires_at.map_or(until, |at| at.min(until)));
        }
        sub.secrets.insert(
            0,
            SigningSecret {
                secret: secret.clone(),
                expires_at: None,
            },
        );
        true
    })
    .await?
    .ok_or_else(|| subscription_not_found(id))?;
    Ok(Rotated {
        subscription,
        secret,
        old_secrets_expire_at: until,
    })
}

/// What `test_filter` tries a subscription's filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterSubject {
    /// A stored event: its source, type, body and headers.
    Event(String),
    /// A body alone; the type patterns are not checked.
    Body(Vec<u8>),
}

/// Whether a subscription takes an event, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTrial {
    pub subscription_id: String,
    /// The stored event tried; `None` for a body.
    pub event_id: Option<String>,
    pub matched: bool,
    /// Every part that did not match (source, type patterns, filter).
    pub reasons: Vec<String>,
}

/// Tries subscription `id` on `subject` the way the fanout decides (`fanout::targets::takes`),
/// saying which part failed. Whether the subscription is enabled is not part of the answer.
pub async fn test_filter(
    catalog: &dyn Catalog,
    archive: &dyn EventArchive,
    id: &str,
    subject: FilterSubject,
) -> Result<FilterTrial, AdminError> {
    let sub = get_subscription(catalog, id).await?;
    let mut reasons = Vec::new();
    let (event, event_id) = match subject {
        FilterSubject::Event(event_id) => {
            let event = archive
                .get_event(&event_id)
                .await?
                .ok_or_else(|| AdminError::NotFound(Missing::Event(event_id.clone())))?;
            if event.source != sub.source {
                reasons.push(format!(
                    "the event is of source {}, the subscription takes source {}",
                    event.source, sub.source
                ));
            }
            if !takes_type(&sub, &event.event_type) {
                reasons.push(format!(
                    "event type {} matches none of the patterns {}",
                    event.event_type,
                    sub.events.join(",")
                ));
            }
            (event, Some(event_id))
        }
        FilterSubject::Body(body) => {
            let (body, body_encoding) = EventEnvelope::encode_body(&body);
            let event = EventEnvelope {
                id: "evt_test".to_owned(),
                source: sub.source.clone(),
                event_type: String::new(),
                content_type: None,
                received_at: 0,
                body,
                body_encoding,
                reconciled: false,
                stored_body: None,
            };
            (event, None)
        }
    };
    if let Some(filter) = &sub.filter {
        let verdict = filter.explain(&EventInput::new(&event));
        reasons.extend(verdict.reason.map(|why| format!("filter: {why}")));
    }
    Ok(FilterTrial {
        subscription_id: sub.id,
        event_id,
        matched: reasons.is_empty(),
        reasons,
    })
}
