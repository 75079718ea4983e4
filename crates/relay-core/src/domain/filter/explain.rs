//! Why a filter does not match, for `relay subscriptions test-filter`: evaluates again to find
//! the failing part.

use super::*;

pub(super) fn why_root(node: &Node, event: &EventInput<'_>) -> String {
    match node {
        Node::Field(name, inner) => why(inner, event.part(name), name),
        Node::All(nodes) | Node::And(nodes) => nodes
            .iter()
            .find(|n| !eval_root(n, event))
            .map(|n| why_root(n, event))
            .unwrap_or_default(),
        Node::Or(_) => "no alternative of the top-level $or matches".to_owned(),
        Node::Not(_) => "the condition inside the top-level $not matches".to_owned(),
        _ => String::new(),
    }
}

/// Why `node` does not match `value` at `path` (called only when it does not).
fn why(node: &Node, value: Option<&Value>, path: &str) -> String {
    match node {
        Node::All(nodes) | Node::And(nodes) => nodes
            .iter()
            .find(|n| !n.eval(value))
            .map(|n| why(n, value, path))
            .unwrap_or_default(),
        Node::Field(name, inner) => {
            let inner_path = format!("{path}.{name}");
            match value {
                Some(Value::Object(map)) => why(inner, map.get(name), &inner_path),
                Some(Value::Array(_)) => {
                    format!("{inner_path}: no element of the array at {path} matches")
                }
                _ => why(inner, None, &inner_path),
            }
        }
        Node::Or(_) => format!(
            "{path}: no $or alternative matches (found {})",
            shown(value)
        ),
        Node::Not(_) => format!("{path}: the condition inside $not matches"),
        Node::Exist(true) => format!("{path}: expected to exist, found nothing"),
        Node::Exist(false) => format!("{path}: expected not to exist, found {}", shown(value)),
        _ => format!(
            "{path}: expected {}, found {}",
            expected(node),
            shown(value)
        ),
    }
}

fn expected(node: &Node) -> String {
    match node {
        Node::Eq(v) => brief(v),
        Node::Neq(v) => format!("$neq {}", brief(v)),
        Node::In(list) => format!("$in {}", brief(&Value::Array(list.clone()))),
        Node::Nin(list) => format!("$nin {}", brief(&Value::Array(list.clone()))),
        Node::Compare(cmp, v) => format!("{} {}", cmp.name(), brief(v)),
        Node::StartsWith(s) => format!("$startsWith {}", brief(&Value::String(s.clone()))),
        Node::EndsWith(s) => format!("$endsWith {}", brief(&Value::String(s.clone()))),
        _ => String::new(),
    }
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing".to_owned(), brief)
}

/// Compact JSON, cut at 80 characters.
fn brief(value: &Value) -> String {
    const LIMIT: usize = 80;
    let text = value.to_string();
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
