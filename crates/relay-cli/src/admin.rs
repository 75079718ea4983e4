//! The admin commands, over either backend.

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use relay_core::clock::{Clock, SystemClock};
use relay_core::model::{
    DeliveryTask, HmacOptions, ProviderConfig, SignatureEncoding, SigningSecret, Source,
    Subscription, TokenOptions, TwilioOptions,
};
use relay_core::patterns::{matches_any, parse_list};
use relay_core::receive::validate_source_name;
use relay_core::retry::parse_duration;
use relay_core::signing::{Algorithm, validate_signing_secret};
use relay_core::subscriptions::modify_subscription;
use relay_core::{EventQuery, Store, ids};

use crate::args::{
    Command, EventsCommand, Global, HmacArgs, ProviderName, RedriveQueue, SourcesCommand,
    SubscriptionsCommand,
};
use crate::backend::Backend;
use crate::output::emit;

pub async fn run(backend: &Backend, global: &Global, command: Command) -> anyhow::Result<()> {
    let json_mode = global.json;
    let store = backend.store();
    match command {
        Command::Dev(_) => unreachable_dev(),
        Command::Sources(cmd) => sources(store.as_ref(), json_mode, cmd).await,
        Command::Subscriptions(cmd) => subscriptions(store.as_ref(), json_mode, cmd).await,
        Command::Events(cmd) => events(store.as_ref(), json_mode, cmd).await,
        Command::Replay { id, subscription } => {
            replay(
                backend,
                store.as_ref(),
                json_mode,
                &id,
                subscription.as_deref(),
            )
            .await
        }
        Command::Redrive { queue } => redrive(backend, json_mode, queue).await,
    }
}

fn unreachable_dev() -> anyhow::Result<()> {
    Err(anyhow!("relay dev is not an admin command"))
}

fn now_secs() -> i64 {
    SystemClock.now_secs()
}

fn source_json(source: &Source) -> Value {
    // Secrets are never printed; only how many there are.
    // Provider options hold no secrets (a token source's token is one of its secrets).
    let mut options = serde_json::to_value(&source.provider).unwrap_or_else(|_| json!({}));
    if let Some(map) = options.as_object_mut() {
        map.remove("provider");
    }
    json!({
        "name": source.name,
        "provider": source.provider.name(),
        "options": options,
        "secrets": source.secrets.len(),
        "tolerance_secs": source.tolerance_secs,
    })
}

/// `hmac (typeform)` for a preset, else the provider's name.
fn provider_label(provider: &ProviderConfig) -> String {
    match provider {
        ProviderConfig::Hmac(HmacOptions {
            preset: Some(preset),
            ..
        }) => format!("hmac ({preset})"),
        other => other.name().to_owned(),
    }
}

fn subscription_json(sub: &Subscription) -> Value {
    json!({
        "id": sub.id,
        "source": sub.source,
        "url": sub.url,
        "events": sub.events,
        "enabled": sub.enabled,
        "disabled_reason": sub.disabled_reason,
        "headers": sub.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "secrets": sub.secrets.len(),
    })
}

async fn sources(store: &dyn Store, json_mode: bool, cmd: SourcesCommand) -> anyhow::Result<()> {
    match cmd {
        SourcesCommand::Add {
            name,
            provider,
            secrets,
            tolerance,
            hmac,
            public_url,
            token_param,
            token_header,
        } => {
            validate_source_name(&name).map_err(|e| anyhow!(e))?;
            if store.get_source(&name).await?.is_some() {
                bail!("source {name} exists already; use relay sources update");
            }
            let uses_hmac = matches!(provider, ProviderName::Hmac | ProviderName::Typeform);
            if !uses_hmac && hmac.given() {
                bail!(
                    "--preset, --header, --algorithm, --encoding, --prefix, --timestamp-header, --signed-payload, --type-*, --id-* are options of --provider hmac"
                );
            }
            if provider != ProviderName::Twilio && public_url.is_some() {
                bail!("--public-url is an option of --provider twilio");
            }
            if provider != ProviderName::Token && (token_param.is_some() || token_header.is_some())
            {
                bail!("--token-param and --token-header are options of --provider token");
            }
            let provider = match provider {
                ProviderName::Github => ProviderConfig::Github,
                ProviderName::Stripe => ProviderConfig::Stripe,
                ProviderName::Shopify => ProviderConfig::Shopify,
                ProviderName::Slack => ProviderConfig::Slack,
                ProviderName::Twilio => ProviderConfig::Twilio(TwilioOptions {
                    public_url: public_url.map(|u| check_public_url(&u)).transpose()?,
                }),
                ProviderName::Standard => ProviderConfig::Standard,
                ProviderName::Hmac => ProviderConfig::Hmac(hmac_options(*hmac, None)?),
                ProviderName::Typeform => {
                    ProviderConfig::Hmac(hmac_options(*hmac, Some("typeform"))?)
                }
                ProviderName::Token => {
                    for name in token_header.iter().chain(token_param.iter()) {
                        if name.trim().is_empty() {
                            bail!("--token-param and --token-header must not be empty");
                        }
                    }
                    if let Some(header) = &token_header {
                        http::HeaderName::from_bytes(header.as_bytes())
                            .map_err(|_| anyhow!("invalid header name {header:?}"))?;
                    }
                    ProviderConfig::Token(TokenOptions {
                        token_param,
                        token_header,
                    })
                }
            };
            check_source_secrets(&provider, &secrets, "--secret")?;
            let source = Source {
                name: name.clone(),
                provider,
                secrets,
                tolerance_secs: tolerance,
                created_at: now_secs(),
            };
            store.put_source(&source).await?;
            emit(json_mode, &source_json(&source), || {
                let mut text = format!("added source {name}: providers POST to /{name}");
                if let ProviderConfig::Token(TokenOptions {
                    token_header: None,
                    token_param,
                }) = &source.provider
                {
                    let param = token_param
                        .as_deref()
                        .unwrap_or(TokenOptions::DEFAULT_PARAM);
                    text.push_str(&format!(" (with ?{param}=<the token> in the URL)"));
                }
                text
            });
        }
        SourcesCommand::List => {
            let list = store.list_sources().await?;
            let value = Value::Array(list.iter().map(source_json).collect());
            emit(json_mode, &value, || {
                if list.is_empty() {
                    return "no sources".into();
                }
                list.iter()
                    .map(|s| {
                        format!(
                            "{}\t{}\t{} secret(s)",
                            s.name,
                            provider_label(&s.provider),
                            s.secrets.len()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SourcesCommand::Remove { name } => {
            if !store.remove_source(&name).await? {
                bail!("no source named {name}");
            }
            emit(json_mode, &json!({ "removed": name }), || {
                format!("removed source {name}")
            });
        }
        SourcesCommand::Update {
            name,
            add_secret,
            remove_secret,
            tolerance,
            public_url,
        } => {
            let mut source = store
                .get_source(&name)
                .await?
                .with_context(|| format!("no source named {name}"))?;
            check_source_secrets(&source.provider, &add_secret, "--add-secret")?;
            if let Some(url) = public_url {
                let ProviderConfig::Twilio(options) = &mut source.provider else {
                    bail!("--public-url is an option of twilio sources");
                };
                options.public_url = if url.trim().is_empty() {
                    None
                } else {
                    Some(check_public_url(&url)?)
                };
            }
            for secret in add_secret {
                if !source.secrets.contains(&secret) {
                    source.secrets.push(secret);
                }
            }
            source.secrets.retain(|s| !remove_secret.contains(s));
            if source.secrets.is_empty() {
                bail!("a source keeps at least one secret");
            }
            if let Some(tolerance) = tolerance {
                source.tolerance_secs = tolerance;
            }
            store.put_source(&source).await?;
            emit(json_mode, &source_json(&source), || {
                format!("updated source {name}")
            });
        }
    }
    Ok(())
}

/// Refuses secrets weaker than `provider` issues, naming the flag (the message never holds the
/// secret, so several secrets are told apart by position).
fn check_source_secrets(
    provider: &ProviderConfig,
    secrets: &[String],
    flag: &str,
) -> anyhow::Result<()> {
    for (index, secret) in secrets.iter().enumerate() {
        relay_core::providers::validate_source_secret(provider, secret).map_err(|e| {
            if secrets.len() > 1 {
                anyhow!("{flag} (number {}): {e}", index + 1)
            } else {
                anyhow!("{flag}: {e}")
            }
        })?;
    }
    Ok(())
}

/// The generic HMAC options from the flags, on top of a preset when one is named.
fn hmac_options(args: HmacArgs, preset: Option<&str>) -> anyhow::Result<HmacOptions> {
    let preset = match (preset, args.preset.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            bail!("--provider {a} is the {a} preset; leave out --preset {b}")
        }
        (Some(p), _) | (None, Some(p)) => Some(p),
        (None, None) => None,
    };
    let mut options = match preset {
        Some(name) => HmacOptions::preset(name).with_context(|| {
            format!(
                "no preset {name:?}; presets: {}",
                HmacOptions::PRESETS.join(", ")
            )
        })?,
        None => HmacOptions::default(),
    };
    if let Some(header) = args.header {
        options.header = header;
    }
    if options.header.trim().is_empty() {
        bail!("--provider hmac needs --header NAME (or a --preset)");
    }
    if let Some(algorithm) = args.algorithm {
        options.algorithm = match algorithm.as_str() {
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => bail!("--algorithm {other}: use sha1, sha256 or sha512"),
        };
    }
    if let Some(encoding) = args.encoding {
        options.encoding = match encoding.as_str() {
            "hex" => SignatureEncoding::Hex,
            "base64" => SignatureEncoding::Base64,
            other => bail!("--encoding {other}: use hex or base64"),
        };
    }
    let set = |field: &mut Option<String>, value: Option<String>| {
        if let Some(value) = value {
            *field = Some(value).filter(|v| !v.trim().is_empty());
        }
    };
    if let Some(prefix) = args.prefix {
        options.prefix = prefix;
    }
    set(&mut options.timestamp_header, args.timestamp_header);
    set(&mut options.signed_payload, args.signed_payload);
    set(&mut options.type_header, args.type_header);
    set(&mut options.type_pointer, args.type_pointer);
    set(&mut options.id_header, args.id_header);
    set(&mut options.id_pointer, args.id_pointer);
    relay_core::providers::validate_hmac_options(&options).map_err(|e| anyhow!(e))?;
    Ok(options)
}

/// Checks a Twilio public URL: http(s), a host, no query or fragment.
fn check_public_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim();
    let parsed = url::Url::parse(url).map_err(|e| anyhow!("invalid --public-url {url}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        bail!("--public-url must be an http or https URL with a host");
    }
    if url.contains('?') || url.contains('#') {
        bail!(
            "--public-url is the URL without its query: the query of each request is appended as received"
        );
    }
    Ok(url.to_owned())
}

async fn subscriptions(
    store: &dyn Store,
    json_mode: bool,
    cmd: SubscriptionsCommand,
) -> anyhow::Result<()> {
    match cmd {
        SubscriptionsCommand::Add {
            source,
            url,
            events,
            secret,
            headers,
        } => {
            if store.get_source(&source).await?.is_none() {
                bail!("no source named {source}; add it first with relay sources add");
            }
            let parsed = url::Url::parse(&url).map_err(|e| anyhow!("invalid --url {url}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                bail!("--url must be an http or https URL with a host");
            }
            let events = parse_list(&events).map_err(|e| anyhow!(e))?;
            let secret = match secret {
                Some(secret) => {
                    validate_signing_secret(&secret).map_err(|e| anyhow!(e))?;
                    secret
                }
                None => ids::new_signing_secret(),
            };
            let headers = headers
                .iter()
                .map(|h| {
                    let (k, v) = h
                        .split_once(':')
                        .with_context(|| format!("--header {h:?}: use 'Name: value'"))?;
                    http::HeaderName::from_bytes(k.trim().as_bytes())
                        .with_context(|| format!("invalid header name {:?}", k.trim()))?;
                    Ok((k.trim().to_owned(), v.trim().to_owned()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let sub = Subscription {
                id: ids::new_subscription_id(),
                source,
                url,
                events,
                secrets: vec![SigningSecret {
                    secret: secret.clone(),
                    expires_at: None,
                }],
                enabled: true,
                disabled_reason: None,
                failing_since: None,
                headers,
                created_at: now_secs(),
                revision: 0,
            };
            store.put_subscription(&sub).await?;
            let mut value = subscription_json(&sub);
            value["secret"] = json!(secret);
            emit(json_mode, &value, || {
                format!(
                    "added subscription {}\nsigning secret: {secret}\n(verify deliveries with any Standard Webhooks library)",
                    sub.id
                )
            });
        }
        SubscriptionsCommand::List { source } => {
            let list = match &source {
                Some(source) => store.source_subscriptions(source).await?,
                None => store.list_subscriptions().await?,
            };
            let value = Value::Array(list.iter().map(subscription_json).collect());
            emit(json_mode, &value, || {
                if list.is_empty() {
                    return "no subscriptions".into();
                }
                list.iter()
                    .map(|s| {
                        let state = if s.enabled {
                            "enabled".to_owned()
                        } else {
                            format!(
                                "disabled ({})",
                                s.disabled_reason.as_deref().unwrap_or("by hand")
                            )
                        };
                        format!(
                            "{}\t{}\t{}\t{}\t{state}",
                            s.id,
                            s.source,
                            s.url,
                            s.events.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SubscriptionsCommand::Remove { id } => {
            if !store.remove_subscription(&id).await? {
                bail!("no subscription {id}");
            }
            emit(json_mode, &json!({ "removed": id }), || {
                format!("removed subscription {id}")
            });
        }
        SubscriptionsCommand::Disable { id } => {
            let sub = set_enabled(store, &id, false).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("disabled subscription {id}")
            });
        }
        SubscriptionsCommand::Enable { id } => {
            let sub = set_enabled(store, &id, true).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("enabled subscription {id}")
            });
        }
        SubscriptionsCommand::RotateSecret { id, keep_old } => {
            let keep = parse_duration(&keep_old).map_err(|e| anyhow!("--keep-old: {e}"))?;
            let now = now_secs();
            let until = now + keep.as_secs() as i64;
            let secret = ids::new_signing_secret();
            let sub = modify_subscription(store, &id, |sub| {
                // Old secrets keep signing until `until`; already-expired ones are dropped.
                sub.secrets
                    .retain(|s| s.expires_at.is_none_or(|at| at > now));
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
            .with_context(|| format!("no subscription {id}"))?;
            let mut value = subscription_json(&sub);
            value["secret"] = json!(secret);
            value["old_secrets_expire_at"] = json!(until);
            emit(json_mode, &value, || {
                format!("new signing secret: {secret}\nthe old secret keeps signing for {keep_old}")
            });
        }
    }
    Ok(())
}

async fn get_subscription(store: &dyn Store, id: &str) -> anyhow::Result<Subscription> {
    store
        .get_subscription(id)
        .await?
        .with_context(|| format!("no subscription {id}"))
}

async fn set_enabled(store: &dyn Store, id: &str, enabled: bool) -> anyhow::Result<Subscription> {
    modify_subscription(store, id, |sub| {
        sub.enabled = enabled;
        sub.disabled_reason = (!enabled).then(|| "disabled by an operator".to_owned());
        if enabled {
            // A fresh start: the health window counts from the next failure.
            sub.failing_since = None;
        }
        true
    })
    .await?
    .with_context(|| format!("no subscription {id}"))
}

async fn events(store: &dyn Store, json_mode: bool, cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List {
            limit,
            before,
            source,
            event_type,
        } => {
            let query = EventQuery {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
                before,
                source,
                event_type,
                now_millis: SystemClock.now_millis(),
            };
            let page = store.list_events(&query).await?;
            let next_cursor = page.next.as_ref().map(ToString::to_string);
            let value = json!({
                "events": page.events.iter()
                    .map(|e| {
                        json!({ "id": e.id, "source": e.source, "type": e.event_type,
                                "received_at": e.received_at, "bytes": e.body_bytes })
                    })
                    .collect::<Vec<_>>(),
                "next_cursor": next_cursor,
            });
            emit(json_mode, &value, || {
                if page.events.is_empty() {
                    return "no events".into();
                }
                let mut lines: Vec<String> = page
                    .events
                    .iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\t{}\t{}",
                            e.id,
                            millis_text(e.received_at),
                            e.source,
                            e.event_type
                        )
                    })
                    .collect();
                if let Some(cursor) = &next_cursor {
                    lines.push(format!("next page: --before {cursor}"));
                }
                lines.join("\n")
            });
        }
        EventsCommand::Show { id } => {
            let event = store
                .get_event(&id)
                .await?
                .with_context(|| format!("no event {id} (events are kept for a limited time)"))?;
            let attempts = store.event_attempts(&id).await?;
            let value = json!({
                "id": event.id, "source": event.source, "type": event.event_type,
                "content_type": event.content_type, "received_at": event.received_at,
                "body": event.body, "body_encoding": event.body_encoding,
                "attempts": attempts,
            });
            emit(json_mode, &value, || {
                let mut lines = vec![
                    format!(
                        "event {}  {}  source {}  type {}",
                        event.id,
                        millis_text(event.received_at),
                        event.source,
                        event.event_type
                    ),
                    format!("attempts: {}", attempts.len()),
                ];
                for a in &attempts {
                    lines.push(format!(
                        "  #{:<2} {}  {}  {:<20} {:>5}  {:>6} ms  next: {}{}",
                        a.attempt,
                        millis_text(a.at),
                        a.subscription_id,
                        a.outcome,
                        a.status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        a.latency_ms,
                        a.next,
                        if a.response_excerpt.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "  response: {}",
                                a.response_excerpt.chars().take(80).collect::<String>()
                            )
                        }
                    ));
                }
                lines.join("\n")
            });
        }
    }
    Ok(())
}

fn millis_text(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        ms.rem_euclid(1000)
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

async fn replay(
    backend: &Backend,
    store: &dyn Store,
    json_mode: bool,
    id: &str,
    only: Option<&str>,
) -> anyhow::Result<()> {
    let event = store
        .get_event(id)
        .await?
        .with_context(|| format!("no event {id} (events are kept for a limited time)"))?;
    let attempts = store.event_attempts(id).await?;
    let targets: Vec<Subscription> = match only {
        Some(sub_id) => {
            let sub = get_subscription(store, sub_id).await?;
            if sub.source != event.source {
                bail!(
                    "subscription {sub_id} belongs to source {}, not {}",
                    sub.source,
                    event.source
                );
            }
            vec![sub]
        }
        None => store
            .source_subscriptions(&event.source)
            .await?
            .into_iter()
            .filter(|s| s.enabled && matches_any(&s.events, &event.event_type))
            .collect(),
    };
    let queue = backend.queue()?;
    let mut queued = Vec::new();
    for sub in &targets {
        // The attempt number runs on from the last one, so x-relay-attempt never repeats.
        let last = attempts
            .iter()
            .filter(|a| a.subscription_id == sub.id)
            .map(|a| a.attempt)
            .max()
            .unwrap_or(0);
        let task = DeliveryTask {
            event: event.clone(),
            subscription_id: sub.id.clone(),
            attempt: last + 1,
            schedule_step: 0,
            not_before: 0,
        };
        queue.send_delivery(&task, 0).await?;
        queued.push(json!({ "subscription": sub.id, "attempt": task.attempt }));
    }
    emit(json_mode, &json!({ "event": id, "queued": queued }), || {
        format!("replaying {id} to {} subscription(s)", queued.len())
    });
    Ok(())
}

async fn redrive(
    backend: &Backend,
    json_mode: bool,
    queue: Option<RedriveQueue>,
) -> anyhow::Result<()> {
    let queues = match queue {
        Some(q) => vec![q],
        None => vec![RedriveQueue::Events, RedriveQueue::Deliveries],
    };
    let mut result = serde_json::Map::new();
    for q in queues {
        let name = match q {
            RedriveQueue::Events => "events",
            RedriveQueue::Deliveries => "deliveries",
        };
        let mut report = |moved: u64| {
            if !json_mode {
                eprintln!("{name}: {moved} moved so far");
            }
        };
        let moved = backend.redrive(q, &mut report).await?;
        result.insert(name.into(), json!(moved));
        if !json_mode {
            println!("{name}: {moved} message(s) moved back from the DLQ");
        }
    }
    if json_mode {
        println!("{}", Value::Object(result));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(millis_text(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(millis_text(1_763_900_000_123), "2025-11-23T12:13:20.123Z");
    }
}
