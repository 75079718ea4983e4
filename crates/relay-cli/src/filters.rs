//! Content filters on the command line: `subscriptions add --filter/--filter-file` and
//! `subscriptions test-filter`.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use relay_core::Store;
use relay_core::admin::subscriptions::{self as core_subscriptions, FilterSubject};
use relay_core::domain::filter::{Filter, MAX_FILTER_TEXT_BYTES};
use relay_core::domain::model::DEFAULT_MAX_BODY_BYTES;

use crate::args::FilterArgs;
use crate::errors::usage;
use crate::output::emit;

/// The filter the flags give, checked; a bad one is a usage error (exit 2) naming where it
/// goes wrong, and nothing is stored.
pub fn read_filter(args: &FilterArgs) -> anyhow::Result<Option<Filter>> {
    let (flag, text) = match (&args.filter, &args.filter_file) {
        (Some(text), _) => ("--filter", text.clone()),
        (None, Some(path)) => (
            "--filter-file",
            read_text(path, MAX_FILTER_TEXT_BYTES, "--filter-file")?,
        ),
        (None, None) => return Ok(None),
    };
    Filter::parse(&text)
        .map(Some)
        .map_err(|e| usage(format!("{flag}: {e}")))
}

/// A file's content as text, refused (exit 2) past `limit` bytes.
fn read_text(path: &Path, limit: usize, flag: &str) -> anyhow::Result<String> {
    let bytes = read_bytes(path, limit, flag)?;
    String::from_utf8(bytes).map_err(|_| usage(format!("{flag}: {} is not UTF-8", path.display())))
}

fn read_bytes(path: &Path, limit: usize, flag: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| usage(format!("{flag}: cannot open {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    if bytes.len() > limit {
        return Err(usage(format!(
            "{flag}: {} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// `subscriptions test-filter ID (--event ID | --body FILE)`.
pub async fn test_filter(
    store: &dyn Store,
    json_mode: bool,
    id: &str,
    event: Option<String>,
    body: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let subject = match (event, body) {
        (Some(event), _) => FilterSubject::Event(event),
        (None, Some(path)) => {
            FilterSubject::Body(read_bytes(&path, DEFAULT_MAX_BODY_BYTES, "--body")?)
        }
        (None, None) => return Err(usage("give --event ID or --body FILE")),
    };
    let trial = core_subscriptions::test_filter(store, store, id, subject).await?;
    let value = json!({
        "subscription": trial.subscription_id,
        "event": trial.event_id,
        "matched": trial.matched,
        "reasons": trial.reasons,
    });
    emit(json_mode, &value, || {
        let what = trial.event_id.as_deref().unwrap_or("the body");
        if trial.matched {
            format!("match: subscription {} takes {what}", trial.subscription_id)
        } else {
            let mut text = format!(
                "no match: subscription {} does not take {what}",
                trial.subscription_id
            );
            for reason in &trial.reasons {
                text.push_str("\n  ");
                text.push_str(reason);
            }
            text
        }
    });
    Ok(())
}
