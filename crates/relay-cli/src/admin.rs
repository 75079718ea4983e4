//! The admin commands, over either backend: each maps its arguments onto the core's use case
//! (`relay_core::admin`), calls it, and prints the result.

use anyhow::anyhow;
use serde_json::{Value, json};

use relay_core::EventQuery;
use relay_core::Store;
use relay_core::admin::events::{self as core_events, EventDetail};
use relay_core::admin::redrive as core_redrive;
use relay_core::admin::sources::{self as core_sources, NewSource, SourceChange};
use relay_core::admin::status::{self as core_status, StatusReport};
use relay_core::admin::subscriptions::{
    self as core_subscriptions, Destinations, NewSubscription, SubscriptionChange,
};
use relay_core::clock::{Clock, SystemClock};
use relay_core::providers::TokenOptions;

use crate::args::{
    Command, EventsCommand, Global, RedriveQueue, SourcesCommand, SubscriptionsCommand,
};
use crate::backend::Backend;
use crate::output::{emit, millis_text, provider_label, source_json, subscription_json, table};

/// Prints a listing: a JSON array, or a table of `header` with one row per item (`empty` when
/// there is none).
fn emit_list<T>(
    json_mode: bool,
    items: &[T],
    to_json: impl Fn(&T) -> Value,
    empty: &str,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    let value = Value::Array(items.iter().map(&to_json).collect());
    emit(json_mode, &value, || {
        if items.is_empty() {
            return empty.into();
        }
        let rows: Vec<Vec<String>> = items.iter().map(row).collect();
        table(header, &rows)
    });
}

/// Prints that `what` named `name` was removed.
fn emit_removed(json_mode: bool, what: &str, name: &str) {
    emit(json_mode, &json!({ "removed": name }), || {
        format!("removed {what} {name}")
    });
}

pub async fn run(backend: &Backend, global: &Global, command: Command) -> anyhow::Result<()> {
    let json_mode = global.json;
    let store = backend.store();
    match command {
        Command::Dev(_) | Command::Completions { .. } | Command::Man => {
            Err(anyhow!("not an admin command"))
        }
        Command::Sources(cmd) => sources(store.as_ref(), json_mode, cmd).await,
        Command::Subscriptions(cmd) => {
            let resolver = crate::destinations::SystemResolver;
            let destinations = crate::destinations::for_backend(backend, global, &resolver);
            subscriptions(store.as_ref(), &destinations, json_mode, cmd).await
        }
        Command::Events(cmd) => {
            events(store.as_ref(), backend.bodies().as_deref(), json_mode, cmd).await
        }
        Command::Replay(args) => {
            crate::recover::run(backend, store.as_ref(), json_mode, args).await
        }
        Command::Redrive { queue } => redrive(backend, json_mode, queue).await,
        Command::Status => status(backend, store.as_ref(), json_mode).await,
        Command::Reconcile {
            source,
            since,
            dry_run,
        } => crate::reconcile::run(backend, global, &source, &since, dry_run).await,
    }
}

fn now_secs() -> i64 {
    SystemClock.now_secs()
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
            allow_weak_secret,
        } => {
            let input = NewSource {
                name,
                provider: provider.name.to_owned(),
                secrets,
                tolerance_secs: tolerance,
                allow_weak_secret,
                options: crate::args::provider_options(
                    *hmac,
                    public_url,
                    token_param,
                    token_header,
                ),
            };
            let source = core_sources::add_source(store, input, now_secs()).await?;
            emit(json_mode, &source_json(&source), || {
                let name = &source.name;
                let mut text = format!("added source {name}: providers POST to /{name}");
                let token = source.provider.options::<TokenOptions>();
                if let Some(TokenOptions {
                    token_header: None,
                    token_param,
                }) = token
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
            let list = core_sources::list_sources(store).await?;
            emit_list(
                json_mode,
                &list,
                source_json,
                "no sources",
                &["name", "provider", "secrets"],
                |s| {
                    vec![
                        s.name.clone(),
                        provider_label(&s.provider),
                        s.secrets.len().to_string(),
                    ]
                },
            );
        }
        SourcesCommand::Remove { name, cascade } => {
            core_sources::remove_source(store, &name, cascade).await?;
            emit_removed(json_mode, "source", &name);
        }
        SourcesCommand::Update {
            name,
            add_secret,
            remove_secret,
            tolerance,
            public_url,
            reconcile,
            allow_weak_secret,
        } => {
            let change = SourceChange {
                add_secrets: add_secret,
                allow_weak_secret,
                remove_secrets: remove_secret,
                tolerance_secs: tolerance,
                public_url,
                reconcile: reconcile.change(),
            };
            let source = core_sources::update_source(store, &name, change).await?;
            emit(json_mode, &source_json(&source), || {
                format!("updated source {name}")
            });
        }
    }
    Ok(())
}

async fn subscriptions(
    store: &dyn Store,
    destinations: &Destinations<'_>,
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
            filter,
        } => {
            // A bad filter is a usage error (exit 2), found before any lookup.
            let filter = crate::filters::read_filter(&filter)?;
            core_subscriptions::check_destination(&url, destinations).await?;
            let input = NewSubscription {
                source,
                url,
                events,
                secret,
                headers,
                filter,
            };
            let sub = core_subscriptions::add_subscription(store, input, now_secs()).await?;
            let secret = sub
                .secrets
                .first()
                .map(|s| s.secret.clone())
                .unwrap_or_default();
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
            let list = core_subscriptions::list_subscriptions(store, source.as_deref()).await?;
            emit_list(
                json_mode,
                &list,
                subscription_json,
                "no subscriptions",
                &["id", "source", "url", "events", "state", "filter"],
                |s| {
                    let state = if s.enabled {
                        "enabled".to_owned()
                    } else {
                        format!(
                            "disabled ({})",
                            s.disabled_reason.as_deref().unwrap_or("by hand")
                        )
                    };
                    vec![
                        s.id.clone(),
                        s.source.clone(),
                        s.url.clone(),
                        s.events.join(","),
                        state,
                        s.filter
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |f| f.to_string()),
                    ]
                },
            );
        }
        SubscriptionsCommand::Remove { id } => {
            core_subscriptions::remove_subscription(store, &id).await?;
            emit_removed(json_mode, "subscription", &id);
        }
        SubscriptionsCommand::Disable { id } => {
            let sub = core_subscriptions::set_enabled(store, &id, false).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("disabled subscription {id}")
            });
        }
        SubscriptionsCommand::Enable { id } => {
            let sub = core_subscriptions::set_enabled(store, &id, true).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("enabled subscription {id}")
            });
        }
        SubscriptionsCommand::TestFilter { id, event, body } => {
            crate::filters::test_filter(store, json_mode, &id, event, body).await?;
        }
        SubscriptionsCommand::Update {
            id,
            url,
            events,
            headers,
            no_headers,
            filter,
            no_filter,
        } => {
            let filter = match crate::filters::read_filter(&filter)? {
                Some(filter) => Some(Some(filter)),
                None => no_filter.then_some(None),
            };
            let headers = if no_headers {
                Some(Vec::new())
            } else {
                (!headers.is_empty()).then_some(headers)
            };
            let change = SubscriptionChange {
                url,
                events,
                filter,
                headers,
            };
            if change.is_empty() {
                return Err(crate::errors::usage(
                    "nothing to change: give --url, --events, --filter, --filter-file, --no-filter, --header or --no-headers",
                ));
            }
            if let Some(url) = &change.url {
                core_subscriptions::check_destination(url, destinations).await?;
            }
            let sub = core_subscriptions::update_subscription(store, &id, change).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("updated subscription {}", sub.id)
            });
        }
        SubscriptionsCommand::RotateSecret { id, keep_old } => {
            let keep = crate::when::duration(&keep_old)
                .map_err(|e| crate::errors::usage(format!("--keep-old: {e}")))?;
            let rotated = core_subscriptions::rotate_secret(store, &id, keep, now_secs()).await?;
            let secret = &rotated.secret;
            let mut value = subscription_json(&rotated.subscription);
            value["secret"] = json!(secret);
            value["old_secrets_expire_at"] = json!(rotated.old_secrets_expire_at);
            emit(json_mode, &value, || {
                format!("new signing secret: {secret}\nthe old secret keeps signing for {keep_old}")
            });
        }
    }
    Ok(())
}

async fn events(
    store: &dyn Store,
    bodies: Option<&dyn relay_core::BodyStore>,
    json_mode: bool,
    cmd: EventsCommand,
) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List {
            limit,
            before,
            source,
            types,
            subscription,
            status,
            since,
            until,
        } => {
            let now_millis = SystemClock.now_millis();
            let types = match types {
                Some(list) => relay_core::patterns::parse_list(&list)
                    .map_err(|e| crate::errors::usage(format!("--type: {e}")))?,
                None => Vec::new(),
            };
            let mut query = EventQuery {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
                before,
                source,
                types,
                since_millis: since.map(|w| w.millis(now_millis)),
                until_millis: until.map(|w| w.millis(now_millis)),
                ..EventQuery::newest(0, now_millis)
            };
            if let Some(id) = subscription {
                let filter_status = status.and_then(crate::args::StatusArg::filter);
                query = core_events::subscription_query(store, query, &id, filter_status).await?;
            }
            let page = core_events::list_events(store, &query).await?;
            let next_cursor = page.next.as_ref().map(ToString::to_string);
            let filtered = query.delivery.as_ref().map(|d| d.subscription_id.as_str());
            let with_state = filtered.is_some();
            let value = json!({
                "events": page.events.iter()
                    .map(|e| {
                        let mut value = json!({ "id": e.id, "source": e.source,
                            "type": e.event_type, "received_at": e.received_at,
                            "bytes": e.body_bytes });
                        if let Some(state) = e.delivery {
                            value["state"] = json!(state.as_str());
                            value["attempts"] = json!(e.attempts.iter()
                                .filter(|a| Some(a.subscription_id.as_str()) == filtered)
                                .count());
                        }
                        value
                    })
                    .collect::<Vec<_>>(),
                "next_cursor": next_cursor,
            });
            emit(json_mode, &value, || {
                if page.events.is_empty() {
                    return "no events".into();
                }
                let mut header = vec!["id", "received", "source", "type"];
                if with_state {
                    header.push("state");
                }
                let rows: Vec<Vec<String>> = page
                    .events
                    .iter()
                    .map(|e| {
                        let mut row = vec![
                            e.id.clone(),
                            millis_text(e.received_at),
                            e.source.clone(),
                            e.event_type.clone(),
                        ];
                        if with_state {
                            row.push(e.delivery.map_or("-", |s| s.as_str()).to_owned());
                        }
                        row
                    })
                    .collect();
                let mut lines = vec![table(&header, &rows)];
                if let Some(cursor) = &next_cursor {
                    lines.push(format!("next page: --before {cursor}"));
                }
                lines.join("\n")
            });
        }
        EventsCommand::Show { id } => {
            let EventDetail { event, attempts } = core_events::show_event(store, &id).await?;
            // A body kept in the body store is read back (and checked) to be shown; one gone
            // (expired, deleted) is shown as such, with its claim check.
            let claim = event.stored_body.clone();
            let (event, body_error) = match &event.stored_body {
                None => (event, None),
                Some(_) => match relay_core::bodies::read_body(bodies, &event).await {
                    Ok(body) => (relay_core::bodies::with_inline_body(&event, &body), None),
                    Err(e) => (event, Some(e.to_string())),
                },
            };
            let value = json!({
                "id": event.id, "source": event.source, "type": event.event_type,
                "content_type": event.content_type, "received_at": event.received_at,
                "body": event.body, "body_encoding": event.body_encoding,
                "stored_body": claim, "body_error": body_error,
                "reconciled": event.reconciled,
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
                    ) + if event.reconciled {
                        "  (reconciled from the API)"
                    } else {
                        ""
                    },
                ];
                if let Some(claim) = &claim {
                    lines.push(format!(
                        "body: {} bytes, stored as {} (sha256 {}){}",
                        claim.bytes,
                        claim.key,
                        claim.sha256,
                        body_error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ));
                }
                lines.push(format!("attempts: {}", attempts.len()));
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

async fn redrive(
    backend: &Backend,
    json_mode: bool,
    queue: Option<RedriveQueue>,
) -> anyhow::Result<()> {
    let named = queue.map(|q| match q {
        RedriveQueue::Events => core_redrive::RedriveQueue::Events,
        RedriveQueue::Deliveries => core_redrive::RedriveQueue::Deliveries,
    });
    let consumer = backend.consumer();
    let mut result = serde_json::Map::new();
    core_redrive::redrive(consumer.as_ref(), named, |q, moved| {
        result.insert(q.name().into(), json!(moved));
        if !json_mode {
            crate::output::print_line(&format!(
                "{}: {moved} message(s) moved back from the DLQ",
                q.name()
            ));
        }
    })
    .await?;
    if json_mode {
        crate::output::print_line(&Value::Object(result).to_string());
    }
    Ok(())
}

async fn status(backend: &Backend, store: &dyn Store, json_mode: bool) -> anyhow::Result<()> {
    let consumer = backend.consumer();
    let activity = backend.activity();
    let report = core_status::status(
        consumer.as_ref(),
        store,
        activity.as_deref(),
        SystemClock.now_millis(),
    )
    .await?;
    emit(json_mode, &status_json(&report), || status_text(&report));
    Ok(())
}

fn status_json(report: &StatusReport) -> Value {
    let queues: serde_json::Map<String, Value> = report
        .queues
        .iter()
        .map(|q| {
            let d = q.depth;
            let value = json!({ "visible": d.visible, "in_flight": d.in_flight,
                                "delayed": d.delayed, "oldest_age_secs": d.oldest_age_secs });
            (q.queue.as_str().to_owned(), value)
        })
        .collect();
    let subscriptions: Vec<Value> = report
        .attention
        .iter()
        .map(|s| {
            let refused = s
                .refused
                .as_ref()
                .map(|r| json!({ "since": r.since, "reason": r.reason }));
            json!({ "id": s.id, "source": s.source, "url": s.url, "enabled": s.enabled,
                    "failing_since": s.failing_since, "disabled_reason": s.disabled_reason,
                    "refused": refused })
        })
        .collect();
    let (last_hour, last_hour_error) = match &report.last_hour {
        Ok(counts) => (json!(counts), Value::Null),
        Err(reason) => (Value::Null, json!(reason)),
    };
    json!({
        "at": report.at_millis,
        "queues": queues,
        "subscriptions": subscriptions,
        "weak_secrets": report.weak_secrets.iter()
            .map(|(source, count)| json!({ "source": source, "secrets": count }))
            .collect::<Vec<_>>(),
        "last_hour": last_hour,
        "last_hour_error": last_hour_error,
    })
}

/// `95s`, `12m`, `3h`, `2d`: precise enough to see what is stuck.
fn age_text(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs}s"),
        120..7_200 => format!("{}m", secs / 60),
        7_200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn status_text(report: &StatusReport) -> String {
    let mut lines = vec![format!(
        "{:<16}{:>9}{:>11}{:>9}  oldest",
        "queue", "visible", "in flight", "delayed"
    )];
    for q in &report.queues {
        let d = q.depth;
        let oldest = d.oldest_age_secs.map_or_else(|| "-".to_owned(), age_text);
        lines.push(format!(
            "{:<16}{:>9}{:>11}{:>9}  {oldest}",
            q.queue.as_str(),
            d.visible,
            d.in_flight,
            d.delayed
        ));
    }
    lines.push(String::new());
    if report.attention.is_empty() {
        lines.push("subscriptions: none failing, disabled or refused".to_owned());
    } else {
        lines.push(format!(
            "subscriptions failing, disabled or refused: {}",
            report.attention.len()
        ));
        let now_secs = report.at_millis.div_euclid(1000);
        let since_text = |since: i64| {
            let age = u64::try_from(now_secs.saturating_sub(since)).unwrap_or(0);
            format!(
                "since {} ({} ago)",
                millis_text(since.saturating_mul(1000)),
                age_text(age)
            )
        };
        let rows: Vec<Vec<String>> = report
            .attention
            .iter()
            .map(|s| {
                let mut state = Vec::new();
                if !s.enabled {
                    state.push(format!(
                        "disabled: {}",
                        s.disabled_reason.as_deref().unwrap_or("by hand")
                    ));
                } else if let Some(since) = s.failing_since {
                    state.push(format!("failing {}", since_text(since)));
                }
                if let Some(refused) = &s.refused {
                    state.push(format!(
                        "deliveries refused {}: {}",
                        since_text(refused.since),
                        refused.reason
                    ));
                }
                vec![
                    s.id.clone(),
                    s.source.clone(),
                    s.url.clone(),
                    state.join("; "),
                ]
            })
            .collect();
        lines.push(table(&["subscription", "source", "url", "state"], &rows));
    }
    for (source, count) in &report.weak_secrets {
        lines.push(format!(
            "warning: source {source} has {count} secret(s) weaker than its provider issues \
             (accepted with --allow-weak-secret); rotate with relay sources update {source} \
             --add-secret"
        ));
    }
    lines.push(String::new());
    lines.push(match &report.last_hour {
        Ok(c) => format!(
            "last hour: {} accepted, {} delivered, {} failed",
            c.accepted, c.delivered, c.failed
        ),
        Err(reason) => format!("last hour: not available ({reason})"),
    });
    lines.join("\n")
}
