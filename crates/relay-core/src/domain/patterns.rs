//! Event-type patterns of subscriptions: `*`, an exact type, or `prefix.*`, in comma lists.

/// True when `event_type` matches any of `patterns`. An empty list matches everything.
pub fn matches_any<S: AsRef<str>>(patterns: &[S], event_type: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p.as_ref(), event_type))
}

pub fn matches(pattern: &str, event_type: &str) -> bool {
    let pattern = pattern.trim();
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => event_type
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

/// A pattern that is none of `*`, an exact type, or `prefix.*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event pattern {pattern:?}: use *, an exact type, or prefix.*")]
pub struct InvalidPattern {
    pub pattern: String,
}

/// Splits a comma list (`push,issues.*`) into trimmed, non-empty patterns, checking each.
pub fn parse_list(list: &str) -> Result<Vec<String>, InvalidPattern> {
    let mut out = Vec::new();
    for raw in list.split(',') {
        let p = raw.trim();
        if p.is_empty() {
            continue;
        }
        let body = p.strip_suffix(".*").unwrap_or(p);
        let valid_star = p == "*" || !body.contains('*');
        if !valid_star || body.is_empty() || p.chars().any(char::is_whitespace) {
            return Err(InvalidPattern {
                pattern: p.to_owned(),
            });
        }
        out.push(p.to_string());
    }
    if out.is_empty() {
        out.push("*".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_everything() {
        assert!(matches("*", "push"));
        assert!(matches("*", "issues.opened"));
    }

    #[test]
    fn exact_and_prefix() {
        assert!(matches("push", "push"));
        assert!(!matches("push", "pushed"));
        assert!(matches("issues.*", "issues.opened"));
        assert!(matches("issues.*", "issues.label.added"));
        assert!(!matches("issues.*", "issues"));
        assert!(!matches("issues.*", "issuesx.opened"));
        assert!(!matches("issues.*", "pull_request.opened"));
    }

    #[test]
    fn lists() {
        let list = parse_list("push, issues.*").unwrap();
        assert_eq!(list, vec!["push", "issues.*"]);
        assert!(matches_any(&list, "issues.closed"));
        assert!(matches_any(&list, "push"));
        assert!(!matches_any(&list, "release.published"));
        assert_eq!(parse_list("").unwrap(), vec!["*"]);
        let err = parse_list("push, is*ues").unwrap_err();
        assert_eq!(err.pattern, "is*ues");
        assert_eq!(
            err.to_string(),
            "invalid event pattern \"is*ues\": use *, an exact type, or prefix.*"
        );
        assert!(parse_list(".*").is_err());
    }
}
