mod common;

use std::time::Duration;

use common::{T0, attempt, event, pinned};
use relay_core::ports::{Claim, DedupLedger, EventArchive, Lease};
use relay_core::{DedupClaim, NextStep};
use relay_local::{LocalBackend, LocalOptions};

#[tokio::test]
async fn creates_the_directory_and_database() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/.relay");
    let backend = LocalBackend::open(&nested, LocalOptions::default()).unwrap();
    assert!(nested.join("relay.db").exists());
    assert_eq!(backend.path(), nested.join("relay.db"));
    // Opening again (a second process, or a restart) finds the schema in place.
    LocalBackend::open(&nested, LocalOptions::default()).unwrap();
}

#[tokio::test]
async fn refuses_a_file_from_a_newer_relay() {
    let dir = tempfile::tempdir().unwrap();
    drop(LocalBackend::open(dir.path(), LocalOptions::default()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
    conn.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(conn);
    let err = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

/// The attempts table as version 1 of the schema made it.
const ATTEMPTS_V1: &str = "
DROP TABLE attempts;
CREATE TABLE attempts (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX attempts_by_event ON attempts (event_id, at);
CREATE INDEX attempts_by_expiry ON attempts (expires_at);
UPDATE schema_version SET version = 1;
";

#[tokio::test]
async fn upgrades_a_version_1_file_to_keyed_attempts() {
    let dir = tempfile::tempdir().unwrap();
    drop(pinned(dir.path()));
    // A file written by version 1, which appended every record: sub_a's attempt 1 twice.
    let first = attempt("evt_1", "sub_a", 1, 5_000);
    let rewritten = relay_core::AttemptRecord {
        next: NextStep::Done,
        status: Some(200),
        ..first.clone()
    };
    let other = attempt("evt_1", "sub_b", 1, 1_000);
    let retry = attempt("evt_1", "sub_a", 2, 500);
    {
        let conn = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
        conn.execute_batch(ATTEMPTS_V1).unwrap();
        for record in [&first, &other, &retry, &rewritten] {
            conn.execute(
                "INSERT INTO attempts (event_id, at, expires_at, doc) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    record.event_id,
                    record.at,
                    T0 + 86_400,
                    serde_json::to_string(record).unwrap()
                ],
            )
            .unwrap();
        }
    }
    let (store, _) = pinned(dir.path());
    // The last record of each key survives, in attempt then subscription order.
    assert_eq!(
        store.event_attempts("evt_1").await.unwrap(),
        vec![rewritten.clone(), other.clone(), retry.clone()]
    );
    // Writing a key again now replaces its record.
    let gone = relay_core::AttemptRecord {
        next: NextStep::Disabled,
        ..other.clone()
    };
    store
        .put_attempts(std::slice::from_ref(&gone), T0 + 86_400)
        .await
        .unwrap();
    assert_eq!(
        store.event_attempts("evt_1").await.unwrap(),
        vec![rewritten, gone, retry]
    );
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [2]);
}

#[tokio::test]
async fn expired_rows_are_purged_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = pinned(dir.path());
        store
            .put_event(&event("evt_old", 1), T0 + 10)
            .await
            .unwrap();
        store
            .put_event(&event("evt_new", 2), T0 + 10_000)
            .await
            .unwrap();
        store
            .put_attempts(&[attempt("evt_old", "s", 1, 1)], T0 + 10)
            .await
            .unwrap();
        store
            .claim_dedup(
                Claim::new("gh", "k", "evt_old"),
                Lease {
                    now: T0,
                    until: T0 + 10,
                },
            )
            .await
            .unwrap();
    }
    // A later process opens the file: its writer purges what expired in between.
    let clock = relay_core::FixedClock::at_secs(T0 + 100);
    let later = LocalBackend::open(
        dir.path(),
        LocalOptions {
            clock,
            ..LocalOptions::default()
        },
    )
    .unwrap();
    let mut purged = false;
    for _ in 0..100 {
        if later.get_event("evt_old").await.unwrap().is_none() {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(purged, "the expired event was never purged");
    assert!(later.get_event("evt_new").await.unwrap().is_some());
    assert!(later.event_attempts("evt_old").await.unwrap().is_empty());
    assert_eq!(
        later
            .claim_dedup(
                Claim::new("gh", "k", "evt_x"),
                Lease {
                    now: T0 + 100,
                    until: T0 + 130
                }
            )
            .await
            .unwrap(),
        DedupClaim::New
    );
}
