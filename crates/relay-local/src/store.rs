//! `Store` over SQLite: JSON documents in TEXT columns, plus the key columns queries use.

use async_trait::async_trait;
use relay_core::ports::{Claim, Lease};
use relay_core::{
    AttemptRecord, Catalog, DedupClaim, DedupLedger, EventArchive, EventEnvelope, EventPage,
    EventQuery, EventSummary, Source, StoreError, Subscription,
};
use rusqlite::{OptionalExtension, params};

use crate::backend::LocalBackend;
use crate::db::{DbResult, decode, encode};

const PENDING: &str = "pending";
const QUEUED: &str = "queued";

fn collect_docs<T: serde::de::DeserializeOwned>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
) -> DbResult<Vec<T>> {
    let docs = conn
        .prepare_cached(sql)?
        .query_map(params, |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    docs.iter().map(|doc| decode(doc, what)).collect()
}

/// The document of the row keyed `key`, if there is one; `what` names it in a decoding error.
fn find_doc<T: serde::de::DeserializeOwned>(
    conn: &rusqlite::Connection,
    sql: &str,
    key: &str,
    what: &str,
) -> DbResult<Option<T>> {
    let doc: Option<String> = conn
        .prepare_cached(sql)?
        .query_row([key], |row| row.get(0))
        .optional()?;
    doc.map(|doc| decode(&doc, what)).transpose()
}

#[async_trait]
impl Catalog for LocalBackend {
    async fn get_source(&self, name: &str) -> Result<Option<Source>, StoreError> {
        self.read(|conn| {
            find_doc(
                conn,
                "SELECT doc FROM sources WHERE name = ?1",
                name,
                "source",
            )
        })
        .await
    }

    async fn put_source(&self, source: &Source) -> Result<(), StoreError> {
        let doc = encode(source)?;
        let name = source.name.clone();
        self.write(move |tx| {
            tx.prepare_cached("INSERT OR REPLACE INTO sources (name, doc) VALUES (?1, ?2)")?
                .execute(params![name, doc])?;
            Ok(())
        })
        .await
    }

    async fn list_sources(&self) -> Result<Vec<Source>, StoreError> {
        self.read(|conn| collect_docs(conn, "SELECT doc FROM sources ORDER BY name", [], "source"))
            .await
    }

    async fn remove_source(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM sources WHERE name = ?1")?
                .execute([&name])?;
            // A source's subscriptions go with it, as in the DynamoDB layout where they share
            // its partition.
            tx.prepare_cached("DELETE FROM subscriptions WHERE source = ?1")?
                .execute([&name])?;
            Ok(n > 0)
        })
        .await
    }

    async fn source_subscriptions(&self, source: &str) -> Result<Vec<Subscription>, StoreError> {
        self.read(|conn| {
            collect_docs(
                conn,
                "SELECT doc FROM subscriptions WHERE source = ?1 ORDER BY id",
                [source],
                "subscription",
            )
        })
        .await
    }

    async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        self.read(|conn| {
            find_doc(
                conn,
                "SELECT doc FROM subscriptions WHERE id = ?1",
                id,
                "subscription",
            )
        })
        .await
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<u64, StoreError> {
        let expected = subscription.revision;
        let stored = Subscription {
            revision: expected + 1,
            ..subscription.clone()
        };
        let doc = encode(&stored)?;
        let id = stored.id;
        let source = stored.source;
        self.write(move |tx| {
            // Checked inside the write transaction, so no other writer can slip in between.
            let current: Option<String> = tx
                .prepare_cached("SELECT doc FROM subscriptions WHERE id = ?1")?
                .query_row([&id], |row| row.get(0))
                .optional()?;
            let current_revision = match current {
                Some(doc) => Some(decode::<Subscription>(&doc, "subscription")?.revision),
                None => None,
            };
            let fresh = match current_revision {
                None => expected == 0,
                Some(revision) => revision == expected,
            };
            if !fresh {
                return Err(StoreError::Stale(format!("subscription {id}")).into());
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO subscriptions (id, source, doc) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, source, doc])?;
            Ok(expected + 1)
        })
        .await
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.read(|conn| {
            collect_docs(
                conn,
                "SELECT doc FROM subscriptions ORDER BY id",
                [],
                "subscription",
            )
        })
        .await
    }

    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM subscriptions WHERE id = ?1")?
                .execute([id])?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl DedupLedger for LocalBackend {
    async fn claim_dedup(&self, slot: Claim<'_>, lease: Lease) -> Result<DedupClaim, StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
        let (now, lease_until) = (lease.now, lease.until);
        let (source, key, event_id) = (source.to_owned(), key.to_owned(), event_id.to_owned());
        self.write(move |tx| {
            // Live while `now < expires_at`; free from the expiry instant on.
            let live: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT event_id, state FROM dedup \
                     WHERE source = ?1 AND key = ?2 AND expires_at > ?3",
                )?
                .query_row(params![source, key, now], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            match live {
                Some((holder, state)) => Ok(DedupClaim::of_live_claim(
                    &holder,
                    state == QUEUED,
                    &event_id,
                )),
                // Absent or expired (an abandoned lease, or kept long enough): take it over.
                None => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO dedup (source, key, event_id, state, expires_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        source,
                        key,
                        event_id,
                        PENDING,
                        lease_until
                    ])?;
                    Ok(DedupClaim::New)
                }
            }
        })
        .await
    }

    async fn confirm_dedup(&self, slot: Claim<'_>, expires_at: i64) -> Result<(), StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
        let (source, key, event_id) = (source.to_owned(), key.to_owned(), event_id.to_owned());
        let now = self.now_millis().div_euclid(1000);
        self.write(move |tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE dedup SET state = ?4, expires_at = ?5 \
                     WHERE source = ?1 AND key = ?2 AND event_id = ?3",
                )?
                .execute(params![source, key, event_id, QUEUED, expires_at])?;
            if updated > 0 {
                return Ok(());
            }
            // Our lease expired meanwhile. Another live claim wins; otherwise record ours, since
            // the event is on the queue and later copies must be recognised as duplicates.
            let other: Option<String> = tx
                .prepare_cached(
                    "SELECT event_id FROM dedup WHERE source = ?1 AND key = ?2 AND expires_at > ?3",
                )?
                .query_row(params![source, key, now], |row| row.get(0))
                .optional()?;
            if let Some(other) = other {
                return Err(StoreError::Conflict(format!(
                    "dedup key {key:?} of source {source:?} is now claimed by event {other}"
                ))
                .into());
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO dedup (source, key, event_id, state, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![source, key, event_id, QUEUED, expires_at])?;
            Ok(())
        })
        .await
    }

    async fn release_dedup(&self, slot: Claim<'_>) -> Result<(), StoreError> {
        let (source, key, event_id) = (slot.source, slot.key, slot.event_id);
        let (source, key, event_id) = (source.to_owned(), key.to_owned(), event_id.to_owned());
        self.write(move |tx| {
            // Only our own pending claim: a lease that expired may already belong to another
            // request, and a queued one recognises the provider's later copies.
            tx.prepare_cached(
                "DELETE FROM dedup WHERE source = ?1 AND key = ?2 AND event_id = ?3 AND state = ?4",
            )?
            .execute(params![source, key, event_id, PENDING])?;
            Ok(())
        })
        .await
    }

    async fn claimed_event_id(
        &self,
        source: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            let queued = conn
                .prepare_cached(
                    "SELECT event_id FROM dedup \
                     WHERE source = ?1 AND key = ?2 AND expires_at > ?3",
                )?
                .query_row(params![source, key, now], |row| row.get(0))
                .optional()?;
            Ok(queued)
        })
        .await
    }
}

#[async_trait]
impl EventArchive for LocalBackend {
    async fn put_event(&self, event: &EventEnvelope, expires_at: i64) -> Result<(), StoreError> {
        let doc = encode(event)?;
        let (id, source, received_at) = (event.id.clone(), event.source.clone(), event.received_at);
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO events (id, source, received_at, expires_at, doc) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, source, received_at, expires_at, doc])?;
            Ok(())
        })
        .await
    }

    async fn record_event(
        &self,
        event: &EventEnvelope,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let doc = encode(event)?;
        let (id, source, received_at) = (event.id.clone(), event.source.clone(), event.received_at);
        let rows = attempt_rows(attempts)?;
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO events (id, source, received_at, expires_at, doc) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, source, received_at, expires_at, doc])?;
            // A key logged already keeps its record: it may be a later outcome.
            insert_attempt_rows(tx, &rows, expires_at, "DO NOTHING")
        })
        .await
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventEnvelope>, StoreError> {
        self.read(|conn| find_doc(conn, "SELECT doc FROM events WHERE id = ?1", id, "event"))
            .await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        if query.limit == 0 {
            return Ok(EventPage::default());
        }
        // One more than the page, to learn whether a next page exists.
        let wanted = query.limit.saturating_add(1);
        let (before_at, before_id) = match &query.before {
            Some(cursor) => (Some(cursor.received_at), Some(cursor.id.as_str())),
            None => (None, None),
        };
        let newest = self
            .read(|conn| {
                // The source, time and cursor bound the read; the rows stream newest first
                // until the page is full, each passed through the query's own filter.
                let mut statement = conn.prepare_cached(
                    "SELECT doc FROM events \
                     WHERE (?1 IS NULL OR source = ?1) \
                       AND (?2 IS NULL OR received_at >= ?2) \
                       AND (?3 IS NULL OR received_at < ?3) \
                       AND (?4 IS NULL OR (received_at, id) < (?4, ?5)) \
                     ORDER BY received_at DESC, id DESC",
                )?;
                let mut rows = statement.query(params![
                    query.source,
                    query.since_millis,
                    query.until_millis,
                    before_at,
                    before_id
                ])?;
                let mut found = Vec::new();
                while found.len() < wanted {
                    let Some(row) = rows.next()? else { break };
                    let event: EventEnvelope = decode(&row.get::<_, String>(0)?, "event")?;
                    let summary = EventSummary::of(&event)
                        .admitted(query, || attempt_log(conn, &event.id))?;
                    found.extend(summary);
                }
                Ok(found)
            })
            .await?;
        Ok(EventPage::from_newest(newest, query.limit))
    }

    async fn put_attempts(
        &self,
        attempts: &[AttemptRecord],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let rows = attempt_rows(attempts)?;
        self.write(move |tx| {
            // A record written again for the same key replaces the earlier one, as DynamoDB's
            // put by key does; in one batch the last record of a key wins.
            insert_attempt_rows(
                tx,
                &rows,
                expires_at,
                "DO UPDATE SET at = excluded.at, expires_at = excluded.expires_at, \
                 doc = excluded.doc",
            )
        })
        .await
    }

    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(|conn| attempt_log(conn, event_id)).await
    }
}

/// An event's attempt log, by attempt number, then subscription id.
fn attempt_log(conn: &rusqlite::Connection, event_id: &str) -> DbResult<Vec<AttemptRecord>> {
    collect_docs(
        conn,
        "SELECT doc FROM attempts WHERE event_id = ?1 ORDER BY attempt, subscription_id",
        [event_id],
        "attempt",
    )
}

type AttemptRow = (String, u32, String, i64, String);

fn attempt_rows(attempts: &[AttemptRecord]) -> Result<Vec<AttemptRow>, StoreError> {
    attempts
        .iter()
        .map(|a| {
            Ok((
                a.event_id.clone(),
                a.attempt,
                a.subscription_id.clone(),
                a.at,
                encode(a)?,
            ))
        })
        .collect()
}

/// Writes attempt rows; `on_conflict` says what a row whose key is logged already does.
fn insert_attempt_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[AttemptRow],
    expires_at: i64,
    on_conflict: &str,
) -> DbResult<()> {
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO attempts (event_id, attempt, subscription_id, at, expires_at, doc) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (event_id, attempt, subscription_id) {on_conflict}"
    ))?;
    for (event_id, attempt, subscription_id, at, doc) in rows {
        insert.execute(params![
            event_id,
            attempt,
            subscription_id,
            at,
            expires_at,
            doc
        ])?;
    }
    Ok(())
}
