//! Content filters and delivery policies on the command line: `subscriptions add/update
//! --filter/--filter-file`, the policy flags, and `subscriptions test-filter`.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use relay_core::Store;
use relay_core::admin::subscriptions::{self as core_subscriptions, FilterSubject};
use relay_core::domain::filter::{Filter, MAX_FILTER_TEXT_BYTES};
use relay_core::domain::model::DEFAULT_MAX_BODY_BYTES;
use relay_core::domain::policy::{self, PolicyChange};

use crate::args::{FilterArgs, PolicyArgs};
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

/// The delivery policy the flags give (unset flags, and `default`, leave the relay's
/// setting), and the change they make to a stored one. A bad value is a usage error (exit 2)
/// naming the flag, and nothing is stored.
pub fn read_policy(args: &PolicyArgs) -> anyhow::Result<PolicyChange> {
    fn each<T>(
        text: &Option<String>,
        parse: impl Fn(&str) -> Result<Option<T>, relay_core::domain::policy::InvalidPolicy>,
    ) -> anyhow::Result<Option<Option<T>>> {
        text.as_deref().map(|t| parse(t).map_err(usage)).transpose()
    }
    Ok(PolicyChange {
        retry_schedule: each(&args.retry_schedule, policy::parse_retry_schedule)?,
        timeout_secs: each(&args.timeout, policy::parse_timeout)?,
        max_in_flight: each(&args.max_in_flight, policy::parse_max_in_flight)?,
        rate: each(&args.rate, policy::parse_rate)?,
    })
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
