//! `relay replay`: one event again, or (without an event id) a bulk replay of what a
//! subscription or a source's subscriptions missed, through the core's use cases.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use relay_core::Store;
use relay_core::admin::bulk_replay::{
    self as core_bulk, BulkPlan, BulkReplay, BulkTarget, CONFIRM_ABOVE, Skipped,
};
use relay_core::admin::events as core_events;
use relay_core::domain::patterns;
use relay_core::ports::clock::{Clock, SystemClock};

use crate::args::ReplayArgs;
use crate::backend::Backend;
use crate::errors::{Kind, classified, usage};
use crate::output::emit;

/// How many event ids a dry run shows.
const DRY_RUN_SHOWN: usize = 20;

pub async fn run(
    backend: &Backend,
    store: &dyn Store,
    json_mode: bool,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    match &args.id {
        Some(id) => single(backend, store, json_mode, id, args.subscription.as_deref()).await,
        None => bulk(backend, store, json_mode, &args).await,
    }
}

async fn single(
    backend: &Backend,
    store: &dyn Store,
    json_mode: bool,
    id: &str,
    only: Option<&str>,
) -> anyhow::Result<()> {
    let bodies = backend.bodies();
    let plan =
        core_events::plan_replay_with_bodies(store, store, bodies.as_deref(), id, only).await?;
    // The queue is opened only once there is something to queue, as a missing queue URL is no
    // reason to hide that the event or subscription is unknown.
    let queue = backend.queue()?;
    let replayed = core_events::queue_replay(queue.as_ref(), &plan).await?;
    let queued: Vec<Value> = replayed
        .iter()
        .map(|r| json!({ "subscription": r.subscription_id, "attempt": r.attempt }))
        .collect();
    emit(json_mode, &json!({ "event": id, "queued": queued }), || {
        format!("replaying {id} to {} subscription(s)", queued.len())
    });
    Ok(())
}

/// The bulk request from the flags; usage errors for what is missing.
fn bulk_request(args: &ReplayArgs, now_millis: i64) -> anyhow::Result<BulkReplay> {
    let target = match (&args.subscription, &args.source) {
        (Some(id), None) => BulkTarget::Subscription(id.clone()),
        (None, Some(name)) => BulkTarget::Source(name.clone()),
        _ => {
            return Err(usage(
                "give an event id, or --subscription ID or --source NAME with --since for a \
                 bulk replay",
            ));
        }
    };
    let since = args.since.ok_or_else(|| {
        usage("a bulk replay needs --since (a duration back from now such as 2h, or an RFC 3339 time)")
    })?;
    let types = match &args.types {
        Some(list) => patterns::parse_list(list).map_err(|e| usage(format!("--type: {e}")))?,
        None => Vec::new(),
    };
    Ok(BulkReplay {
        target,
        since_millis: since.millis(now_millis),
        until_millis: args.until.map(|u| u.millis(now_millis)),
        status: args.status.filter(),
        types,
        now_millis,
    })
}

async fn bulk(
    backend: &Backend,
    store: &dyn Store,
    json_mode: bool,
    args: &ReplayArgs,
) -> anyhow::Result<()> {
    let request = bulk_request(args, SystemClock.now_millis())?;
    let mut search = Progress::new(json_mode, "events examined");
    let bodies = backend.bodies();
    let plan = core_bulk::plan_bulk_replay(store, store, bodies.as_deref(), &request, &mut |n| {
        search.at(n, None)
    })
    .await?;
    search.finish();
    if args.dry_run {
        let ids = plan.first_event_ids(DRY_RUN_SHOWN);
        let value = json!({
            "matched": plan.pairs.len(), "enqueued": 0, "dry_run": true,
            "event_ids": ids, "skipped": skipped_json(&plan.skipped),
        });
        emit(json_mode, &value, || dry_run_text(&plan, &ids));
        return Ok(());
    }
    if plan.needs_confirmation() && !args.yes {
        confirm(plan.pairs.len())?;
    }
    let queue = backend.queue()?;
    let total = plan.pairs.len() as u64;
    let mut sending = Progress::new(json_mode, "deliveries queued");
    let outcome = core_bulk::queue_bulk_replay(store, queue.as_ref(), &plan, &mut |n| {
        sending.at(n, Some(total))
    })
    .await?;
    sending.finish();
    let value = json!({
        "matched": outcome.matched, "enqueued": outcome.enqueued,
        "skipped": skipped_json(&outcome.skipped),
    });
    emit(json_mode, &value, || {
        let mut lines = vec![format!(
            "matched {} deliveries; queued {}",
            outcome.matched, outcome.enqueued
        )];
        lines.extend(outcome.skipped.iter().map(skipped_text));
        lines.join("\n")
    });
    Ok(())
}

fn dry_run_text(plan: &BulkPlan, ids: &[&str]) -> String {
    let events = plan.pairs.chunk_by(|a, b| a.event_id == b.event_id).count();
    let mut lines = vec![format!(
        "dry run: {} deliveries of {events} event(s) would be queued",
        plan.pairs.len()
    )];
    if !ids.is_empty() {
        lines.push(format!("first {} event(s), oldest first:", ids.len()));
        lines.extend(ids.iter().map(|id| format!("  {id}")));
    }
    lines.extend(plan.skipped.iter().map(skipped_text));
    lines.join("\n")
}

fn skipped_json(skipped: &[Skipped]) -> Value {
    skipped
        .iter()
        .map(|s| json!({ "subscription": s.subscription_id, "event": s.event_id, "reason": s.reason }))
        .collect()
}

fn skipped_text(skipped: &Skipped) -> String {
    match &skipped.event_id {
        Some(event) => format!(
            "skipped {event} to {}: {}",
            skipped.subscription_id, skipped.reason
        ),
        None => format!("skipped {}: {}", skipped.subscription_id, skipped.reason),
    }
}

/// Over `CONFIRM_ABOVE` deliveries: asks on a terminal, refuses elsewhere.
fn confirm(count: usize) -> anyhow::Result<()> {
    let why = format!("{count} deliveries match, more than {CONFIRM_ABOVE}");
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(usage(format!(
            "{why}: pass --yes to send them, or narrow the replay with --until or --type"
        )));
    }
    eprint!("{why}. Send them? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(classified(Kind::Conflict, "not confirmed: nothing sent"))
    }
}

/// A progress bar on a terminal's stderr, shown once the work has taken a second; nothing
/// with `--json` or when stderr is not a terminal.
struct Progress {
    shown: bool,
    started: Instant,
    label: &'static str,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(json_mode: bool, label: &'static str) -> Self {
        Self {
            shown: !json_mode && std::io::stderr().is_terminal(),
            started: Instant::now(),
            label,
            bar: None,
        }
    }

    fn at(&mut self, done: usize, total: Option<u64>) {
        if !self.shown || self.started.elapsed() < Duration::from_secs(1) {
            return;
        }
        let label = self.label;
        let bar = self.bar.get_or_insert_with(|| match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta} left)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner(),
        });
        bar.set_message(label);
        bar.set_position(done as u64);
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
