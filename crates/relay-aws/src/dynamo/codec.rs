//! Records to items and back: JSON documents in `doc`, the event body as its own attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use relay_core::model::EventEnvelope;
use relay_core::ports::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BODY, DOC, EXPIRES_AT, GSI1PK, GSI1SK, Item, PK, SK, keys};

/// The event item. The body is its own string attribute rather than inside the JSON `doc`, so
/// JSON escaping cannot push a body near the size limit over DynamoDB's 400 KB item limit.
pub(super) fn event_item(event: &EventEnvelope, expires_at: i64) -> Result<Item, StoreError> {
    let head = without_body(event);
    let mut item = HashMap::from([
        (PK.to_owned(), s(keys::event_pk(&event.id))),
        (SK.to_owned(), s(keys::META)),
        (DOC.to_owned(), s(to_json(&head)?)),
        (EXPIRES_AT.to_owned(), n(expires_at)),
        (GSI1PK.to_owned(), s(keys::events_bucket(event.received_at))),
        (GSI1SK.to_owned(), s(&event.id)),
    ]);
    if !event.body.is_empty() {
        item.insert(BODY.to_owned(), s(&event.body));
    }
    Ok(item)
}

pub(super) fn event_from_item(item: &Item) -> Result<EventEnvelope, StoreError> {
    let mut event: EventEnvelope = from_doc(item)?;
    if let Some(body) = str_attr(item, BODY) {
        event.body = body.to_owned();
    }
    Ok(event)
}

/// A copy of the envelope's small fields, with an empty body.
pub(super) fn without_body(event: &EventEnvelope) -> EventEnvelope {
    EventEnvelope {
        id: event.id.clone(),
        source: event.source.clone(),
        event_type: event.event_type.clone(),
        content_type: event.content_type.clone(),
        received_at: event.received_at,
        body: String::new(),
        body_encoding: event.body_encoding,
    }
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

pub(super) fn num_attr(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode record ({:?})", e.classify())))
}

/// Decodes the `doc` attribute. The message names the item and the position of the fault, never
/// its contents (a doc can hold secrets).
pub(super) fn from_doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let name = || {
        format!(
            "{}/{}",
            str_attr(item, PK).unwrap_or("?"),
            str_attr(item, SK).unwrap_or("?")
        )
    };
    let doc = str_attr(item, DOC)
        .ok_or_else(|| StoreError::Corrupt(format!("item {} has no doc", name())))?;
    serde_json::from_str(doc).map_err(|e| {
        StoreError::Corrupt(format!(
            "item {} has an invalid doc ({:?} error at line {} column {})",
            name(),
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::model::{BodyEncoding, Source};

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn event_items_keep_the_body_outside_the_doc() {
        let event = EventEnvelope {
            id: "evt_1".into(),
            source: "gh".into(),
            event_type: "push".into(),
            content_type: Some("application/json".into()),
            received_at: 1_709_251_200_000,
            body: "{\"secret\":\"\\\"quoted\\\"\"}".into(),
            body_encoding: BodyEncoding::Utf8,
        };
        let item = event_item(&event, 99).unwrap();
        assert_eq!(str_attr(&item, GSI1PK), Some("EVENTS#2024-03-01"));
        assert_eq!(str_attr(&item, GSI1SK), Some("evt_1"));
        assert_eq!(num_attr(&item, EXPIRES_AT), Some(99));
        assert!(!str_attr(&item, DOC).unwrap().contains("secret"));
        assert_eq!(event_from_item(&item).unwrap(), event);

        let empty = EventEnvelope {
            body: String::new(),
            ..event
        };
        let item = event_item(&empty, 99).unwrap();
        assert!(!item.contains_key(BODY));
        assert_eq!(event_from_item(&item).unwrap(), empty);
    }

    #[test]
    fn corrupt_docs_do_not_echo_contents() {
        let item = item(&[
            (PK, s("SOURCE#gh")),
            (SK, s("META")),
            (DOC, s("{\"name\":\"gh\",\"secrets\":[\"topsecret\"], oops")),
        ]);
        let err = from_doc::<Source>(&item).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)));
        assert!(message.contains("SOURCE#gh/META"), "{message}");
        assert!(!message.contains("topsecret"), "{message}");
    }
}
