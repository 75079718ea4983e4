//! Output: a JSON document with --json, readable lines otherwise; errors on stderr.

use serde_json::{Value, json};

use crate::errors::Kind;

use relay_core::domain::model::{ProviderConfig, Source, Subscription};
use relay_core::providers::HmacOptions;

/// The error and its cause chain; under `--json` with its class (`kind`).
pub fn print_error(json_mode: bool, kind: Kind, error: &anyhow::Error) {
    if json_mode {
        eprintln!(
            "{}",
            json!({ "error": { "message": format!("{error:#}"), "kind": kind.name() } })
        );
    } else {
        eprintln!("error: {error:#}");
    }
}

/// Prints `value` as JSON, or `text` for people.
pub fn emit(json_mode: bool, value: &Value, text: impl FnOnce() -> String) {
    if json_mode {
        print_line(&value.to_string());
    } else {
        let text = text();
        if !text.is_empty() {
            print_line(&text);
        }
    }
}

/// Writes `text` and a newline to stdout. A reader that went away (`relay status | head -1`)
/// ends the command quietly with exit 0, as other command-line tools do; any other failure to
/// write exits 1 saying so.
pub fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to stdout: {error}");
            std::process::exit(1);
        }
    }
}

/// A listing as text: on a terminal, columns aligned under a header (tabwriter's elastic tab
/// stops); piped, tab-separated lines under a tab-separated header line, for `cut` and `awk`.
/// Cells never hold a tab or a newline (ids, names, URLs, patterns, times).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    use std::io::IsTerminal;
    table_for(std::io::stdout().is_terminal(), header, rows)
}

fn table_for(aligned: bool, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut lines = vec![header.join("\t").to_uppercase()];
    lines.extend(rows.iter().map(|row| row.join("\t")));
    let text = lines.join("\n");
    if !aligned {
        return text;
    }
    use std::io::Write;
    let mut writer = tabwriter::TabWriter::new(Vec::new()).padding(2);
    let aligned = writer
        .write_all(text.as_bytes())
        .and_then(|()| writer.flush())
        .ok()
        .and_then(|()| writer.into_inner().ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    aligned.unwrap_or(text)
}

pub fn source_json(source: &Source) -> Value {
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
        // Names where the API credential is, never the credential.
        "reconcile": source.reconcile,
    })
}

/// `hmac (typeform)` for a preset, else the provider's name.
pub fn provider_label(provider: &ProviderConfig) -> String {
    let preset = provider
        .options::<HmacOptions>()
        .and_then(|options| options.preset.as_deref());
    match preset {
        Some(preset) => format!("{} ({preset})", provider.name()),
        None => provider.name().to_owned(),
    }
}

pub fn subscription_json(sub: &Subscription) -> Value {
    json!({
        "id": sub.id,
        "source": sub.source,
        "url": sub.url,
        "events": sub.events,
        "enabled": sub.enabled,
        "disabled_reason": sub.disabled_reason,
        "failing_since": sub.failing_since,
        "refused": sub.refused.as_ref().map(|r| json!({ "since": r.since, "reason": r.reason })),
        "headers": sub.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "secrets": sub.secrets.len(),
        "filter": sub.filter,
        "policy": {
            "retry_schedule": sub.policy.retry_schedule,
            "timeout_secs": sub.policy.timeout_secs,
            "max_in_flight": sub.policy.max_in_flight,
            "rate": sub.policy.rate,
        },
        "paused_until": sub.paused_until.map(millis_text),
    })
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub fn millis_text(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(at) => format!("{at:.3}"),
        // Outside jiff's range (years -9999 to 9999): the number as stored.
        Err(_) => format!("{ms} ms since the epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_a_terminal_and_stay_tab_separated_when_piped() {
        let rows = vec![
            vec!["gh".to_owned(), "github".to_owned()],
            vec!["payments".to_owned(), "stripe".to_owned()],
        ];
        assert_eq!(
            table_for(false, &["name", "provider"], &rows),
            "NAME\tPROVIDER\ngh\tgithub\npayments\tstripe"
        );
        assert_eq!(
            table_for(true, &["name", "provider"], &rows),
            "NAME      PROVIDER\ngh        github\npayments  stripe"
        );
    }

    #[test]
    fn formats_times() {
        assert_eq!(millis_text(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(millis_text(1_763_900_000_123), "2025-11-23T12:13:20.123Z");
    }
}
