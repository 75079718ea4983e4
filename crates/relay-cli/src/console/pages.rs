//! The console's pages and actions: each maps its parameters onto the core's admin use case
//! (`relay_core::admin`), as the CLI commands do, and hands the template what it shows.
//! Secrets never reach a template, except a rotated subscription secret on the one answer to
//! the rotation (as `relay subscriptions rotate-secret` prints it once).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};
use serde_json::{Value, json};

use relay_core::EventQuery;
use relay_core::admin::activity;
use relay_core::admin::bulk_replay::{self as core_bulk, BulkReplay, BulkTarget};
use relay_core::admin::events::{self as core_events, EventDetail};
use relay_core::admin::redrive::{self as core_redrive, RedriveQueue};
use relay_core::admin::sources as core_sources;
use relay_core::admin::status::{self as core_status, RECENT_WINDOW_MILLIS};
use relay_core::admin::subscriptions as core_subscriptions;
use relay_core::domain::model::{AttemptRecord, BodyEncoding};
use relay_core::domain::search::StatusFilter;
use relay_core::ports::QueueName;
use relay_core::ports::clock::{Clock, SystemClock};

use super::{Console, PREFIX, chart, redirect};
use crate::errors::Kind;
use crate::output::{millis_text, provider_label, source_json, subscription_json};
use crate::when::When;

/// Events per page of the events list.
const PAGE_SIZE: usize = 25;
/// Events the live view shows.
const LIVE_EVENTS: usize = 15;
/// A body longer than this is shown cut, with its download link.
const SHOWN_BODY_BYTES: usize = 64 * 1024;
/// How many of a bulk replay's event ids the dry run lists.
const DRY_RUN_SHOWN: usize = 20;
/// Minutes in the overview's chart.
const CHART_MINUTES: usize = (RECENT_WINDOW_MILLIS / 60_000) as usize;

/// A page to render, or an answer made already.
pub enum Reply {
    Page {
        template: &'static str,
        context: Value,
    },
    Response(Response),
}

fn page(template: &'static str, context: Value) -> Result<Reply, PageError> {
    Ok(Reply::Page { template, context })
}

/// An error shown in the page, with the HTTP status of its class.
#[derive(Debug)]
pub struct PageError {
    pub status: u16,
    pub message: String,
}

impl PageError {
    pub fn not_found(path: &str) -> Self {
        Self {
            status: 404,
            message: format!("no console page at {path}"),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for PageError {
    fn from(error: E) -> Self {
        let error = error.into();
        let status = match Kind::of(&error) {
            Kind::Usage | Kind::Invalid => 400,
            Kind::NotFound => 404,
            Kind::Conflict => 409,
            Kind::Unavailable => 503,
            Kind::Internal => 500,
        };
        Self {
            status,
            message: format!("{error:#}"),
        }
    }
}

/// Query or form parameters; an empty value counts as not given.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn from_query(query: Option<&str>) -> Self {
        Self::from_form(query.unwrap_or_default().as_bytes())
    }

    pub fn from_form(bytes: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(bytes)
                .filter(|(_, value)| !value.trim().is_empty())
                .map(|(key, value)| (key.into_owned(), value.trim().to_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn when(&self, name: &str, now_millis: i64) -> Result<Option<i64>, PageError> {
        self.get(name)
            .map(|text| {
                text.parse::<When>()
                    .map(|when| when.millis(now_millis))
                    .map_err(|e| PageError::invalid(format!("{name}: {e}")))
            })
            .transpose()
    }
}

fn now_millis() -> i64 {
    SystemClock.now_millis()
}

fn time_text(millis: i64) -> String {
    millis_text(millis)
}

/// A subscription's health in a few words, as `relay status` says it.
fn health(sub: &Value) -> String {
    if sub["enabled"] == json!(false) {
        let reason = sub["disabled_reason"].as_str().unwrap_or("by hand");
        return format!("disabled: {reason}");
    }
    let mut parts = Vec::new();
    if let Some(since) = sub["failing_since"].as_i64() {
        parts.push(format!(
            "failing since {}",
            time_text(since.saturating_mul(1000))
        ));
    }
    if let Some(reason) = sub["refused"]["reason"].as_str() {
        parts.push(format!("deliveries refused: {reason}"));
    }
    if parts.is_empty() {
        "healthy".to_owned()
    } else {
        parts.join("; ")
    }
}

pub async fn overview(console: &Console) -> Result<Reply, PageError> {
    let backend = &console.backend;
    let store = backend.store();
    let consumer = backend.consumer();
    let activity_source = backend.activity();
    let now = now_millis();
    let report = core_status::status(
        consumer.as_ref(),
        store.as_ref(),
        activity_source.as_deref(),
        now,
    )
    .await?;
    let queues: Vec<Value> = report
        .queues
        .iter()
        .map(|q| {
            let d = q.depth;
            json!({
                "name": q.queue.as_str(), "visible": d.visible, "in_flight": d.in_flight,
                "delayed": d.delayed, "dead_letters": q.queue.source_queue().is_some(),
                "oldest": d.oldest_age_secs.map(|s| format!("{s} s")),
            })
        })
        .collect();
    let attention: Vec<Value> = report
        .attention
        .iter()
        .map(|s| {
            let value = json!({
                "id": s.id, "source": s.source, "url": s.url, "enabled": s.enabled,
                "disabled_reason": s.disabled_reason, "failing_since": s.failing_since,
                "refused": s.refused.as_ref().map(|r| json!({ "reason": r.reason })),
            });
            json!({ "id": s.id, "source": s.source, "url": s.url, "health": health(&value) })
        })
        .collect();
    let (last_hour, chart, activity_error) = match (&report.last_hour, activity_source) {
        (Ok(counts), Some(source)) => {
            match activity::per_minute(source.as_ref(), now, CHART_MINUTES).await {
                Ok(minutes) => (json!(counts), Some(chart::render(&minutes)), None),
                Err(e) => (json!(counts), None, Some(e.to_string())),
            }
        }
        (Ok(counts), None) => (json!(counts), None, None),
        (Err(reason), _) => (Value::Null, None, Some(reason.clone())),
    };
    let weak: Vec<Value> = report
        .weak_secrets
        .iter()
        .map(|(source, count)| json!({ "source": source, "count": count }))
        .collect();
    page(
        "overview.html",
        json!({
            "nav": "overview", "at": time_text(now), "queues": queues,
            "attention": attention, "last_hour": last_hour, "chart": chart,
            "activity_error": activity_error, "weak_secrets": weak,
        }),
    )
}

pub async fn sources(console: &Console) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let list = core_sources::list_sources(store.as_ref()).await?;
    // source_json counts secrets and never holds one.
    let rows: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut value = source_json(s);
            value["label"] = json!(provider_label(&s.provider));
            value["options_text"] = json!(value["options"].to_string());
            value
        })
        .collect();
    page("sources.html", json!({ "nav": "sources", "sources": rows }))
}

pub async fn subscriptions(console: &Console) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let list = core_subscriptions::list_subscriptions(store.as_ref(), None).await?;
    // subscription_json names header keys only and counts secrets.
    let rows: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut value = subscription_json(s);
            value["health"] = json!(health(&value));
            value["filter_text"] = s
                .filter
                .as_ref()
                .map_or(Value::Null, |f| json!(f.to_string()));
            value
        })
        .collect();
    page(
        "subscriptions.html",
        json!({ "nav": "subscriptions", "subscriptions": rows }),
    )
}

pub async fn set_enabled(console: &Console, id: &str, enabled: bool) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let sub = core_subscriptions::set_enabled(store.as_ref(), id, enabled).await?;
    let verb = if enabled { "enabled" } else { "disabled" };
    result(
        format!("{verb} subscription {}", sub.id),
        vec![],
        None,
        &[("subscriptions", format!("{PREFIX}/subscriptions"))],
    )
}

pub async fn rotate(console: &Console, id: &str, form: &Params) -> Result<Reply, PageError> {
    let keep_text = form.get("keep_old").unwrap_or("24h");
    let keep = crate::when::duration(keep_text)
        .map_err(|e| PageError::invalid(format!("keep old secret for: {e}")))?;
    let store = console.backend.store();
    let rotated =
        core_subscriptions::rotate_secret(store.as_ref(), id, keep, now_millis() / 1000).await?;
    result(
        format!("rotated the signing secret of subscription {id}"),
        vec![format!("the old secret keeps signing for {keep_text}")],
        Some(rotated.secret),
        &[("subscriptions", format!("{PREFIX}/subscriptions"))],
    )
}

/// The answer to an action: what was done, and (once, for a rotation) a new secret.
fn result(
    title: String,
    lines: Vec<String>,
    secret: Option<String>,
    links: &[(&str, String)],
) -> Result<Reply, PageError> {
    let links: Vec<Value> = links
        .iter()
        .map(|(label, href)| json!({ "label": label, "href": href }))
        .collect();
    page(
        "result.html",
        json!({ "title": title, "lines": lines, "secret": secret, "links": links }),
    )
}

/// The events list's query from the page's parameters, as `relay events list` builds it.
async fn event_query(
    console: &Console,
    params: &Params,
    now: i64,
) -> Result<EventQuery, PageError> {
    let types = match params.get("type") {
        Some(list) => relay_core::domain::patterns::parse_list(list)
            .map_err(|e| PageError::invalid(format!("type: {e}")))?,
        None => Vec::new(),
    };
    let before = params
        .get("before")
        .map(|c| c.parse::<relay_core::EventCursor>())
        .transpose()
        .map_err(|_| PageError::invalid("before: not a cursor of this list"))?;
    let query = EventQuery {
        limit: PAGE_SIZE,
        before,
        source: params.get("source").map(str::to_owned),
        types,
        since_millis: params.when("since", now)?,
        until_millis: params.when("until", now)?,
        ..EventQuery::newest(0, now)
    };
    let Some(id) = params.get("subscription") else {
        if params.get("status").is_some() {
            return Err(PageError::invalid(
                "status: choose a subscription too (a status is a subscription's)",
            ));
        }
        return Ok(query);
    };
    let status = params
        .get("status")
        .map(|s| s.parse::<StatusFilter>())
        .transpose()
        .map_err(PageError::invalid)?;
    let store = console.backend.store();
    Ok(core_events::subscription_query(store.as_ref(), query, id, status).await?)
}

pub async fn events(console: &Console, params: &Params) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let now = now_millis();
    let mut notice = None;
    if let Some(wanted) = params.get("q") {
        match find_event(console, wanted, params.get("source"), now).await? {
            Some(id) => {
                return Ok(Reply::Response(redirect(&format!(
                    "{PREFIX}/events/{}",
                    path_segment(&id)
                ))));
            }
            None => notice = Some(format!("no event id or provider delivery id {wanted}")),
        }
    }
    let query = event_query(console, params, now).await?;
    let page_of = core_events::list_events(store.as_ref(), &query).await?;
    let rows: Vec<Value> = page_of
        .events
        .iter()
        .map(|e| {
            json!({ "id": e.id, "source": e.source, "type": e.event_type,
                    "received": time_text(e.received_at), "bytes": e.body_bytes,
                    "state": e.delivery.map(|s| s.as_str()) })
        })
        .collect();
    let filters = ["source", "subscription", "type", "status", "since", "until"];
    let kept: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|name| params.get(name).map(|v| (*name, v)))
        .collect();
    let next = page_of.next.as_ref().map(|cursor| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(kept.iter().copied());
        query.append_pair("before", &cursor.to_string());
        format!("{PREFIX}/events?{}", query.finish())
    });
    let sources = core_sources::list_sources(store.as_ref()).await?;
    let subscriptions = core_subscriptions::list_subscriptions(store.as_ref(), None).await?;
    let form: HashMap<&str, &str> = kept.iter().copied().collect();
    page(
        "events.html",
        json!({
            "nav": "events", "events": rows, "next": next, "notice": notice,
            "form": form, "first_page": params.get("before").is_none(),
            "sources": sources.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "subscriptions": subscriptions.iter()
                .map(|s| json!({ "id": s.id, "source": s.source, "url": s.url }))
                .collect::<Vec<_>>(),
            "statuses": StatusFilter::ALL.map(StatusFilter::as_str),
        }),
    )
}

/// An event by its id, else by a provider delivery id of `source` (or of any source).
async fn find_event(
    console: &Console,
    wanted: &str,
    source: Option<&str>,
    now: i64,
) -> Result<Option<String>, PageError> {
    let store = console.backend.store();
    if store.get_event(wanted).await?.is_some() {
        return Ok(Some(wanted.to_owned()));
    }
    let names = match source {
        Some(name) => vec![name.to_owned()],
        None => core_sources::list_sources(store.as_ref())
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect(),
    };
    for name in names {
        if let Some(id) = store.claimed_event_id(&name, wanted, now / 1000).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Ids are plain, but a path segment is escaped all the same.
fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The body as shown: pretty JSON, else text; cut at `SHOWN_BODY_BYTES`.
fn shown_body(bytes: &[u8]) -> (String, &'static str, bool) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (
            format!("{} bytes of binary data: download to see them", bytes.len()),
            "binary",
            true,
        );
    };
    let (shown, kind) = match serde_json::from_str::<Value>(text) {
        Ok(value) => (
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_owned()),
            "json",
        ),
        Err(_) => (text.to_owned(), "raw"),
    };
    if shown.len() <= SHOWN_BODY_BYTES {
        return (shown, kind, false);
    }
    let mut cut = SHOWN_BODY_BYTES;
    while !shown.is_char_boundary(cut) {
        cut -= 1;
    }
    (shown[..cut].to_owned(), kind, true)
}

fn attempt_json(a: &AttemptRecord) -> Value {
    json!({
        "attempt": a.attempt, "at": time_text(a.at), "outcome": a.outcome.as_str(),
        "ok": a.outcome == relay_core::domain::model::AttemptOutcome::Ok,
        "status": a.status, "latency_ms": a.latency_ms,
        "response": a.response_excerpt, "next": a.next.as_str(),
    })
}

pub async fn event(console: &Console, id: &str) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let EventDetail { event, attempts } = core_events::show_event(store.as_ref(), id).await?;
    let bytes = event
        .body_bytes()
        .map_err(|e| PageError::from(anyhow::anyhow!("the stored body cannot be read: {e}")))?;
    let (body, body_kind, truncated) = shown_body(&bytes);
    // The timeline: each subscription's attempts, in the order the log holds them.
    let mut order: Vec<&str> = Vec::new();
    for a in &attempts {
        if !order.contains(&a.subscription_id.as_str()) {
            order.push(&a.subscription_id);
        }
    }
    let subscriptions =
        core_subscriptions::list_subscriptions(store.as_ref(), Some(&event.source)).await?;
    let timelines: Vec<Value> = order
        .iter()
        .map(|sub_id| {
            let log: Vec<Value> = attempts
                .iter()
                .filter(|a| a.subscription_id == *sub_id)
                .map(attempt_json)
                .collect();
            let state = relay_core::domain::search::DeliveryState::of(&attempts, sub_id);
            let url = subscriptions
                .iter()
                .find(|s| s.id == *sub_id)
                .map(|s| s.url.clone());
            json!({ "subscription": sub_id, "url": url, "state": state.as_str(), "attempts": log })
        })
        .collect();
    let headers = vec![
        json!({ "name": "content-type", "value": event.content_type }),
        json!({ "name": "webhook-id", "value": event.id }),
        json!({ "name": "x-relay-source", "value": event.source }),
        json!({ "name": "x-relay-event-type", "value": event.event_type }),
    ];
    page(
        "event.html",
        json!({
            "nav": "events", "id": event.id, "id_path": path_segment(&event.id),
            "source": event.source, "type": event.event_type,
            "received": time_text(event.received_at), "reconciled": event.reconciled,
            "bytes": bytes.len(), "encoding": match event.body_encoding {
                BodyEncoding::Utf8 => "utf-8", BodyEncoding::Base64 => "base64" },
            "headers": headers, "body": body, "body_kind": body_kind, "truncated": truncated,
            "timelines": timelines,
            "subscriptions": subscriptions.iter()
                .map(|s| json!({ "id": s.id, "url": s.url, "enabled": s.enabled }))
                .collect::<Vec<_>>(),
        }),
    )
}

pub async fn event_body(console: &Console, id: &str) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let EventDetail { event, .. } = core_events::show_event(store.as_ref(), id).await?;
    let bytes = event
        .body_bytes()
        .map_err(|e| PageError::from(anyhow::anyhow!("the stored body cannot be read: {e}")))?
        .into_owned();
    let mut response = Response::new(Body::from(bytes));
    // Downloaded, never rendered: whatever it holds cannot run as the console's page.
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let name: String = event
        .id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.body\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(Reply::Response(response))
}

pub async fn replay(console: &Console, id: &str, form: &Params) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let only = form.get("subscription");
    let plan = core_events::plan_replay(store.as_ref(), store.as_ref(), id, only).await?;
    let queue = console.backend.queue()?;
    let replayed = core_events::queue_replay(queue.as_ref(), &plan).await?;
    let lines = replayed
        .iter()
        .map(|r| format!("subscription {}: attempt {}", r.subscription_id, r.attempt))
        .collect();
    result(
        format!("replaying {id} to {} subscription(s)", replayed.len()),
        lines,
        None,
        &[("the event", format!("{PREFIX}/events/{}", path_segment(id)))],
    )
}

/// The bulk replay a recover form asks for.
fn bulk_request(form: &Params, now: i64) -> Result<BulkReplay, PageError> {
    let id = form
        .get("subscription")
        .ok_or_else(|| PageError::invalid("choose a subscription"))?;
    let since = form
        .when("since", now)?
        .ok_or_else(|| PageError::invalid("since: give a time or a duration back from now"))?;
    let status = match form.get("status").unwrap_or("failed") {
        "any" => None,
        other => Some(other.parse::<StatusFilter>().map_err(PageError::invalid)?),
    };
    Ok(BulkReplay {
        target: BulkTarget::Subscription(id.to_owned()),
        since_millis: since,
        until_millis: form.when("until", now)?,
        status,
        types: Vec::new(),
        now_millis: now,
    })
}

/// Runs `make`'s future on a blocking thread of the runtime. The bulk replay's futures are not
/// `Send` as far as the compiler can prove (its stream combinators over borrowed slices hit
/// rustc's higher-ranked lifetime limits), and a server's handler must be.
async fn off_worker<T, F, Fut>(make: F) -> Result<T, PageError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, PageError>>,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(make()))
        .await
        .map_err(|e| PageError::from(anyhow::anyhow!("the bulk replay stopped: {e}")))?
}

pub async fn recover(console: &Console, params: &Params) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let consumer = console.backend.consumer();
    let subscriptions = core_subscriptions::list_subscriptions(store.as_ref(), None).await?;
    let mut dead_letters = Vec::new();
    for (queue, redrive) in [
        (QueueName::EventsDlq, "events"),
        (QueueName::DeliveriesDlq, "deliveries"),
    ] {
        let depth = consumer.depth(queue).await.map_err(PageError::from)?;
        dead_letters.push(json!({ "queue": queue.as_str(), "redrive": redrive,
                                  "messages": depth.total() }));
    }
    let mut dry_run = Value::Null;
    if params.get("subscription").is_some() {
        let request = bulk_request(params, now_millis())?;
        let store = Arc::clone(&store);
        let plan = off_worker(move || async move {
            core_bulk::plan_bulk_replay(store.as_ref(), store.as_ref(), &request, &mut |_| {})
                .await
                .map_err(PageError::from)
        })
        .await?;
        let events = plan.pairs.chunk_by(|a, b| a.event_id == b.event_id).count();
        dry_run = json!({
            "deliveries": plan.pairs.len(), "events": events,
            "first_ids": plan.first_event_ids(DRY_RUN_SHOWN),
            "skipped": plan.skipped.iter().map(|s| s.reason.clone()).collect::<Vec<_>>(),
        });
    }
    let form: HashMap<&str, &str> = ["subscription", "since", "until", "status"]
        .iter()
        .filter_map(|name| params.get(name).map(|v| (*name, v)))
        .collect();
    page(
        "recover.html",
        json!({
            "nav": "recover", "form": form, "dry_run": dry_run, "dead_letters": dead_letters,
            "subscriptions": subscriptions.iter()
                .map(|s| json!({ "id": s.id, "source": s.source, "url": s.url,
                                 "health": health(&subscription_json(s)) }))
                .collect::<Vec<_>>(),
        }),
    )
}

pub async fn recover_send(console: &Console, form: &Params) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let request = bulk_request(form, now_millis())?;
    let queue = console.backend.queue()?;
    let outcome = off_worker(move || async move {
        let plan =
            core_bulk::plan_bulk_replay(store.as_ref(), store.as_ref(), &request, &mut |_| {})
                .await?;
        Ok::<_, PageError>(
            core_bulk::queue_bulk_replay(store.as_ref(), queue.as_ref(), &plan, &mut |_| {})
                .await?,
        )
    })
    .await?;
    let mut lines = vec![format!("queued {} deliveries", outcome.enqueued)];
    lines.extend(outcome.skipped.iter().map(|s| match &s.event_id {
        Some(event) => format!("skipped {event}: {}", s.reason),
        None => format!("skipped: {}", s.reason),
    }));
    result(
        format!(
            "matched {} deliveries; queued {}",
            outcome.matched, outcome.enqueued
        ),
        lines,
        None,
        &[
            ("recover", format!("{PREFIX}/recover")),
            ("events", format!("{PREFIX}/events")),
        ],
    )
}

pub async fn redrive(console: &Console, form: &Params) -> Result<Reply, PageError> {
    let named = match form.get("queue") {
        Some("events") => Some(RedriveQueue::Events),
        Some("deliveries") => Some(RedriveQueue::Deliveries),
        None | Some("both") => None,
        Some(other) => {
            return Err(PageError::invalid(format!(
                "queue: {other:?} is not events, deliveries or both"
            )));
        }
    };
    let consumer = console.backend.consumer();
    let mut lines = Vec::new();
    let mut total = 0;
    core_redrive::redrive(consumer.as_ref(), named, |queue, moved| {
        total += moved;
        lines.push(format!(
            "{}: {moved} message(s) moved back from the DLQ",
            queue.name()
        ));
    })
    .await?;
    result(
        format!("redrove {total} message(s)"),
        lines,
        None,
        &[
            ("recover", format!("{PREFIX}/recover")),
            ("overview", PREFIX.to_owned()),
        ],
    )
}

pub async fn live(_console: &Console) -> Result<Reply, PageError> {
    page("live.html", json!({ "nav": "live" }))
}

/// The live view's data: the newest events with their attempts.
pub async fn live_json(console: &Console) -> Result<Reply, PageError> {
    let store = console.backend.store();
    let now = now_millis();
    let listed =
        core_events::list_events(store.as_ref(), &EventQuery::newest(LIVE_EVENTS, now)).await?;
    let mut events = Vec::with_capacity(listed.events.len());
    for e in &listed.events {
        let attempts = store.event_attempts(&e.id).await?;
        events.push(json!({
            "id": e.id, "source": e.source, "type": e.event_type,
            "received": time_text(e.received_at),
            "attempts": attempts.iter().map(|a| json!({
                "subscription": a.subscription_id, "attempt": a.attempt,
                "outcome": a.outcome.as_str(), "status": a.status, "at": time_text(a.at),
            })).collect::<Vec<_>>(),
        }));
    }
    let body = json!({ "at": time_text(now), "events": events }).to_string();
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(Reply::Response(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_show_pretty_json_raw_text_or_a_note_for_binary_and_are_cut_when_large() {
        let (shown, kind, cut) = shown_body(br#"{"a":[1,2]}"#);
        assert_eq!(kind, "json");
        assert!(shown.contains("\n") && !cut);
        let (shown, kind, _) = shown_body(b"<script>alert(1)</script>");
        assert_eq!((shown.as_str(), kind), ("<script>alert(1)</script>", "raw"));
        let (_, kind, cut) = shown_body(&[0xff, 0xfe, 0x00]);
        assert_eq!((kind, cut), ("binary", true));
        let large = "é".repeat(SHOWN_BODY_BYTES);
        let (shown, kind, cut) = shown_body(large.as_bytes());
        assert!(cut && kind == "raw" && shown.len() <= SHOWN_BODY_BYTES);
    }

    #[test]
    fn empty_parameters_count_as_not_given() {
        let params = Params::from_query(Some("source=&type=push&since=+"));
        assert_eq!(params.get("source"), None);
        assert_eq!(params.get("since"), None);
        assert_eq!(params.get("type"), Some("push"));
    }
}
