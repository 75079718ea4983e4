use serde_json::json;

use super::*;
use crate::domain::model::BodyEncoding;
use crate::domain::model::EventEnvelope;

fn event_with(body: &str, content_type: Option<&str>) -> EventEnvelope {
    EventEnvelope {
        id: "evt_1".into(),
        source: "gh".into(),
        event_type: "issues".into(),
        content_type: content_type.map(str::to_owned),
        received_at: 1,
        body: body.into(),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    }
}

const BODY: &str = r#"{
    "action": "opened",
    "number": 42,
    "ratio": 0.5,
    "draft": false,
    "closed_at": null,
    "title": "Crash on start",
    "issue": {"labels": [{"name": "bug"}, {"name": "p1"}], "assignees": []},
    "tags": ["a", "b"],
    "matrix": [[1, 2], [3, 4]]
}"#;

fn check(filter: serde_json::Value, body: &str) -> bool {
    let filter = Filter::from_value(filter.clone())
        .unwrap_or_else(|e| panic!("{filter} does not parse: {e}"));
    let event = event_with(body, Some("application/json; charset=utf-8"));
    filter.matches(&EventInput::new(&event))
}

fn body(filter: serde_json::Value) -> bool {
    check(json!({ "body": filter }), BODY)
}

#[test]
fn operators_match_and_do_not() {
    // (filter on the body, whether it matches BODY)
    let cases = [
        (json!({"action": "opened"}), true),
        (json!({"action": "closed"}), false),
        (json!({"action": {"$eq": "opened"}}), true),
        (json!({"action": {"$eq": "closed"}}), false),
        (json!({"action": {"$neq": "closed"}}), true),
        (json!({"action": {"$neq": "opened"}}), false),
        (json!({"action": {"$in": ["opened", "reopened"]}}), true),
        (json!({"action": {"$in": ["closed"]}}), false),
        (json!({"action": {"$in": []}}), false),
        (json!({"action": {"$nin": ["closed"]}}), true),
        (json!({"action": {"$nin": ["opened"]}}), false),
        (json!({"number": {"$gt": 41}}), true),
        (json!({"number": {"$gt": 42}}), false),
        (json!({"number": {"$gte": 42}}), true),
        (json!({"number": {"$gte": 43}}), false),
        (json!({"number": {"$lt": 43}}), true),
        (json!({"number": {"$lt": 42}}), false),
        (json!({"number": {"$lte": 42}}), true),
        (json!({"number": {"$lte": 41.5}}), false),
        (json!({"ratio": {"$gt": 0.25, "$lt": 1}}), true),
        (json!({"title": {"$gt": "A", "$lt": "D"}}), true),
        (json!({"title": {"$gt": "D"}}), false),
        (json!({"title": {"$startsWith": "Crash"}}), true),
        (json!({"title": {"$startsWith": "crash"}}), false),
        (json!({"title": {"$endsWith": "start"}}), true),
        (json!({"title": {"$endsWith": "Crash"}}), false),
        (json!({"title": {"$exist": true}}), true),
        (json!({"title": {"$exist": false}}), false),
        (json!({"missing": {"$exist": false}}), true),
        (json!({"missing": {"$exist": true}}), false),
        // null is a value: present, and equal to null.
        (json!({"closed_at": {"$exist": true}}), true),
        (json!({"closed_at": null}), true),
        (json!({"draft": false}), true),
        (json!({"draft": true}), false),
        (
            json!({"$and": [{"action": "opened"}, {"number": {"$gt": 1}}]}),
            true,
        ),
        (
            json!({"$and": [{"action": "opened"}, {"number": {"$gt": 100}}]}),
            false,
        ),
        (json!({"$or": [{"action": "closed"}, {"number": 42}]}), true),
        (
            json!({"$or": [{"action": "closed"}, {"number": 41}]}),
            false,
        ),
        (json!({"$not": {"action": "closed"}}), true),
        (json!({"$not": {"action": "opened"}}), false),
        (json!({"action": {"$not": {"$in": ["closed"]}}}), true),
    ];
    for (filter, want) in cases {
        assert_eq!(body(filter.clone()), want, "{filter}");
    }
}

#[test]
fn nested_objects_and_arrays_match_on_any_element() {
    let cases = [
        (json!({"issue": {"labels": {"name": "bug"}}}), true),
        (json!({"issue": {"labels": {"name": "p1"}}}), true),
        (json!({"issue": {"labels": {"name": "docs"}}}), false),
        (
            json!({"issue": {"labels": {"name": {"$in": ["docs", "p1"]}}}}),
            true,
        ),
        (
            json!({"issue": {"labels": {"name": {"$startsWith": "b"}}}}),
            true,
        ),
        // An empty array has no element to match.
        (json!({"issue": {"assignees": {"login": "x"}}}), false),
        (json!({"tags": "b"}), true),
        (json!({"tags": "c"}), false),
        // A literal array is the whole array, in order.
        (json!({"tags": ["a", "b"]}), true),
        (json!({"tags": ["b", "a"]}), false),
        (json!({"tags": {"$neq": "a"}}), false),
        (json!({"tags": {"$nin": ["c"]}}), true),
        (json!({"tags": {"$nin": ["b"]}}), false),
        (json!({"matrix": {"$gte": 4}}), true),
        (json!({"matrix": [3, 4]}), true),
        (json!({"matrix": {"$gt": 4}}), false),
    ];
    for (filter, want) in cases {
        assert_eq!(body(filter.clone()), want, "{filter}");
    }
}

#[test]
fn types_do_not_coerce() {
    let cases = [
        (json!({"number": "42"}), false),
        (json!({"number": 42.0}), true),
        (json!({"number": {"$in": ["42"]}}), false),
        (json!({"number": {"$gt": "1"}}), false),
        (json!({"title": {"$gt": 1}}), false),
        (json!({"draft": {"$lt": 1}}), false),
        (json!({"number": {"$startsWith": "4"}}), false),
        (json!({"closed_at": {"$gte": 0}}), false),
        (json!({"missing": {"$gt": 0}}), false),
        (json!({"missing": {"$lt": 0}}), false),
        // Negations hold when the field is missing: nothing there equals the value.
        (json!({"missing": {"$neq": 1}}), true),
        (json!({"missing": {"$nin": [1]}}), true),
        // An object in a filter is a condition, not a literal; $eq makes it one.
        (
            json!({"issue": {"$eq": {"labels": [{"name": "bug"}, {"name": "p1"}], "assignees": []}}}),
            true,
        ),
        (json!({"issue": {"$eq": {"labels": []}}}), false),
        // Fields of a non-object are missing.
        (json!({"action": {"length": {"$exist": true}}}), false),
        (json!({"action": {"length": {"$exist": false}}}), true),
    ];
    for (filter, want) in cases {
        assert_eq!(body(filter.clone()), want, "{filter}");
    }
    // Large integers compare exactly.
    assert!(check(
        json!({"body": {"id": {"$gt": 9_007_199_254_740_992_u64}}}),
        r#"{"id": 9007199254740993}"#
    ));
}

#[test]
fn a_body_that_is_not_json_never_matches_a_body_filter() {
    assert!(!check(json!({"body": {"a": {"$exist": false}}}), "a=1&b=2"));
    assert!(!check(json!({"$not": {"body": {"a": 1}}}), "a=1"));
    assert!(!check(json!({"body": {"$not": {"a": 1}}}), "not json"));
    // A filter on headers only still matches.
    assert!(check(json!({"headers": {"x-relay-source": "gh"}}), "a=1"));
    // Base64-carried bodies are decoded first.
    let (encoded, encoding) = EventEnvelope::encode_body(br#"{"a":1}"#);
    let event = EventEnvelope {
        body: encoded,
        body_encoding: encoding,
        ..event_with("", None)
    };
    let filter = Filter::parse(r#"{"body":{"a":1}}"#).unwrap();
    assert!(filter.matches(&EventInput::new(&event)));
}

#[test]
fn header_names_are_case_insensitive() {
    let cases = [
        (
            json!({"Content-Type": {"$startsWith": "application/json"}}),
            true,
        ),
        (json!({"content-type": {"$endsWith": "utf-8"}}), true),
        (json!({"X-Relay-Event-Type": "issues"}), true),
        (json!({"x-relay-event-type": "push"}), false),
        (json!({"Webhook-Id": "evt_1"}), true),
        (json!({"x-github-event": {"$exist": false}}), true),
        (
            json!({"$or": [{"x-relay-source": "stripe"}, {"X-RELAY-SOURCE": "gh"}]}),
            true,
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(check(json!({ "headers": filter }), BODY), want, "{filter}");
    }
    // Both parts must match; top-level $or chooses between them.
    assert!(!check(
        json!({"headers": {"x-relay-source": "gh"}, "body": {"action": "closed"}}),
        BODY
    ));
    assert!(check(
        json!({"$or": [{"headers": {"x-relay-source": "x"}}, {"body": {"action": "opened"}}]}),
        BODY
    ));
}

#[test]
fn the_body_is_parsed_once_for_every_filter() {
    let event = event_with(BODY, None);
    let input = EventInput::new(&event);
    let a = Filter::parse(r#"{"body":{"action":"opened"}}"#).unwrap();
    let b = Filter::parse(r#"{"body":{"number":42}}"#).unwrap();
    assert!(a.matches(&input) && b.matches(&input));
    let first = input.body().map(|v| v as *const Value);
    assert!(b.matches(&input));
    assert_eq!(input.body().map(|v| v as *const Value), first);
}

fn refusal(text: &str) -> FilterError {
    Filter::parse(text).expect_err(text)
}

#[test]
fn bad_filters_are_refused_where_they_go_wrong() {
    let cases = [
        ("nope", "", "not valid JSON"),
        (
            "[]",
            "",
            "expected an object with body and/or headers, found an array",
        ),
        ("{}", "", "found an empty object"),
        (
            r#"{"bdy":{}}"#,
            "bdy",
            "expected body, headers, $and, $or or $not",
        ),
        (r#"{"body":{}}"#, "body", "expected fields or operators"),
        (
            r#"{"body":{"issue":{"labels":{"$in":"bug"}}}}"#,
            "body.issue.labels.$in",
            "expected an array of values, found a string",
        ),
        (
            r#"{"body":{"n":{"$gt":true}}}"#,
            "body.n.$gt",
            "expected a number or a string, found a boolean",
        ),
        (
            r#"{"body":{"n":{"$startsWith":1}}}"#,
            "body.n.$startsWith",
            "expected a string, found a number",
        ),
        (
            r#"{"body":{"n":{"$exist":"yes"}}}"#,
            "body.n.$exist",
            "expected true or false, found a string",
        ),
        (
            r#"{"body":{"n":{"$regex":"x"}}}"#,
            "body.n.$regex",
            "unknown operator; use one of $eq",
        ),
        (
            r#"{"body":{"$or":[{"a":1},{"b":{"$lte":null}}]}}"#,
            "body.$or[1].b.$lte",
            "expected a number or a string, found null",
        ),
        (r#"{"body":{"$and":[]}}"#, "body.$and", "non-empty array"),
        (r#"{"body":{"$or":{"a":1}}}"#, "body.$or", "found an object"),
        (
            r#"{"headers":{"$exist":true}}"#,
            "headers.$exist",
            "expected a header name",
        ),
        (r#"{"headers":"x"}"#, "headers", "found a string"),
        (
            r#"{"$not":{"bdy":1}}"#,
            "$not.bdy",
            "expected body, headers",
        ),
    ];
    for (text, path, message) in cases {
        let err = refusal(text);
        assert_eq!(err.path, path, "{text}: {err}");
        assert!(err.message.contains(message), "{text}: {err}");
    }
    assert_eq!(
        refusal(r#"{"body":{"n":{"$gt":true}}}"#).to_string(),
        "invalid filter at body.n.$gt: expected a number or a string, found a boolean"
    );
}

#[test]
fn size_and_depth_are_bounded() {
    let mut deep = json!(1);
    for _ in 0..MAX_FILTER_DEPTH - 1 {
        deep = json!({ "a": deep });
    }
    // body + 15 nested objects: 16 levels in all.
    assert!(Filter::from_value(json!({ "body": deep.clone() })).is_ok());
    let err = Filter::from_value(json!({ "body": { "a": deep } })).unwrap_err();
    assert!(err.message.contains("nested too deeply"), "{err}");
    assert!(err.path.starts_with("body.a.a"), "{err}");
    let long = "x".repeat(MAX_FILTER_BYTES);
    let err = Filter::from_value(json!({ "body": { "a": long } })).unwrap_err();
    assert!(err.message.contains("too large"), "{err}");
    assert!(err.path.is_empty());
}

#[test]
fn stored_as_written_and_parsed_when_read() {
    let text = r#"{"body":{"action":"opened"},"headers":{"X-Kind":"a"}}"#;
    let filter = Filter::parse(text).unwrap();
    let stored = serde_json::to_string(&filter).unwrap();
    assert_eq!(stored, text);
    let read: Filter = serde_json::from_str(&stored).unwrap();
    assert_eq!(read, filter);
    assert!(serde_json::from_str::<Filter>(r#"{"body":{"a":{"$gt":[]}}}"#).is_err());
}

#[test]
fn explanations_name_the_failing_part() {
    let event = event_with(BODY, Some("application/json"));
    let input = EventInput::new(&event);
    let reason = |text: &str| {
        let verdict = Filter::parse(text).unwrap().explain(&input);
        assert!(!verdict.matched, "{text}");
        verdict.reason.unwrap_or_default()
    };
    assert_eq!(
        reason(r#"{"body":{"action":"opened","number":{"$gt":50}}}"#),
        "body.number: expected $gt 50, found 42"
    );
    assert_eq!(
        reason(r#"{"body":{"issue":{"labels":{"name":"docs"}}}}"#),
        "body.issue.labels.name: no element of the array at body.issue.labels matches"
    );
    assert_eq!(
        reason(r#"{"body":{"user":{"login":"x"}}}"#),
        "body.user.login: expected \"x\", found nothing"
    );
    assert_eq!(
        reason(r#"{"headers":{"Content-Type":{"$endsWith":"xml"}}}"#),
        "headers.content-type: expected $endsWith \"xml\", found \"application/json\""
    );
    assert_eq!(
        reason(r#"{"body":{"title":{"$exist":false}}}"#),
        "body.title: expected not to exist, found \"Crash on start\""
    );
    let verdict = Filter::parse(r#"{"body":{"action":"opened"}}"#)
        .unwrap()
        .explain(&input);
    assert_eq!(
        verdict,
        Verdict {
            matched: true,
            reason: None
        }
    );
    let form = event_with("a=1", None);
    let verdict = Filter::parse(r#"{"body":{"a":"1"}}"#)
        .unwrap()
        .explain(&EventInput::new(&form));
    assert_eq!(
        verdict.reason.as_deref(),
        Some("the body is not JSON, and the filter reads the body")
    );
}

#[test]
fn subscriptions_stored_before_filters_still_load() {
    let old = r#"{"id":"sub_1","source":"gh","url":"https://a.example/","events":["*"],
        "secrets":[{"secret":"whsec_abc"}],"headers":[],"created_at":1,"revision":3}"#;
    let sub: crate::domain::model::Subscription = serde_json::from_str(old).unwrap();
    assert_eq!(sub.filter, None);
    assert!(!serde_json::to_string(&sub).unwrap().contains("filter"));
}

#[test]
fn a_float_with_more_digits_than_f64_loads_from_its_stored_form() {
    // Found by the fuzz target: the stored form of 1666…6 (47 digits) reads back one ulp off.
    fuzz_parse(include_bytes!(
        "../../../../../fuzz/seeds/filter_parse/seed-3"
    ));
    for seed in ["seed-0", "seed-1", "seed-2"] {
        let path = format!(
            "{}/../../fuzz/seeds/filter_parse/{seed}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read(&path).unwrap();
        assert!(
            Filter::parse(std::str::from_utf8(&text).unwrap()).is_ok(),
            "{seed}"
        );
        fuzz_parse(&text);
    }
}
