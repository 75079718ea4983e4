//! Recovery: the bulk replay (dry run, then send), dead letters and their redrive, and the
//! live view.

use super::*;

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
        let bodies = console.backend.bodies();
        let plan = off_worker(move || async move {
            let bodies = bodies.as_deref();
            core_bulk::plan_bulk_replay(
                store.as_ref(),
                store.as_ref(),
                bodies,
                &request,
                &mut |_| {},
            )
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
    let bodies = console.backend.bodies();
    let outcome = off_worker(move || async move {
        let bodies = bodies.as_deref();
        let plan = core_bulk::plan_bulk_replay(
            store.as_ref(),
            store.as_ref(),
            bodies,
            &request,
            &mut |_| {},
        )
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
