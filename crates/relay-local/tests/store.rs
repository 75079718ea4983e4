mod common;

use std::time::Duration;

use common::{T0, attempt, event, pinned, source, subscription};
use relay_core::{DedupClaim, Store, StoreError};
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

#[tokio::test]
async fn sources_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = pinned(dir.path());
    assert_eq!(store.get_source("gh").await.unwrap(), None);

    let mut gh = source("gh");
    store.put_source(&gh).await.unwrap();
    store.put_source(&source("alpha")).await.unwrap();
    assert_eq!(store.get_source("gh").await.unwrap(), Some(gh.clone()));

    gh.secrets.push("s3".into());
    store.put_source(&gh).await.unwrap();
    assert_eq!(store.get_source("gh").await.unwrap(), Some(gh.clone()));

    let names: Vec<_> = store
        .list_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["alpha", "gh"]);

    assert!(store.remove_source("gh").await.unwrap());
    assert!(!store.remove_source("gh").await.unwrap());
    assert_eq!(store.get_source("gh").await.unwrap(), None);
}

#[tokio::test]
async fn subscriptions_by_source() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = pinned(dir.path());
    let mut a1 = subscription("sub_1", "a");
    let mut a2 = subscription("sub_2", "a");
    let mut b1 = subscription("sub_3", "b");
    for s in [&mut a2, &mut b1, &mut a1] {
        s.revision = store.put_subscription(s).await.unwrap();
    }
    assert_eq!(
        store.source_subscriptions("a").await.unwrap(),
        vec![a1.clone(), a2.clone()]
    );
    assert_eq!(
        store.source_subscriptions("b").await.unwrap(),
        vec![b1.clone()]
    );
    assert!(store.source_subscriptions("c").await.unwrap().is_empty());
    assert_eq!(
        store.get_subscription("sub_3").await.unwrap(),
        Some(b1.clone())
    );
    assert_eq!(store.list_subscriptions().await.unwrap().len(), 3);

    // Moving a subscription to another source updates the index column too.
    let mut moved = a2.clone();
    moved.source = "b".into();
    moved.enabled = false;
    moved.disabled_reason = Some("410 Gone".into());
    moved.revision = store.put_subscription(&moved).await.unwrap();
    assert_eq!(store.source_subscriptions("a").await.unwrap(), vec![a1]);
    assert_eq!(
        store.source_subscriptions("b").await.unwrap(),
        vec![moved, b1]
    );

    assert!(store.remove_subscription("sub_1").await.unwrap());
    assert!(!store.remove_subscription("sub_1").await.unwrap());
    assert_eq!(store.get_subscription("sub_1").await.unwrap(), None);

    // Removing a source removes its subscriptions.
    store.put_source(&source("b")).await.unwrap();
    assert!(store.remove_source("b").await.unwrap());
    assert!(store.source_subscriptions("b").await.unwrap().is_empty());
    assert_eq!(store.get_subscription("sub_3").await.unwrap(), None);
}

#[tokio::test]
async fn dedup_claim_confirm_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = pinned(dir.path());
    let now = T0;
    assert_eq!(
        store
            .claim_dedup("gh", "d1", "evt_a", now, now + 30)
            .await
            .unwrap(),
        DedupClaim::New
    );
    // A second copy while the first is being accepted.
    assert_eq!(
        store
            .claim_dedup("gh", "d1", "evt_b", now + 1, now + 31)
            .await
            .unwrap(),
        DedupClaim::Pending
    );
    // Keys are per source.
    assert_eq!(
        store
            .claim_dedup("other", "d1", "evt_c", now, now + 30)
            .await
            .unwrap(),
        DedupClaim::New
    );
    store
        .confirm_dedup("gh", "d1", "evt_a", now + 86_400)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_dedup("gh", "d1", "evt_d", now + 100, now + 130)
            .await
            .unwrap(),
        DedupClaim::Queued {
            event_id: "evt_a".into()
        }
    );
    // Once the queued record expires, the key is new again.
    assert_eq!(
        store
            .claim_dedup("gh", "d1", "evt_e", now + 86_400, now + 86_430)
            .await
            .unwrap(),
        DedupClaim::New
    );
}

#[tokio::test]
async fn dedup_lease_expires_and_release_frees_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = pinned(dir.path());
    let now = T0;
    assert_eq!(
        store
            .claim_dedup("gh", "k", "evt_a", now, now + 30)
            .await
            .unwrap(),
        DedupClaim::New
    );
    assert_eq!(
        store
            .claim_dedup("gh", "k", "evt_b", now + 29, now + 59)
            .await
            .unwrap(),
        DedupClaim::Pending
    );
    // The lease lapsed (the first request died): the next copy takes the key over.
    assert_eq!(
        store
            .claim_dedup("gh", "k", "evt_b", now + 30, now + 60)
            .await
            .unwrap(),
        DedupClaim::New
    );
    // The first owner can no longer release or confirm what is now evt_b's claim.
    store.release_dedup("gh", "k", "evt_a").await.unwrap();
    assert_eq!(
        store
            .claim_dedup("gh", "k", "evt_c", now + 31, now + 61)
            .await
            .unwrap(),
        DedupClaim::Pending
    );
    let err = store
        .confirm_dedup("gh", "k", "evt_a", now + 86_400)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // evt_b could not be queued: releasing lets the provider's retry in at once.
    store.release_dedup("gh", "k", "evt_b").await.unwrap();
    assert_eq!(
        store
            .claim_dedup("gh", "k", "evt_c", now + 32, now + 62)
            .await
            .unwrap(),
        DedupClaim::New
    );
}

#[tokio::test]
async fn events_newest_first_with_attempts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = pinned(dir.path());
    let expires = T0 + 86_400;
    for (id, at) in [
        ("evt_1", 100),
        ("evt_3", 300),
        ("evt_2", 200),
        ("evt_2b", 200),
    ] {
        store.put_event(&event(id, at), expires).await.unwrap();
    }
    assert_eq!(
        store.get_event("evt_3").await.unwrap(),
        Some(event("evt_3", 300))
    );
    assert_eq!(store.get_event("nope").await.unwrap(), None);
    let ids: Vec<_> = store
        .list_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["evt_3", "evt_2b", "evt_2", "evt_1"]);
    assert_eq!(store.list_events(2).await.unwrap().len(), 2);

    let first = vec![
        attempt("evt_1", "sub_a", 1, 1_000),
        attempt("evt_1", "sub_b", 1, 1_000),
    ];
    let second = vec![attempt("evt_1", "sub_a", 2, 6_000)];
    store.put_attempts(&second, expires).await.unwrap();
    store.put_attempts(&first, expires).await.unwrap();
    store.put_attempts(&[], expires).await.unwrap();
    let log = store.event_attempts("evt_1").await.unwrap();
    assert_eq!(log, [first.clone(), second].concat());
    assert!(store.event_attempts("evt_2").await.unwrap().is_empty());
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
            .claim_dedup("gh", "k", "evt_old", T0, T0 + 10)
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
            .claim_dedup("gh", "k", "evt_x", T0 + 100, T0 + 130)
            .await
            .unwrap(),
        DedupClaim::New
    );
}
