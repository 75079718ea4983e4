//! Records to items and back: JSON documents in `doc`, the event body as its own attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use relay_core::model::EventEnvelope;
use relay_core::ports::{EventSummary, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    BODY, BODY_BYTES, DOC, EVENT_TYPE_ATTR, EXPIRES_AT, GSI1PK, GSI1SK, Item, PK, SK, SOURCE_ATTR,
    keys,
};

/// The event item. The body is its own string attribute rather than inside the JSON `doc`, so
/// JSON escaping cannot push a body near the size limit over DynamoDB's 400 KB item limit.
pub(super) fn event_item(event: &EventEnvelope, expires_at: i64) -> Result<Item, StoreError> {
    let head = without_body(event);
    let mut item = HashMap::from([
        (PK.to_owned(), s(keys::event_pk(&event.id))),
        (SK.to_owned(), s(keys::META)),
        (DOC.to_owned(), s(to_json(&head)?)),
        (EXPIRES_AT.to_owned(), n(expires_at)),
        (
            GSI1PK.to_owned(),
            s(keys::event_index_pk(event.received_at, &event.id)),
        ),
        (
            GSI1SK.to_owned(),
            s(keys::event_index_sk(event.received_at, &event.id)),
        ),
        (SOURCE_ATTR.to_owned(), s(&event.source)),
        (EVENT_TYPE_ATTR.to_owned(), s(&event.event_type)),
        (BODY_BYTES.to_owned(), n(event.body.len())),
    ]);
    if !event.body.is_empty() {
        item.insert(BODY.to_owned(), s(&event.body));
    }
    Ok(item)
}

/// An event's listing line from its index item (which has no body).
pub(super) fn event_summary_from_item(item: &Item) -> Result<EventSummary, StoreError> {
    let head: EventEnvelope = from_doc(item)?;
    let body_bytes = num_attr(item, BODY_BYTES)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event item {} has no body length",
                str_attr(item, PK).unwrap_or("?")
            ))
        })?;
    Ok(EventSummary {
        body_bytes,
        ..EventSummary::of(&head)
    })
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
        reconciled: event.reconciled,
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
            reconciled: false,
        };
        let item = event_item(&event, 99).unwrap();
        let shard = keys::event_shard("evt_1");
        assert_eq!(
            str_attr(&item, GSI1PK),
            Some(format!("EVENTS#2024-03-01#{shard:02}").as_str())
        );
        assert_eq!(str_attr(&item, GSI1SK), Some("1709251200000#evt_1"));
        assert_eq!(num_attr(&item, BODY_BYTES), Some(event.body.len() as i64));
        // The index sees only the projected attributes: a listing line, never the body.
        let projected: Item = item
            .iter()
            .filter(|(name, _)| {
                [PK, SK, GSI1PK, GSI1SK].contains(&name.as_str())
                    || super::super::GSI1_PROJECTED.contains(&name.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(!projected.contains_key(BODY));
        assert_eq!(
            event_summary_from_item(&projected).unwrap(),
            EventSummary::of(&event)
        );
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
