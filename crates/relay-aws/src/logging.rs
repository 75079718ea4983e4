//! The Lambda functions' log set-up: one line per event, as cheap as CloudWatch can take it.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The relay's own crates; everything else (the AWS SDK, hyper, the runtime) logs warnings only,
/// since their info lines would cost more than the relay's own.
const RELAY_TARGETS: [&str; 4] = ["relay_core", "relay_aws", "receiver", "fanout"];

/// Installs the functions' subscriber. The level is `AWS_LAMBDA_LOG_LEVEL` (the template's
/// `ApplicationLogLevel`) for the relay's crates, else `RUST_LOG` as a full filter, else INFO.
/// With `AWS_LAMBDA_LOG_FORMAT=JSON` each line is one flat JSON object of the event's fields,
/// without the runtime's invocation span (request and trace id, ~170 bytes, twice over as span
/// and span list): the event and subscription ids in every line are what ties lines together,
/// and Lambda's own START/END lines carry the request id.
pub fn init_lambda_logging() {
    let filter = lambda_log_filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        // CloudWatch stamps every line itself.
        .without_time()
        .with_env_filter(filter);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = installed {
        eprintln!("log subscriber not installed: {e}");
    }
}

fn lambda_log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    if lambda_level.is_none()
        && let Some(directives) = rust_log
        && let Ok(filter) = EnvFilter::try_new(directives)
    {
        return filter;
    }
    let level = lambda_level
        .and_then(|l| LevelFilter::from_str(l.trim()).ok())
        .unwrap_or(LevelFilter::INFO);
    let others = level.min(LevelFilter::WARN);
    let mut directives = others.to_string().to_ascii_lowercase();
    for target in RELAY_TARGETS {
        directives.push_str(&format!(
            ",{target}={}",
            level.to_string().to_ascii_lowercase()
        ));
    }
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_level_applies_to_the_relay_and_dependencies_log_warnings() {
        let filter = lambda_log_filter(Some("INFO"), Some("trace")).to_string();
        assert!(filter.contains("relay_core=info"), "{filter}");
        assert!(filter.contains("fanout=info"), "{filter}");
        assert!(
            filter.starts_with("warn") || filter.contains(",warn"),
            "{filter}"
        );
        // A stricter level holds for everything.
        let filter = lambda_log_filter(Some("ERROR"), None).to_string();
        assert!(!filter.contains("warn"), "{filter}");
        assert!(filter.contains("receiver=error"), "{filter}");
    }

    #[test]
    fn rust_log_is_used_as_given_without_a_lambda_level() {
        assert_eq!(lambda_log_filter(None, Some("debug")).to_string(), "debug");
        let filter = lambda_log_filter(None, None).to_string();
        assert!(filter.contains("relay_aws=info"), "{filter}");
    }
}
