//! `Store` in memory, following the rules of the `Store` doc comment (the contract suite checks
//! it like the real stores). For tests and benchmarks of the use cases.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::domain::model::{AttemptRecord, DedupClaim, EventEnvelope, Source, Subscription};
use crate::ports::{
    Catalog, Claim, DedupLedger, EventArchive, EventPage, EventQuery, EventSummary, Lease,
    StoreError,
};

#[derive(Debug, Clone, PartialEq)]
enum DedupState {
    Pending,
    Queued,
}

#[derive(Debug, Clone)]
struct DedupEntry {
    event_id: String,
    state: DedupState,
    expires_at: i64,
}

#[derive(Debug, Default)]
struct Tables {
    sources: BTreeMap<String, Source>,
    /// By subscription id.
    subscriptions: BTreeMap<String, Subscription>,
    /// By (source, key).
    dedup: BTreeMap<(String, String), DedupEntry>,
    events: BTreeMap<String, EventEnvelope>,
    /// By (event id, attempt number, subscription id): the attempt-log order.
    attempts: BTreeMap<(String, u32, String), AttemptRecord>,
    /// Dedup claims still to be applied with their answer lost (`lose_claim_answers`).
    lost_claim_answers: u32,
}

/// One lock over every table, so each method is atomic like a store transaction.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding these sources.
    pub fn with_sources(sources: impl IntoIterator<Item = Source>) -> Self {
        let store = Self::new();
        {
            let mut tables = store.lock();
            for source in sources {
                tables.sources.insert(source.name.clone(), source);
            }
        }
        store
    }

    /// The next `count` dedup claims are applied, then answered with an error, as a write whose
    /// answer was lost on the way back.
    pub fn lose_claim_answers(&self, count: u32) {
        self.lock().lost_claim_answers = count;
    }

    /// The (source, key) of every dedup claim held, in order.
    pub fn dedup_keys(&self) -> Vec<(String, String)> {
        self.lock().dedup.keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves the maps consistent (every method checks
        // before it changes anything), so a poisoned lock is still usable.
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Catalog for MemoryStore {
    async fn get_source(&self, name: &str) -> Result<Option<Source>, StoreError> {
        Ok(self.lock().sources.get(name).cloned())
    }

    async fn put_source(&self, source: &Source) -> Result<(), StoreError> {
        self.lock()
            .sources
            .insert(source.name.clone(), source.clone());
        Ok(())
    }

    async fn list_sources(&self) -> Result<Vec<Source>, StoreError> {
        Ok(self.lock().sources.values().cloned().collect())
    }

    async fn remove_source(&self, name: &str) -> Result<bool, StoreError> {
        let mut tables = self.lock();
        tables.subscriptions.retain(|_, sub| sub.source != name);
        Ok(tables.sources.remove(name).is_some())
    }

    async fn source_subscriptions(&self, source: &str) -> Result<Vec<Subscription>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .filter(|sub| sub.source == source)
            .cloned()
            .collect())
    }

    async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        Ok(self.lock().subscriptions.get(id).cloned())
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<u64, StoreError> {
        let expected = subscription.revision;
        let mut tables = self.lock();
        let stored_revision = tables
            .subscriptions
            .get(&subscription.id)
            .map(|s| s.revision);
        let fresh = match stored_revision {
            None => expected == 0,
            Some(revision) => revision == expected,
        };
        if !fresh {
            return Err(StoreError::Stale(format!(
                "subscription {}",
                subscription.id
            )));
        }
        let stored = Subscription {
            revision: expected + 1,
            ..subscription.clone()
        };
        tables.subscriptions.insert(stored.id.clone(), stored);
        Ok(expected + 1)
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        Ok(self.lock().subscriptions.values().cloned().collect())
    }

    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().subscriptions.remove(id).is_some())
    }
}

#[async_trait]
impl DedupLedger for MemoryStore {
    async fn claim_dedup(&self, slot: Claim<'_>, lease: Lease) -> Result<DedupClaim, StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
        let (now, lease_until) = (lease.now, lease.until);
        let mut tables = self.lock();
        let slot = (source.to_owned(), key.to_owned());
        if let Some(entry) = tables.dedup.get(&slot).filter(|e| now < e.expires_at) {
            return Ok(DedupClaim::of_live_claim(
                &entry.event_id,
                entry.state == DedupState::Queued,
                event_id,
            ));
        }
        tables.dedup.insert(
            slot,
            DedupEntry {
                event_id: event_id.to_owned(),
                state: DedupState::Pending,
                expires_at: lease_until,
            },
        );
        if tables.lost_claim_answers > 0 {
            tables.lost_claim_answers -= 1;
            return Err(StoreError::Unavailable("PutItem: answer lost".into()));
        }
        Ok(DedupClaim::New)
    }

    async fn confirm_dedup(&self, slot: Claim<'_>, expires_at: i64) -> Result<(), StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
        let mut tables = self.lock();
        let slot = (source.to_owned(), key.to_owned());
        if let Some(other) = tables.dedup.get(&slot).filter(|e| e.event_id != event_id) {
            return Err(StoreError::Conflict(format!(
                "dedup key {key:?} of source {source:?} is now claimed by event {}",
                other.event_id
            )));
        }
        // Ours, or gone: the event is on the queue, so later copies must find it.
        tables.dedup.insert(
            slot,
            DedupEntry {
                event_id: event_id.to_owned(),
                state: DedupState::Queued,
                expires_at,
            },
        );
        Ok(())
    }

    async fn release_dedup(&self, slot: Claim<'_>) -> Result<(), StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
        let mut tables = self.lock();
        let slot = (source.to_owned(), key.to_owned());
        let ours_pending = tables
            .dedup
            .get(&slot)
            .is_some_and(|e| e.event_id == event_id && e.state == DedupState::Pending);
        if ours_pending {
            tables.dedup.remove(&slot);
        }
        Ok(())
    }

    async fn claimed_event_id(
        &self,
        source: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let tables = self.lock();
        let slot = (source.to_owned(), key.to_owned());
        Ok(tables
            .dedup
            .get(&slot)
            .filter(|e| now < e.expires_at)
            .map(|e| e.event_id.clone()))
    }
}

#[async_trait]
impl EventArchive for MemoryStore {
    async fn put_event(&self, event: &EventEnvelope, _expires_at: i64) -> Result<(), StoreError> {
        self.lock().events.insert(event.id.clone(), event.clone());
        Ok(())
    }

    async fn record_event(
        &self,
        event: &EventEnvelope,
        attempts: &[AttemptRecord],
        _expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock();
        tables.events.insert(event.id.clone(), event.clone());
        for attempt in attempts {
            let key = (
                attempt.event_id.clone(),
                attempt.attempt,
                attempt.subscription_id.clone(),
            );
            tables
                .attempts
                .entry(key)
                .or_insert_with(|| attempt.clone());
        }
        Ok(())
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventEnvelope>, StoreError> {
        Ok(self.lock().events.get(id).cloned())
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let tables = self.lock();
        let log_of = |id: &str| -> Vec<AttemptRecord> {
            tables
                .attempts
                .iter()
                .filter(|((event_id, _, _), _)| event_id == id)
                .map(|(_, record)| record.clone())
                .collect()
        };
        let mut events: Vec<&EventEnvelope> = tables.events.values().collect();
        events.sort_by(|a, b| (b.received_at, b.id.as_str()).cmp(&(a.received_at, a.id.as_str())));
        let newest = events
            .into_iter()
            .filter_map(|e| {
                EventSummary::of(e)
                    .admitted(query, || Ok::<_, StoreError>(log_of(&e.id)))
                    .ok()
                    .flatten()
            })
            .take(query.limit.saturating_add(1))
            .collect();
        Ok(EventPage::from_newest(newest, query.limit))
    }

    async fn put_attempts(
        &self,
        attempts: &[AttemptRecord],
        _expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock();
        for attempt in attempts {
            let key = (
                attempt.event_id.clone(),
                attempt.attempt,
                attempt.subscription_id.clone(),
            );
            tables.attempts.insert(key, attempt.clone());
        }
        Ok(())
    }

    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(self
            .lock()
            .attempts
            .range((event_id.to_owned(), 0, String::new())..)
            .take_while(|((id, _, _), _)| id == event_id)
            .map(|(_, attempt)| attempt.clone())
            .collect())
    }
}

#[cfg(test)]
mod contract {
    crate::store_contract_tests!(async { Box::new(super::MemoryStore::new()) });
}
