//! Output: a JSON document with --json, readable lines otherwise; errors on stderr.

use serde_json::{Value, json};

pub fn print_error(json_mode: bool, error: &anyhow::Error) {
    if json_mode {
        eprintln!(
            "{}",
            json!({ "error": { "message": format!("{error:#}") } })
        );
    } else {
        eprintln!("error: {error:#}");
    }
}

/// Prints `value` as JSON, or `text` for people.
pub fn emit(json_mode: bool, value: &Value, text: impl FnOnce() -> String) {
    if json_mode {
        println!("{value}");
    } else {
        let text = text();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}
