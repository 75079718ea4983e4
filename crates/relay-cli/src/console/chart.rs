//! The overview's chart: accepted, delivered and failed per minute as SVG polylines, drawn on
//! the server (no script, nothing inline to allow in the Content-Security-Policy).

use relay_core::admin::activity::MinuteCounts;
use serde_json::{Value, json};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 40.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// What the template draws: the viewBox, one polyline per series, the axis labels.
pub fn render(minutes: &[MinuteCounts]) -> Value {
    let most = minutes
        .iter()
        .flat_map(|m| [m.counts.accepted, m.counts.delivered, m.counts.failed])
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_width = WIDTH - LEFT - 8.0;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let step = plot_width / (minutes.len().max(2) - 1) as f64;
    let points = |value: fn(&MinuteCounts) -> u64| -> String {
        minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let x = LEFT + step * i as f64;
                let y = TOP + plot_height * (1.0 - value(m) as f64 / most as f64);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let total = |value: fn(&MinuteCounts) -> u64| minutes.iter().map(value).sum::<u64>();
    json!({
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "top": TOP,
        "right": WIDTH - 8.0, "baseline": TOP + plot_height, "label_y": HEIGHT - 6.0,
        "max": most, "minutes": minutes.len(),
        "series": [
            { "name": "accepted", "points": points(|m| m.counts.accepted),
              "total": total(|m| m.counts.accepted) },
            { "name": "delivered", "points": points(|m| m.counts.delivered),
              "total": total(|m| m.counts.delivered) },
            { "name": "failed", "points": points(|m| m.counts.failed),
              "total": total(|m| m.counts.failed) },
        ],
    })
}

#[cfg(test)]
mod tests {
    use relay_core::ports::ActivityCounts;

    use super::*;

    #[test]
    fn the_busiest_minute_reaches_the_top_and_an_empty_one_the_baseline() {
        let minute = |accepted, failed| MinuteCounts {
            start_millis: 0,
            counts: ActivityCounts {
                accepted,
                delivered: 0,
                failed,
            },
        };
        let chart = render(&[minute(0, 0), minute(4, 2)]);
        assert_eq!(chart["max"], 4);
        assert_eq!(chart["series"][0]["points"], "40.0,156.0 712.0,10.0");
        assert_eq!(chart["series"][2]["points"], "40.0,156.0 712.0,83.0");
        assert_eq!(chart["series"][0]["total"], 4);
    }
}
