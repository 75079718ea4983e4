//! The events pages: the list with its filters and search, one event with its attempts, its
//! body, and replay.

use bytes::Bytes;
use relay_core::ports::bodies::read_body;

use super::*;

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
pub(super) fn shown_body(bytes: &[u8]) -> (String, &'static str, bool) {
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
    // A body over the inline limit is read back from the body store; one gone is said so.
    let (bytes, body_error) = match read_body(console.backend.bodies().as_deref(), &event).await {
        Ok(bytes) => (bytes, None),
        Err(e) => (Bytes::new(), Some(e.to_string())),
    };
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
            "body_error": body_error,
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
    let bytes = read_body(console.backend.bodies().as_deref(), &event)
        .await
        .map_err(|e| PageError::from(anyhow::anyhow!("the body cannot be read: {e}")))?;
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
    let bodies = console.backend.bodies();
    let plan = core_events::plan_replay_with_bodies(
        store.as_ref(),
        store.as_ref(),
        bodies.as_deref(),
        id,
        only,
    )
    .await?;
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
