//! The tally as `relay dev` serves it at `GET /metrics`: the Prometheus text exposition format
//! (version 0.0.4) of every cumulative count and latency histogram.

use std::fmt::Write as _;

use relay_core::domain::metrics::{Metric, Tally};

/// The `content-type` of the text `render` writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Every cumulative value of `tally`, metric by metric.
pub fn render(tally: &Tally) -> String {
    let mut out = String::new();
    for metric in Metric::ALL {
        let name = prometheus_name(metric);
        let _ = writeln!(out, "# HELP {name} {}", metric.description());
        if metric.is_latency() {
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (series, histogram) in tally.histograms().filter(|(s, _)| s.metric == metric) {
                let source = escape_label(&series.source);
                for (bound, below) in histogram.cumulative() {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{source=\"{source}\",le=\"{bound}\"}} {below}"
                    );
                }
                let count = histogram.count;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{source=\"{source}\",le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(out, "{name}_sum{{source=\"{source}\"}} {}", histogram.sum);
                let _ = writeln!(out, "{name}_count{{source=\"{source}\"}} {count}");
            }
        } else {
            let _ = writeln!(out, "# TYPE {name} counter");
            for (series, n) in tally.counters().filter(|(s, _)| s.metric == metric) {
                let source = escape_label(&series.source);
                match metric.detail() {
                    Some(detail) => {
                        let label = detail.to_ascii_lowercase();
                        let value = escape_label(&series.detail);
                        let _ =
                            writeln!(out, "{name}{{source=\"{source}\",{label}=\"{value}\"}} {n}");
                    }
                    None => {
                        let _ = writeln!(out, "{name}{{source=\"{source}\"}} {n}");
                    }
                }
            }
        }
    }
    out
}

/// The Prometheus name, e.g. `relay_delivery_latency_ms`.
fn prometheus_name(metric: Metric) -> String {
    let mut out = String::from("relay_");
    for (i, c) in metric.name().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    if metric.is_latency() {
        out.push_str("_ms");
    } else {
        out.push_str("_total");
    }
    out
}

/// Label values escape backslash, double quote and newline (Prometheus text format).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::domain::model::{AttemptOutcome, NextStep};
    use relay_core::testkit::attempt_record as record;

    /// Fails naming the first of `lines` that `text` lacks.
    fn assert_has_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                text.contains(&format!("{line}\n")),
                "no {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn counters_carry_their_source_and_detail_labels() {
        let mut tally = Tally::new();
        for (status, duplicate) in [(202, false), (202, false), (200, true), (401, false)] {
            tally.record_reply("github", status, duplicate);
        }
        let expected = [
            "# TYPE relay_accepted_total counter",
            "relay_accepted_total{source=\"github\"} 2",
            "relay_duplicates_total{source=\"github\"} 1",
            "relay_refused_total{source=\"github\",status=\"401\"} 1",
        ];
        assert_has_lines(&render(&tally), &expected);
    }

    #[test]
    fn counts_stay_cumulative_after_a_drain() {
        let mut tally = Tally::new();
        tally.record_reply("a", 202, false);
        tally.drain();
        tally.record_reply("a", 202, false);
        assert_has_lines(&render(&tally), &["relay_accepted_total{source=\"a\"} 2"]);
    }

    #[test]
    fn latency_histogram_is_cumulative() {
        let mut tally = Tally::new();
        for i in 0..120 {
            tally.record_attempt("a", 0, &record(AttemptOutcome::Ok, NextStep::Done, 0, i));
        }
        tally.drain();
        assert_has_lines(
            &render(&tally),
            &[
                "# TYPE relay_delivery_latency_ms histogram",
                "relay_delivery_latency_ms_count{source=\"a\"} 120",
                "relay_delivery_latency_ms_bucket{source=\"a\",le=\"5\"} 6",
                "relay_delivery_latency_ms_bucket{source=\"a\",le=\"+Inf\"} 120",
            ],
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut tally = Tally::new();
        tally.record_reply("we\"ird\\", 202, false);
        assert!(render(&tally).contains("source=\"we\\\"ird\\\\\""));
    }
}
