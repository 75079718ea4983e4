//! Stripe: the account's events since a time, each missing one ingested from the API.
//!
//! `GET /v1/events?created[gte]=…&limit=100[&types[]=…][&starting_after=…]` answers
//! `{"object":"list","data":[event…],"has_more":bool}`, newest first; the next page starts after
//! the last event's id (docs.stripe.com/api/events/list, docs.stripe.com/api/pagination).
//! An event object is what Stripe's webhook body carries, so it is ingested as it is; its id is
//! the receiver's dedup key for Stripe sources.

use async_trait::async_trait;
use serde::Deserialize;

use super::client::{ApiClient, ApiError};
use super::{
    Page, ProviderApi, ReconcileError, ReconcileSettings, Reconciler, Recovery, SentEvent,
};

pub static RECONCILER: Reconciler = Reconciler {
    provider: "stripe",
    default_api_url: "https://api.stripe.com",
    headers: &[],
    connect,
};

/// Stripe lists events of at most this many types at once.
pub const MAX_TYPES: usize = 20;

fn connect(settings: &ReconcileSettings) -> Result<Box<dyn ProviderApi>, ReconcileError> {
    if settings.event_types.len() > MAX_TYPES {
        return Err(ReconcileError::Config(format!(
            "Stripe lists at most {MAX_TYPES} event types at once; {} are configured",
            settings.event_types.len()
        )));
    }
    Ok(Box::new(StripeApi {
        types: settings.event_types.clone(),
    }))
}

struct StripeApi {
    types: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct EventList {
    data: Vec<serde_json::Value>,
    #[serde(default)]
    has_more: bool,
}

#[async_trait]
impl ProviderApi for StripeApi {
    async fn page(
        &self,
        client: &mut ApiClient,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<Page, ApiError> {
        let mut url = client.url("v1/events")?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("limit", "100")
                .append_pair("created[gte]", &since.to_string());
            for event_type in &self.types {
                query.append_pair("types[]", event_type);
            }
            if let Some(after) = cursor {
                query.append_pair("starting_after", after);
            }
        }
        let response = client.get(url).await?;
        let list: EventList = serde_json::from_slice(&response.body)
            .map_err(|e| ApiError::Invalid(format!("events list: {e}")))?;
        page_of(list)
    }

    async fn redeliver(&self, _client: &mut ApiClient, _delivery_id: &str) -> Result<(), ApiError> {
        Err(ApiError::Invalid(
            "Stripe events are ingested from the API, not redelivered".into(),
        ))
    }
}

fn page_of(list: EventList) -> Result<Page, ApiError> {
    let mut sent = Vec::with_capacity(list.data.len());
    for event in list.data {
        let field = |name: &str| event.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(id), Some(event_type)) = (field("id"), field("type")) else {
            return Err(ApiError::Invalid("an event without id or type".into()));
        };
        let body = serde_json::to_vec(&event)
            .map_err(|e| ApiError::Invalid(format!("event {id}: {e}")))?;
        sent.push(SentEvent {
            key: id,
            recovery: Recovery::Ingest { event_type, body },
        });
    }
    let next = if list.has_more {
        sent.last().map(|s| s.key.clone())
    } else {
        None
    };
    Ok(Page { sent, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: &str) -> EventList {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn pages_continue_after_the_last_event_while_more_exist() {
        let page = page_of(list(
            r#"{"object":"list","has_more":true,"data":[
                {"id":"evt_2","object":"event","type":"invoice.paid","created":2},
                {"id":"evt_1","object":"event","type":"charge.succeeded","created":1}]}"#,
        ))
        .unwrap();
        assert_eq!(page.next.as_deref(), Some("evt_1"));
        assert_eq!(page.sent[0].key, "evt_2");
        let Recovery::Ingest { event_type, body } = &page.sent[0].recovery else {
            panic!("not ingested")
        };
        assert_eq!(event_type, "invoice.paid");
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["id"], "evt_2");

        let last = page_of(list(
            r#"{"object":"list","has_more":false,"data":[{"id":"evt_0","type":"t"}]}"#,
        ))
        .unwrap();
        assert_eq!(last.next, None);
        let empty = page_of(list(r#"{"object":"list","has_more":true,"data":[]}"#)).unwrap();
        assert_eq!(empty.next, None, "no last id: nothing to continue after");
    }

    #[test]
    fn events_without_id_or_type_are_refused() {
        assert!(page_of(list(r#"{"data":[{"id":"evt_1"}]}"#)).is_err());
        assert!(page_of(list(r#"{"data":[{"type":"t"}]}"#)).is_err());
    }

    #[test]
    fn at_most_twenty_types() {
        let settings = ReconcileSettings {
            event_types: (0..21).map(|i| format!("t{i}")).collect(),
            ..ReconcileSettings::default()
        };
        assert!(connect(&settings).is_err());
    }
}
