//! `relay status`: the report as JSON or text.

use super::*;

pub(super) async fn status(
    backend: &Backend,
    store: &dyn Store,
    json_mode: bool,
) -> anyhow::Result<()> {
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
                    "refused": refused, "paused_until": s.paused_until.map(millis_text) })
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
        "{:<20}{:>9}{:>11}{:>9}  oldest",
        "queue", "visible", "in flight", "delayed"
    )];
    for q in &report.queues {
        let d = q.depth;
        let oldest = d.oldest_age_secs.map_or_else(|| "-".to_owned(), age_text);
        lines.push(format!(
            "{:<20}{:>9}{:>11}{:>9}  {oldest}",
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
                if let Some(until) = s.paused_until {
                    state.push(if until > report.at_millis {
                        format!("paused until {}", millis_text(until))
                    } else {
                        format!("pause over at {}; probe due", millis_text(until))
                    });
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
