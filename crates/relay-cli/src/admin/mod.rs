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
use relay_core::ports::clock::{Clock, SystemClock};
use relay_core::providers::TokenOptions;

use crate::args::{
    Command, EventsCommand, Global, RedriveQueue, SourcesCommand, SubscriptionsCommand,
};
use crate::backend::Backend;
use crate::output::{emit, millis_text, provider_label, source_json, subscription_json, table};

mod events;
mod status;
mod subscriptions;

use events::events;
use status::status;
use subscriptions::subscriptions;

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
        Command::Dev(_) | Command::Console(_) | Command::Completions { .. } | Command::Man => {
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
            options,
            allow_weak_secret,
        } => {
            let input = NewSource {
                name,
                provider: provider.name.to_owned(),
                secrets,
                tolerance_secs: tolerance,
                allow_weak_secret,
                options: options.0,
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
