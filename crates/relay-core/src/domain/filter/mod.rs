//! Content filters of subscriptions: a JSON document that an event's JSON body and headers must
//! match, beside the event-type patterns. Parsed once into a typed tree when a subscription is
//! read (a `Filter` deserializes by parsing), evaluated against an `EventInput` that parses the
//! event's body at most once however many subscriptions look at it.
//!
//! ```json
//! {"body": {"action": {"$in": ["opened", "reopened"]}, "issue": {"labels": {"name": "bug"}}},
//!  "headers": {"Content-Type": {"$startsWith": "application/json"}}}
//! ```
//!
//! Semantics (docs/subscriptions.md has the table):
//! - an object's entries must all match; a key naming a field descends into it, a `$` key is an
//!   operator on the value at hand; a scalar or an array is an equality test;
//! - numbers compare as numbers (`1` equals `1.0`), strings as strings, nothing else coerces:
//!   `$gt` and the like on another type, or on a missing field, do not match;
//! - an array value matches a test when the whole array or any element does; `$neq` and `$nin`
//!   are the negations of `$eq` and `$in`, so they match when no element is equal, and when the
//!   field is missing;
//! - `$exist: true` matches a present field (`null` included), `$exist: false` a missing one;
//! - header names are case-insensitive; a filter that reads the body never matches an event
//!   whose body is not JSON.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

mod explain;
mod parse;

use explain::why_root;
use parse::{Path, check_depth, parse_root, whole};

/// The largest filter accepted, as compact JSON.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;
/// The longest filter text read, spacing included (a written filter may be indented).
pub const MAX_FILTER_TEXT_BYTES: usize = 4 * MAX_FILTER_BYTES;
/// The deepest nesting of objects and arrays accepted in a filter.
pub const MAX_FILTER_DEPTH: usize = 16;

const OPERATORS: &str =
    "$eq, $neq, $in, $nin, $gt, $gte, $lt, $lte, $startsWith, $endsWith, $exist, $and, $or, $not";

/// A parsed content filter. Stored and shown as the JSON it was written as.
#[derive(Debug, Clone)]
pub struct Filter {
    written: Value,
    root: Node,
    reads_body: bool,
}

/// Why a filter was refused: where in it (`body.issue.$in`) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter{}: {message}", at(.path))]
pub struct FilterError {
    /// Dotted path into the filter; empty for the filter as a whole.
    pub path: String,
    pub message: String,
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

/// The answer of `Filter::explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub matched: bool,
    /// Which part failed, when it did not match.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn name(self) -> &'static str {
        match self {
            Cmp::Gt => "$gt",
            Cmp::Gte => "$gte",
            Cmp::Lt => "$lt",
            Cmp::Lte => "$lte",
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Cmp::Gt => ordering == Ordering::Greater,
            Cmp::Gte => ordering != Ordering::Less,
            Cmp::Lt => ordering == Ordering::Less,
            Cmp::Lte => ordering != Ordering::Greater,
        }
    }
}

/// One test of the tree, applied to a value that may be missing (`None`).
#[derive(Debug, Clone)]
enum Node {
    /// An object's entries: every one must match.
    All(Vec<Node>),
    /// Descend into a field (at the root: `body` or `headers`).
    Field(String, Box<Node>),
    Eq(Value),
    Neq(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    /// Against a number or a string (checked when parsed).
    Compare(Cmp, Value),
    StartsWith(String),
    EndsWith(String),
    Exist(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Filter {
    /// Parses a filter written as JSON text (`--filter`, a `--filter-file`'s content).
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_TEXT_BYTES {
            return Err(whole(format!(
                "{} bytes is too large (at most {MAX_FILTER_BYTES} as compact JSON)",
                text.len()
            )));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| whole(format!("not valid JSON ({e})")))?;
        Filter::from_value(value)
    }

    /// Parses a filter from its JSON value, checking size, depth and every operator.
    pub fn from_value(value: Value) -> Result<Filter, FilterError> {
        let size = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0);
        if size > MAX_FILTER_BYTES {
            return Err(whole(format!(
                "{size} bytes as compact JSON is too large (at most {MAX_FILTER_BYTES})"
            )));
        }
        let mut path = Path::default();
        check_depth(&value, &mut path, 1)?;
        let mut reads_body = false;
        let root = parse_root(&value, &mut path, &mut reads_body)?;
        Ok(Filter {
            written: value,
            root,
            reads_body,
        })
    }

    /// True when the event's body and headers match.
    pub fn matches(&self, event: &EventInput<'_>) -> bool {
        if self.reads_body && event.body().is_none() {
            return false;
        }
        eval_root(&self.root, event)
    }

    /// Whether the event matches and, when not, which part failed.
    pub fn explain(&self, event: &EventInput<'_>) -> Verdict {
        if self.reads_body && event.body().is_none() {
            return Verdict {
                matched: false,
                reason: Some("the body is not JSON, and the filter reads the body".to_owned()),
            };
        }
        if eval_root(&self.root, event) {
            return Verdict {
                matched: true,
                reason: None,
            };
        }
        Verdict {
            matched: false,
            reason: Some(why_root(&self.root, event)),
        }
    }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.written.to_string())
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// What a filter reads of an event. The model's `EventEnvelope` is one (model.rs); keeping the
/// trait here lets the model hold a `Filter` without the filter depending on the model.
pub trait FilterSubject {
    fn id(&self) -> &str;
    fn source(&self) -> &str;
    fn event_type(&self) -> &str;
    fn content_type(&self) -> Option<&str>;
    /// The body as received; `None` when its stored encoding cannot be decoded.
    fn body(&self) -> Option<std::borrow::Cow<'_, [u8]>>;
}

/// What a filter looks at of one event: its headers and its body, parsed on first use and
/// then shared by every subscription that looks.
pub struct EventInput<'a> {
    event: &'a dyn FilterSubject,
    body: OnceLock<Option<Value>>,
    headers: OnceLock<Value>,
}

impl<'a> EventInput<'a> {
    pub fn new(event: &'a dyn FilterSubject) -> Self {
        Self {
            event,
            body: OnceLock::new(),
            headers: OnceLock::new(),
        }
    }

    pub fn event_type(&self) -> &'a str {
        self.event.event_type()
    }

    /// The body as JSON; `None` when it is not JSON.
    fn body(&self) -> Option<&Value> {
        self.body
            .get_or_init(|| {
                let bytes = self.event.body()?;
                serde_json::from_slice(&bytes).ok()
            })
            .as_ref()
    }

    /// The headers an event carries through the relay, by lower-case name: `content-type` as
    /// received, and the relay's own `webhook-id`, `x-relay-source`, `x-relay-event-type`.
    fn headers(&self) -> &Value {
        self.headers.get_or_init(|| {
            let event = self.event;
            let mut map = Map::new();
            if let Some(content_type) = event.content_type() {
                map.insert("content-type".into(), content_type.into());
            }
            map.insert("webhook-id".into(), event.id().into());
            map.insert("x-relay-source".into(), event.source().into());
            map.insert("x-relay-event-type".into(), event.event_type().into());
            Value::Object(map)
        })
    }

    fn part(&self, name: &str) -> Option<&Value> {
        match name {
            BODY => self.body(),
            _ => Some(self.headers()),
        }
    }
}

const BODY: &str = "body";
const HEADERS: &str = "headers";

// ---- evaluation ----

fn eval_root(node: &Node, event: &EventInput<'_>) -> bool {
    match node {
        Node::Field(name, inner) => inner.eval(event.part(name)),
        Node::All(nodes) | Node::And(nodes) => nodes.iter().all(|n| eval_root(n, event)),
        Node::Or(nodes) => nodes.iter().any(|n| eval_root(n, event)),
        Node::Not(inner) => !eval_root(inner, event),
        // The parser puts nothing else at the root.
        _ => false,
    }
}

impl Node {
    fn eval(&self, value: Option<&Value>) -> bool {
        match self {
            Node::All(nodes) | Node::And(nodes) => nodes.iter().all(|n| n.eval(value)),
            Node::Or(nodes) => nodes.iter().any(|n| n.eval(value)),
            Node::Not(inner) => !inner.eval(value),
            Node::Exist(want) => value.is_some() == *want,
            Node::Field(name, inner) => match value {
                Some(Value::Object(map)) => inner.eval(map.get(name)),
                Some(Value::Array(items)) => items.iter().any(|item| self.eval(Some(item))),
                _ => inner.eval(None),
            },
            Node::Neq(want) => !any_of(value, &|v| json_eq(v, want)),
            Node::Nin(list) => !any_of(value, &|v| list.iter().any(|w| json_eq(v, w))),
            _ => any_of(value, &|v| self.test(v)),
        }
    }

    /// A test of one value (the leaves: equality, membership, order, affixes).
    fn test(&self, value: &Value) -> bool {
        match self {
            Node::Eq(want) => json_eq(value, want),
            Node::In(list) => list.iter().any(|w| json_eq(value, w)),
            Node::Compare(cmp, bound) => compare(value, bound).is_some_and(|o| cmp.holds(o)),
            Node::StartsWith(prefix) => value.as_str().is_some_and(|s| s.starts_with(prefix)),
            Node::EndsWith(suffix) => value.as_str().is_some_and(|s| s.ends_with(suffix)),
            _ => false,
        }
    }
}

/// A test holds for a present value, or for an array as a whole or any element of it.
fn any_of(value: Option<&Value>, test: &dyn Fn(&Value) -> bool) -> bool {
    match value {
        None => false,
        Some(whole @ Value::Array(items)) => {
            test(whole) || items.iter().any(|i| any_of(Some(i), test))
        }
        Some(v) => test(v),
    }
}

/// Order of two numbers or two strings; `None` for any other pair.
fn compare(value: &Value, bound: &Value) -> Option<Ordering> {
    match (value, bound) {
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    }
}

/// Integers compare exactly; anything else as floating point.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The fuzz target `filter_parse`: any text either parses or is refused with an error; a
/// filter that parses loads again from its stored form and decides like it, and evaluating it
/// (on a body made of the same bytes, and on a fixed JSON body) never panics and agrees with
/// `explain`. (Its stored form may differ in the last digit of a float with more digits than
/// an f64 holds: serde_json parses such floats to the nearest value or one next to it.)
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_parse(data: &[u8]) {
    /// An event of the given body (JSON content type, fixed names).
    struct FuzzEvent<'a>(&'a [u8]);
    impl FilterSubject for FuzzEvent<'_> {
        fn id(&self) -> &str {
            "evt_fuzz"
        }
        fn source(&self) -> &str {
            "fuzz"
        }
        fn event_type(&self) -> &str {
            "fuzz"
        }
        fn content_type(&self) -> Option<&str> {
            Some("application/json")
        }
        fn body(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
            Some(std::borrow::Cow::Borrowed(self.0))
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = Filter::parse(text) else {
        return;
    };
    let stored = serde_json::to_string(&filter).unwrap_or_default();
    let read = match Filter::parse(&stored) {
        Ok(read) => read,
        Err(e) => panic!("{stored} does not load: {e}"),
    };
    let fixed = br#"{"a":[1,"x",{"b":null}],"n":-2.5,"s":"text","t":true}"#;
    for body in [data, &fixed[..]] {
        let event = FuzzEvent(body);
        let input = EventInput::new(&event);
        let verdict = filter.explain(&input);
        assert_eq!(verdict.matched, filter.matches(&input));
        assert_eq!(verdict.reason.is_none(), verdict.matched);
        assert_eq!(read.matches(&input), verdict.matched, "{stored}");
    }
}

#[cfg(test)]
mod tests;
