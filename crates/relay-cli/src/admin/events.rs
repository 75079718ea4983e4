//! `relay events ...`: list, search, show, replay of one event.

use super::*;

pub(super) async fn events(
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
                Some(list) => relay_core::domain::patterns::parse_list(&list)
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
                Some(_) => match relay_core::ports::bodies::read_body(bodies, &event).await {
                    Ok(body) => (
                        relay_core::ports::bodies::with_inline_body(&event, &body),
                        None,
                    ),
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
