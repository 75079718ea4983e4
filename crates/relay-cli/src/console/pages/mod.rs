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
mod events;
mod recover;

pub use events::{event, event_body, events, replay};
pub use recover::{live, live_json, recover, recover_send, redrive};

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
    if let Some(until) = sub["paused_until"].as_str() {
        parts.push(format!("paused until {until}"));
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
                "paused_until": s.paused_until.map(time_text),
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
            value["policy_text"] = json!(s.policy.summary());
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

#[cfg(test)]
mod tests {
    use super::events::shown_body;
    use super::*;

    #[test]
    fn health_names_every_state_a_subscription_can_be_in() {
        assert_eq!(health(&json!({ "enabled": true })), "healthy");
        assert_eq!(
            health(&json!({ "enabled": false, "disabled_reason": "410 Gone" })),
            "disabled: 410 Gone"
        );
        let troubled = json!({
            "enabled": true,
            "failing_since": 0,
            "refused": { "reason": "loopback" },
            "paused_until": "2026-12-07T10:00:00.000Z",
        });
        assert_eq!(
            health(&troubled),
            "failing since 1970-01-01T00:00:00.000Z; deliveries refused: loopback; \
             paused until 2026-12-07T10:00:00.000Z"
        );
    }

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
