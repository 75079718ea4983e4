//! Records to items and back: JSON documents in `doc`, the event body as its own attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use relay_core::domain::model::{AttemptRecord, EventEnvelope};
use relay_core::ports::{EventSummary, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    ATTEMPTS, BODY, BODY_BYTES, BODY_DEFLATED, DOC, EVENT_TYPE_ATTR, EXPIRES_AT, Item, PK, SK,
    SOURCE_ATTR, keys,
};

/// The event item: the event's head in `doc`, its body deflated in `body_z` when that is
/// smaller (else as text in `body`, so JSON escaping cannot push a body near the limit over
/// DynamoDB's 400 KB item limit), and the attempt records known when it was written in
/// `attempts`. A 1 KiB JSON body deflates to about half, which keeps the whole item of an event
/// delivered at the first try under 1 KB: one write unit.
pub(super) fn event_item(
    event: &EventEnvelope,
    attempts: &[AttemptRecord],
    expires_at: i64,
) -> Result<Item, StoreError> {
    let head = without_body(event);
    let mut item = HashMap::from([
        (PK.to_owned(), s(keys::event_partition(&event.id))),
        (SK.to_owned(), s(&event.id)),
        (DOC.to_owned(), s(to_json(&head)?)),
        (EXPIRES_AT.to_owned(), n(expires_at)),
        (SOURCE_ATTR.to_owned(), s(&event.source)),
        (EVENT_TYPE_ATTR.to_owned(), s(&event.event_type)),
        (BODY_BYTES.to_owned(), n(event.body_len())),
    ]);
    if !event.body.is_empty() {
        let deflated = miniz_oxide::deflate::compress_to_vec(event.body.as_bytes(), DEFLATE_LEVEL);
        if deflated.len() < event.body.len() {
            item.insert(
                BODY_DEFLATED.to_owned(),
                AttributeValue::B(Blob::new(deflated)),
            );
        } else {
            item.insert(BODY.to_owned(), s(&event.body));
        }
    }
    if !attempts.is_empty() {
        let docs = attempts
            .iter()
            .map(|a| to_json(a).map(s))
            .collect::<Result<Vec<_>, _>>()?;
        item.insert(ATTEMPTS.to_owned(), AttributeValue::L(docs));
    }
    Ok(item)
}

/// Fastest of miniz's levels that still halves ordinary JSON; the hot path pays it per event.
const DEFLATE_LEVEL: u8 = 1;

/// An event's listing line from its item, without decoding the body.
pub(super) fn event_summary_from_item(item: &Item) -> Result<EventSummary, StoreError> {
    let head: EventEnvelope = from_doc(item)?;
    let body_bytes = num_attr(item, BODY_BYTES)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event item {} has no body length",
                str_attr(item, SK).unwrap_or("?")
            ))
        })?;
    Ok(EventSummary {
        body_bytes,
        ..EventSummary::of(&head)
    })
}

pub(super) fn event_from_item(item: &Item) -> Result<EventEnvelope, StoreError> {
    let mut event: EventEnvelope = from_doc(item)?;
    let corrupt = |why: &str| {
        StoreError::Corrupt(format!(
            "event item {}: {why}",
            str_attr(item, SK).unwrap_or("?")
        ))
    };
    if let Some(body) = str_attr(item, BODY) {
        event.body = body.to_owned();
    } else if let Some(AttributeValue::B(deflated)) = item.get(BODY_DEFLATED) {
        // The stored length bounds what inflating may produce.
        let limit = num_attr(item, BODY_BYTES)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| corrupt("no body length"))?;
        let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(deflated.as_ref(), limit)
            .map_err(|_| corrupt("the deflated body does not inflate"))?;
        event.body = String::from_utf8(bytes).map_err(|_| corrupt("the body is not text"))?;
    }
    Ok(event)
}

/// The attempt records stored with an event item.
pub(super) fn attempts_of_event_item(item: &Item) -> Result<Vec<AttemptRecord>, StoreError> {
    let Some(AttributeValue::L(docs)) = item.get(ATTEMPTS) else {
        return Ok(Vec::new());
    };
    docs.iter()
        .map(|doc| match doc {
            AttributeValue::S(text) => serde_json::from_str(text).map_err(|e| {
                StoreError::Corrupt(format!(
                    "event item {} has an invalid attempt record ({:?} error)",
                    str_attr(item, SK).unwrap_or("?"),
                    e.classify()
                ))
            }),
            _ => Err(StoreError::Corrupt(format!(
                "event item {} has an attempt record that is not text",
                str_attr(item, SK).unwrap_or("?")
            ))),
        })
        .collect()
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
        stored_body: event.stored_body.clone(),
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
pub(in crate::dynamo) mod tests {
    use super::*;
    use relay_core::domain::model::{BodyEncoding, Source};

    /// An item of the given attributes (shared by the dynamo modules' tests).
    pub(in crate::dynamo) fn item(pairs: &[(&str, AttributeValue)]) -> Item {
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
            stored_body: None,
        };
        let item = event_item(&event, &[], 99).unwrap();
        let shard = keys::event_shard("evt_1");
        assert_eq!(
            str_attr(&item, PK),
            Some(format!("EVENTS#{shard:02}").as_str())
        );
        assert_eq!(str_attr(&item, SK), Some("evt_1"));
        assert_eq!(num_attr(&item, BODY_BYTES), Some(event.body.len() as i64));
        assert_eq!(
            event_summary_from_item(&item).unwrap(),
            EventSummary::of(&event)
        );
        assert_eq!(num_attr(&item, EXPIRES_AT), Some(99));
        assert!(!str_attr(&item, DOC).unwrap().contains("secret"));
        assert_eq!(event_from_item(&item).unwrap(), event);
        assert!(attempts_of_event_item(&item).unwrap().is_empty());

        let empty = EventEnvelope {
            body: String::new(),
            ..event
        };
        let item = event_item(&empty, &[], 99).unwrap();
        assert!(!item.contains_key(BODY) && !item.contains_key(BODY_DEFLATED));
        assert_eq!(event_from_item(&item).unwrap(), empty);
    }

    #[test]
    fn bodies_that_deflate_are_stored_deflated() {
        let body = format!(
            "{{\"data\":[{}]}}",
            vec!["{\"id\":\"ch_1\",\"amount\":100}"; 40].join(",")
        );
        let event = EventEnvelope {
            id: "evt_1".into(),
            source: "stripe".into(),
            event_type: "charge.succeeded".into(),
            content_type: None,
            received_at: 5,
            body,
            body_encoding: BodyEncoding::Utf8,
            reconciled: false,
            stored_body: None,
        };
        let item = event_item(&event, &[], 99).unwrap();
        let Some(AttributeValue::B(deflated)) = item.get(BODY_DEFLATED) else {
            panic!("no deflated body");
        };
        assert!(deflated.as_ref().len() < event.body.len() / 4);
        assert!(!item.contains_key(BODY));
        assert_eq!(event_from_item(&item).unwrap(), event);
        // A length that does not match what inflates is reported, not trusted.
        let mut short = item.clone();
        short.insert(BODY_BYTES.to_owned(), n(3));
        assert!(matches!(
            event_from_item(&short),
            Err(StoreError::Corrupt(message)) if !message.contains("ch_1")
        ));
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
