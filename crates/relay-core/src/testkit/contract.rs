//! The rules every `Store` adapter keeps, written once. Each check takes a fresh, empty store;
//! `store_contract_tests!` turns them into one `#[tokio::test]` per check, with the same names
//! for every adapter.
//!
//! Dedup times are fixed numbers (the dedup methods take `now`), and so are listed events' times
//! (`list_events` takes the caller's clock; DynamoDB walks back days from it). Expiry times are
//! near the real clock, so no store purges a record during a test; nothing here depends on how
//! fast a store answers.

use std::time::{SystemTime, UNIX_EPOCH};

pub use super::search_contract::*;
use crate::domain::model::{
    AttemptOutcome, AttemptRecord, BodyEncoding, DedupClaim, DeliveryPolicy, EventEnvelope,
    NextStep, ProviderConfig, SigningSecret, Source, Subscription,
};
use crate::ports::{
    Claim, EventCursor, EventPage, EventQuery, EventSummary, Lease, Store, StoreError,
};

/// A fixed "now" for dedup checks, in seconds.
pub const NOW: i64 = 1_700_000_000;
const LEASE_SECS: i64 = 30;
const DAY_SECS: i64 = 86_400;

/// Expands to one `#[tokio::test]` per contract check. `$fresh` is an expression evaluated once
/// per test to a future of a fresh store fixture: anything that derefs to a `Store` (and keeps
/// whatever the store needs, such as a temporary directory, alive for the test).
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:expr) => {
        $crate::store_contract_tests!(@each $fresh;
            sources_round_trip,
            sources_listed_by_name,
            removing_a_missing_source_is_false,
            subscriptions_by_source,
            subscriptions_listed_in_order,
            subscription_keeps_its_filter,
            subscription_keeps_its_policy_and_pause,
            subscription_moves_to_another_source,
            subscription_removed,
            removing_a_source_removes_its_subscriptions,
            revision_starts_at_zero,
            revision_create_twice_is_stale,
            revision_update_at_read_revision,
            revision_stale_write_is_refused,
            revision_write_to_removed_subscription_is_stale,
            revision_racing_writers_one_wins,
            dedup_new_then_queued_after_confirm,
            dedup_keys_are_per_source,
            dedup_pending_while_another_lease_is_live,
            dedup_lease_expires_at_its_instant,
            dedup_same_event_reclaims_its_pending_claim,
            dedup_confirm_after_lease_expiry,
            dedup_confirm_after_takeover_conflicts,
            dedup_release_frees_the_key,
            dedup_release_by_another_event_does_nothing,
            dedup_release_leaves_a_queued_claim,
            dedup_queued_claim_kept_until_its_ttl,
            dedup_claimed_event_id_names_the_live_claim,
            events_round_trip,
            events_listed_newest_first_across_sources,
            events_paged_by_cursor_without_repeats_or_gaps,
            events_filtered_by_source_and_type,
            events_filtered_by_time_range,
            events_filtered_by_delivery_state,
            events_delivery_filter_pages_and_combines,
            events_of_several_days_by_the_given_clock,
            events_limit_bounds,
            attempts_in_attempt_then_subscription_order,
            attempts_rewritten_replace_the_earlier_record,
            attempts_of_other_events_not_mixed_in,
            attempts_many_in_one_write,
            events_recorded_with_their_attempts,
        );
    };
    (@each $fresh:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let fixture = $fresh.await;
                $crate::testkit::contract::$check(&*fixture).await;
            }
        )+
    };
}

pub(super) fn recent_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Records kept long enough for any test, by any store's clock.
pub(super) fn far_expiry() -> i64 {
    recent_millis() / 1000 + 30 * DAY_SECS
}

pub fn source(name: &str) -> Source {
    Source {
        name: name.to_owned(),
        provider: ProviderConfig::named("github").unwrap(),
        secrets: vec!["s3cret".into()],
        tolerance_secs: 300,
        created_at: NOW,
        reconcile: None,
    }
}

pub fn subscription(id: &str, source: &str) -> Subscription {
    Subscription {
        id: id.to_owned(),
        source: source.to_owned(),
        url: format!("https://example.com/{id}"),
        events: vec!["push".into(), "issues.*".into()],
        secrets: vec![SigningSecret {
            secret: "whsec_abc".into(),
            expires_at: None,
        }],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        refused: None,
        headers: vec![("x-team".into(), "a".into())],
        created_at: NOW,
        filter: None,
        policy: DeliveryPolicy::default(),
        paused_until: None,
        pause_streak: 0,
        revision: 0,
    }
}

pub fn event(id: &str, received_at: i64) -> EventEnvelope {
    EventEnvelope {
        id: id.to_owned(),
        source: "gh".into(),
        event_type: "push".into(),
        content_type: Some("application/json".into()),
        received_at,
        body: format!("{{\"id\":\"{id}\",\"text\":\"quoted \\\" é\"}}"),
        body_encoding: BodyEncoding::Utf8,
        reconciled: false,
        stored_body: None,
    }
}

pub fn attempt(event_id: &str, subscription_id: &str, number: u32, at: i64) -> AttemptRecord {
    AttemptRecord {
        event_id: event_id.to_owned(),
        subscription_id: subscription_id.to_owned(),
        attempt: number,
        at,
        status: Some(500),
        outcome: AttemptOutcome::HttpStatus,
        latency_ms: 12,
        response_excerpt: "oops".into(),
        next: NextStep::RetryScheduled,
    }
}

async fn create(store: &dyn Store, sub: &Subscription) -> Subscription {
    let revision = store
        .put_subscription(sub)
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", sub.id));
    Subscription {
        revision,
        ..sub.clone()
    }
}

fn ids(subs: &[Subscription]) -> Vec<&str> {
    subs.iter().map(|s| s.id.as_str()).collect()
}

fn assert_stale(result: Result<u64, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Stale(_))),
        "{what}: expected Stale, got {result:?}"
    );
}

async fn claim(store: &dyn Store, key: &str, event_id: &str, now: i64) -> DedupClaim {
    store
        .claim_dedup(
            Claim::new("gh", key, event_id),
            Lease {
                now,
                until: now + LEASE_SECS,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("claim {key} by {event_id} at {now}: {e}"))
}

fn pending(event_id: &str) -> DedupClaim {
    DedupClaim::Pending {
        event_id: event_id.to_owned(),
    }
}

fn queued(event_id: &str) -> DedupClaim {
    DedupClaim::Queued {
        event_id: event_id.to_owned(),
    }
}

// --- sources -----------------------------------------------------------------------------

pub async fn sources_round_trip(store: &dyn Store) {
    assert_eq!(store.get_source("gh").await.unwrap(), None);
    let mut gh = source("gh");
    store.put_source(&gh).await.unwrap();
    assert_eq!(store.get_source("gh").await.unwrap(), Some(gh.clone()));
    // A put replaces the whole source.
    gh.secrets.push("next".into());
    gh.tolerance_secs = 60;
    store.put_source(&gh).await.unwrap();
    assert_eq!(store.get_source("gh").await.unwrap(), Some(gh));
    assert!(store.remove_source("gh").await.unwrap());
    assert_eq!(store.get_source("gh").await.unwrap(), None);
}

pub async fn sources_listed_by_name(store: &dyn Store) {
    assert!(store.list_sources().await.unwrap().is_empty());
    for name in ["gh", "alpha", "stripe"] {
        store.put_source(&source(name)).await.unwrap();
    }
    let names: Vec<String> = store
        .list_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["alpha", "gh", "stripe"]);
}

pub async fn removing_a_missing_source_is_false(store: &dyn Store) {
    assert!(!store.remove_source("nope").await.unwrap());
    store.put_source(&source("gh")).await.unwrap();
    assert!(store.remove_source("gh").await.unwrap());
    assert!(!store.remove_source("gh").await.unwrap());
}

// --- subscriptions -----------------------------------------------------------------------

pub async fn subscriptions_by_source(store: &dyn Store) {
    // Written out of order; each source's subscriptions come back by id.
    let a2 = create(store, &subscription("sub_2", "a")).await;
    let b1 = create(store, &subscription("sub_3", "b")).await;
    let a1 = create(store, &subscription("sub_1", "a")).await;
    assert_eq!(
        store.source_subscriptions("a").await.unwrap(),
        vec![a1, a2.clone()]
    );
    assert_eq!(
        store.source_subscriptions("b").await.unwrap(),
        vec![b1.clone()]
    );
    assert!(store.source_subscriptions("c").await.unwrap().is_empty());
    assert_eq!(store.get_subscription("sub_3").await.unwrap(), Some(b1));
    assert_eq!(store.get_subscription("sub_2").await.unwrap(), Some(a2));
    assert_eq!(store.get_subscription("sub_9").await.unwrap(), None);
}

pub async fn subscriptions_listed_in_order(store: &dyn Store) {
    assert!(store.list_subscriptions().await.unwrap().is_empty());
    // Listed by id, whatever their sources (the DynamoDB index order).
    for (id, source) in [
        ("sub_3", "a"),
        ("sub_1", "b"),
        ("sub_4", "a"),
        ("sub_2", "c"),
    ] {
        create(store, &subscription(id, source)).await;
    }
    let listed = store.list_subscriptions().await.unwrap();
    assert_eq!(ids(&listed), ["sub_1", "sub_2", "sub_3", "sub_4"]);
    assert!(listed.iter().all(|s| s.revision == 1), "{listed:?}");
}

pub async fn subscription_keeps_its_filter(store: &dyn Store) {
    use crate::domain::filter::{EventInput, Filter};
    let text = r#"{"body":{"action":{"$in":["opened","reopened"]},"issue":{"labels":{"name":"bug"}},"n":{"$gte":1.5}},"headers":{"Content-Type":{"$startsWith":"application/json"}}}"#;
    let filter = Filter::parse(text).unwrap();
    let filtered = create(
        store,
        &Subscription {
            filter: Some(filter.clone()),
            ..subscription("sub_1", "a")
        },
    )
    .await;
    let plain = create(store, &subscription("sub_2", "a")).await;
    let read = store.get_subscription("sub_1").await.unwrap();
    assert_eq!(read.as_ref(), Some(&filtered));
    assert_eq!(read.and_then(|s| s.filter), Some(filter));
    assert_eq!(
        store.source_subscriptions("a").await.unwrap(),
        vec![filtered.clone(), plain.clone()]
    );
    assert_eq!(store.list_subscriptions().await.unwrap()[1].filter, None);
    // Read back, it is a parsed filter that works.
    let listed = store.source_subscriptions("a").await.unwrap();
    let stored_filter = listed[0].filter.as_ref().unwrap();
    let opened = EventEnvelope {
        content_type: Some("application/json".into()),
        body: r#"{"action":"reopened","n":2,"issue":{"labels":[{"name":"bug"}]}}"#.into(),
        ..event("evt_1", NOW)
    };
    assert!(stored_filter.matches(&EventInput::new(&opened)));
    let closed = EventEnvelope {
        body: r#"{"action":"closed","n":2,"issue":{"labels":[{"name":"bug"}]}}"#.into(),
        ..opened
    };
    assert!(!stored_filter.matches(&EventInput::new(&closed)));
}

pub async fn subscription_keeps_its_policy_and_pause(store: &dyn Store) {
    let policy = DeliveryPolicy {
        retry_schedule: Some("1s,30s,2m".into()),
        timeout_secs: Some(7),
        max_in_flight: Some(3),
        rate: Some(0.25),
    };
    let paced = create(
        store,
        &Subscription {
            policy: policy.clone(),
            paused_until: Some(NOW * 1000 + 61_500),
            pause_streak: 2,
            ..subscription("sub_1", "a")
        },
    )
    .await;
    let plain = create(store, &subscription("sub_2", "a")).await;
    let read = store.get_subscription("sub_1").await.unwrap();
    assert_eq!(read.as_ref(), Some(&paced));
    assert_eq!(read.map(|s| s.policy), Some(policy));
    assert_eq!(
        store.source_subscriptions("a").await.unwrap(),
        vec![paced.clone(), plain.clone()]
    );
    let listed = store.list_subscriptions().await.unwrap();
    assert_eq!(listed[0].paused_until, Some(NOW * 1000 + 61_500));
    assert_eq!(listed[0].pause_streak, 2);
    assert!(listed[1].policy.is_default());
    assert_eq!((listed[1].paused_until, listed[1].pause_streak), (None, 0));
    // Resetting to the defaults reads back as defaults.
    let reset = Subscription {
        policy: DeliveryPolicy::default(),
        paused_until: None,
        pause_streak: 0,
        ..paced
    };
    store.put_subscription(&reset).await.unwrap();
    let read = store.get_subscription("sub_1").await.unwrap().unwrap();
    assert!(read.policy.is_default() && read.paused_until.is_none());
}

pub async fn subscription_moves_to_another_source(store: &dyn Store) {
    let a1 = create(store, &subscription("sub_1", "a")).await;
    let a2 = create(store, &subscription("sub_2", "a")).await;
    let b3 = create(store, &subscription("sub_3", "b")).await;
    let moved = Subscription {
        source: "b".into(),
        enabled: false,
        disabled_reason: Some("410 Gone".into()),
        ..a2
    };
    let moved = Subscription {
        revision: store.put_subscription(&moved).await.unwrap(),
        ..moved
    };
    assert_eq!(moved.revision, 2);
    // No copy stays under the old source.
    assert_eq!(store.source_subscriptions("a").await.unwrap(), vec![a1]);
    assert_eq!(
        store.source_subscriptions("b").await.unwrap(),
        vec![moved.clone(), b3]
    );
    assert_eq!(store.get_subscription("sub_2").await.unwrap(), Some(moved));
    assert_eq!(
        ids(&store.list_subscriptions().await.unwrap()),
        ["sub_1", "sub_2", "sub_3"]
    );
}

pub async fn subscription_removed(store: &dyn Store) {
    let a1 = create(store, &subscription("sub_1", "a")).await;
    create(store, &subscription("sub_2", "a")).await;
    assert!(store.remove_subscription("sub_2").await.unwrap());
    assert!(!store.remove_subscription("sub_2").await.unwrap());
    assert!(!store.remove_subscription("sub_9").await.unwrap());
    assert_eq!(store.get_subscription("sub_2").await.unwrap(), None);
    assert_eq!(store.source_subscriptions("a").await.unwrap(), vec![a1]);
    assert_eq!(ids(&store.list_subscriptions().await.unwrap()), ["sub_1"]);
}

pub async fn removing_a_source_removes_its_subscriptions(store: &dyn Store) {
    store.put_source(&source("a")).await.unwrap();
    store.put_source(&source("b")).await.unwrap();
    let a1 = create(store, &subscription("sub_1", "a")).await;
    let b2 = create(store, &subscription("sub_2", "b")).await;
    create(store, &subscription("sub_3", "b")).await;
    assert!(store.remove_source("b").await.unwrap());
    assert!(store.source_subscriptions("b").await.unwrap().is_empty());
    assert_eq!(store.get_subscription("sub_2").await.unwrap(), None);
    assert_eq!(store.get_subscription("sub_3").await.unwrap(), None);
    assert_eq!(ids(&store.list_subscriptions().await.unwrap()), ["sub_1"]);
    assert_eq!(store.get_subscription("sub_1").await.unwrap(), Some(a1));
    // A removed subscription is not written back by a writer that read it before.
    assert_stale(
        store.put_subscription(&b2).await,
        "write after its source was removed",
    );
    assert_eq!(store.get_subscription("sub_2").await.unwrap(), None);
}

// --- the revision rule -------------------------------------------------------------------

pub async fn revision_starts_at_zero(store: &dyn Store) {
    assert_eq!(
        store
            .put_subscription(&subscription("sub_1", "a"))
            .await
            .unwrap(),
        1
    );
    let stored = store.get_subscription("sub_1").await.unwrap();
    assert_eq!(stored.map(|s| s.revision), Some(1));
    // Only 0 creates: a first write naming another revision finds nothing to update.
    let unseen = Subscription {
        revision: 1,
        ..subscription("sub_2", "a")
    };
    assert_stale(
        store.put_subscription(&unseen).await,
        "update of a subscription never stored",
    );
    assert_eq!(store.get_subscription("sub_2").await.unwrap(), None);
}

pub async fn revision_create_twice_is_stale(store: &dyn Store) {
    let first = create(store, &subscription("sub_1", "a")).await;
    let again = Subscription {
        url: "https://example.com/other".into(),
        ..subscription("sub_1", "a")
    };
    assert_stale(store.put_subscription(&again).await, "second create");
    assert_eq!(store.get_subscription("sub_1").await.unwrap(), Some(first));
}

pub async fn revision_update_at_read_revision(store: &dyn Store) {
    create(store, &subscription("sub_1", "a")).await;
    for expected in 1..=3 {
        let mut read = store.get_subscription("sub_1").await.unwrap().unwrap();
        assert_eq!(read.revision, expected);
        read.url = format!("https://example.com/v{expected}");
        assert_eq!(store.put_subscription(&read).await.unwrap(), expected + 1);
        let stored = store.get_subscription("sub_1").await.unwrap().unwrap();
        assert_eq!(
            stored,
            Subscription {
                revision: expected + 1,
                ..read
            }
        );
    }
}

pub async fn revision_stale_write_is_refused(store: &dyn Store) {
    let read = create(store, &subscription("sub_1", "a")).await;
    let disabled = Subscription {
        enabled: false,
        disabled_reason: Some("410 Gone".into()),
        ..read.clone()
    };
    assert_eq!(store.put_subscription(&disabled).await.unwrap(), 2);
    // A writer still holding revision 1 must not undo the disable.
    let late = Subscription {
        url: "https://example.com/late".into(),
        ..read
    };
    assert_stale(
        store.put_subscription(&late).await,
        "write at an old revision",
    );
    // Nor a writer naming a revision from the future.
    let ahead = Subscription {
        revision: 7,
        ..late
    };
    assert_stale(
        store.put_subscription(&ahead).await,
        "write at a revision never stored",
    );
    let stored = store.get_subscription("sub_1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Subscription {
            revision: 2,
            ..disabled
        }
    );
}

pub async fn revision_write_to_removed_subscription_is_stale(store: &dyn Store) {
    let read = create(store, &subscription("sub_1", "a")).await;
    assert!(store.remove_subscription("sub_1").await.unwrap());
    assert_stale(store.put_subscription(&read).await, "write after removal");
    assert_eq!(store.get_subscription("sub_1").await.unwrap(), None);
    assert!(store.source_subscriptions("a").await.unwrap().is_empty());
    assert!(store.list_subscriptions().await.unwrap().is_empty());
    // Moving it elsewhere does not bring it back either.
    let moved = Subscription {
        source: "b".into(),
        ..read
    };
    assert_stale(store.put_subscription(&moved).await, "move after removal");
    assert_eq!(store.get_subscription("sub_1").await.unwrap(), None);
    assert!(store.source_subscriptions("b").await.unwrap().is_empty());
}

pub async fn revision_racing_writers_one_wins(store: &dyn Store) {
    let read = create(store, &subscription("sub_1", "a")).await;
    let first = Subscription {
        url: "https://example.com/first".into(),
        ..read.clone()
    };
    let second = Subscription {
        enabled: false,
        ..read
    };
    let (a, b) = futures::join!(
        store.put_subscription(&first),
        store.put_subscription(&second)
    );
    let stored = store.get_subscription("sub_1").await.unwrap().unwrap();
    match (a, b) {
        (Ok(2), Err(StoreError::Stale(_))) => {
            assert_eq!(
                stored,
                Subscription {
                    revision: 2,
                    ..first
                }
            );
        }
        (Err(StoreError::Stale(_)), Ok(2)) => {
            assert_eq!(
                stored,
                Subscription {
                    revision: 2,
                    ..second
                }
            );
        }
        other => panic!("exactly one writer must win at revision 2: {other:?}"),
    }
}

// --- dedup -------------------------------------------------------------------------------

pub async fn dedup_new_then_queued_after_confirm(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), NOW + DAY_SECS)
        .await
        .unwrap();
    assert_eq!(claim(store, "d1", "evt_b", NOW + 1).await, queued("evt_a"));
    // Long after the lease, and for the first event itself too.
    assert_eq!(
        claim(store, "d1", "evt_c", NOW + 3600).await,
        queued("evt_a")
    );
    assert_eq!(
        claim(store, "d1", "evt_a", NOW + 3600).await,
        queued("evt_a")
    );
    // Confirming again (a retried confirm) changes nothing.
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), NOW + DAY_SECS)
        .await
        .unwrap();
    assert_eq!(
        claim(store, "d1", "evt_d", NOW + 3601).await,
        queued("evt_a")
    );
}

pub async fn dedup_keys_are_per_source(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    assert_eq!(
        store
            .claim_dedup(
                Claim::new("other", "d1", "evt_b"),
                Lease {
                    now: NOW,
                    until: NOW + LEASE_SECS
                }
            )
            .await
            .unwrap(),
        DedupClaim::New
    );
    assert_eq!(claim(store, "d2", "evt_c", NOW).await, DedupClaim::New);
    store
        .confirm_dedup(Claim::new("other", "d1", "evt_b"), NOW + DAY_SECS)
        .await
        .unwrap();
    assert_eq!(claim(store, "d1", "evt_d", NOW + 1).await, pending("evt_a"));
}

pub async fn dedup_pending_while_another_lease_is_live(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    for (event_id, at) in [("evt_b", NOW), ("evt_c", NOW + 1), ("evt_b", NOW + 15)] {
        assert_eq!(
            claim(store, "d1", event_id, at).await,
            pending("evt_a"),
            "{event_id} at NOW+{}",
            at - NOW
        );
    }
    // A refused claim does not extend or take over the lease.
    assert_eq!(
        claim(store, "d1", "evt_b", NOW + LEASE_SECS).await,
        DedupClaim::New
    );
}

/// A claim with `expires_at = T` is live while `now < T` and free from `now >= T`.
pub async fn dedup_lease_expires_at_its_instant(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    let expiry = NOW + LEASE_SECS;
    assert_eq!(
        claim(store, "d1", "evt_b", expiry - 1).await,
        pending("evt_a")
    );
    assert_eq!(claim(store, "d1", "evt_b", expiry).await, DedupClaim::New);
    // evt_b holds it now, with its own lease.
    assert_eq!(
        claim(store, "d1", "evt_c", expiry + 1).await,
        pending("evt_b")
    );
}

/// A claim retried by the same event (the first try landed, its answer was lost) is its own.
pub async fn dedup_same_event_reclaims_its_pending_claim(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    assert_eq!(claim(store, "d1", "evt_a", NOW + 1).await, DedupClaim::New);
    // Still one claim, still held by evt_a against others, and it can be confirmed.
    assert_eq!(claim(store, "d1", "evt_b", NOW + 2).await, pending("evt_a"));
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), NOW + DAY_SECS)
        .await
        .unwrap();
    assert_eq!(claim(store, "d1", "evt_b", NOW + 3).await, queued("evt_a"));
}

pub async fn dedup_confirm_after_lease_expiry(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    // The event reached the queue after its lease ran out, and nobody took the key meanwhile:
    // the confirm still records it, so later copies are duplicates.
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), NOW + DAY_SECS)
        .await
        .unwrap();
    assert_eq!(
        claim(store, "d1", "evt_b", NOW + LEASE_SECS + 5).await,
        queued("evt_a")
    );
}

pub async fn dedup_confirm_after_takeover_conflicts(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    assert_eq!(
        claim(store, "d1", "evt_b", NOW + LEASE_SECS).await,
        DedupClaim::New
    );
    let late = store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), NOW + DAY_SECS)
        .await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    // The first owner's release cannot drop what is evt_b's claim now.
    store
        .release_dedup(Claim::new("gh", "d1", "evt_a"))
        .await
        .unwrap();
    assert_eq!(
        claim(store, "d1", "evt_c", NOW + LEASE_SECS + 1).await,
        pending("evt_b")
    );
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_b"), NOW + DAY_SECS)
        .await
        .unwrap();
    assert_eq!(
        claim(store, "d1", "evt_c", NOW + LEASE_SECS + 2).await,
        queued("evt_b")
    );
}

pub async fn dedup_release_frees_the_key(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    store
        .release_dedup(Claim::new("gh", "d1", "evt_a"))
        .await
        .unwrap();
    // The provider's retry is accepted at once, well inside the old lease.
    assert_eq!(claim(store, "d1", "evt_b", NOW + 1).await, DedupClaim::New);
    assert_eq!(claim(store, "d1", "evt_c", NOW + 2).await, pending("evt_b"));
    // Releasing what is not held is not an error.
    store
        .release_dedup(Claim::new("gh", "d9", "evt_a"))
        .await
        .unwrap();
}

pub async fn dedup_release_by_another_event_does_nothing(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    store
        .release_dedup(Claim::new("gh", "d1", "evt_other"))
        .await
        .unwrap();
    store
        .release_dedup(Claim::new("other", "d1", "evt_a"))
        .await
        .unwrap();
    assert_eq!(claim(store, "d1", "evt_b", NOW + 1).await, pending("evt_a"));
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), NOW + DAY_SECS)
        .await
        .unwrap();
    assert_eq!(claim(store, "d1", "evt_b", NOW + 2).await, queued("evt_a"));
}

/// Only a pending claim is released: once the event is queued, its claim is what recognises the
/// provider's later copies.
pub async fn dedup_release_leaves_a_queued_claim(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), NOW + DAY_SECS)
        .await
        .unwrap();
    store
        .release_dedup(Claim::new("gh", "d1", "evt_a"))
        .await
        .unwrap();
    assert_eq!(claim(store, "d1", "evt_b", NOW + 1).await, queued("evt_a"));
}

pub async fn dedup_queued_claim_kept_until_its_ttl(store: &dyn Store) {
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    let expiry = NOW + DAY_SECS;
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), expiry)
        .await
        .unwrap();
    assert_eq!(
        claim(store, "d1", "evt_b", expiry - 1).await,
        queued("evt_a")
    );
    // From its expiry instant the key is new again (whether or not it was reaped yet).
    assert_eq!(claim(store, "d1", "evt_b", expiry).await, DedupClaim::New);
    assert_eq!(
        claim(store, "d1", "evt_c", expiry + 1).await,
        pending("evt_b")
    );
}

pub async fn dedup_claimed_event_id_names_the_live_claim(store: &dyn Store) {
    let queued_id = |key: &'static str, now: i64| async move {
        store
            .claimed_event_id("gh", key, now)
            .await
            .unwrap_or_else(|e| panic!("claimed_event_id {key} at {now}: {e}"))
    };
    assert_eq!(queued_id("d1", NOW).await, None, "never claimed");
    assert_eq!(claim(store, "d1", "evt_a", NOW).await, DedupClaim::New);
    assert_eq!(
        queued_id("d1", NOW).await.as_deref(),
        Some("evt_a"),
        "pending counts"
    );
    let expiry = NOW + DAY_SECS;
    store
        .confirm_dedup(Claim::new("gh", "d1", "evt_a"), expiry)
        .await
        .unwrap();
    assert_eq!(queued_id("d1", NOW + 1).await.as_deref(), Some("evt_a"));
    assert_eq!(queued_id("d1", expiry - 1).await.as_deref(), Some("evt_a"));
    assert_eq!(
        queued_id("d1", expiry).await,
        None,
        "expired at its instant"
    );
    assert_eq!(
        store
            .claimed_event_id("other", "d1", NOW + 1)
            .await
            .unwrap(),
        None,
        "keys are per source"
    );
}

// --- events and the attempt log ----------------------------------------------------------

pub async fn events_round_trip(store: &dyn Store) {
    let base = recent_millis();
    let text = event("evt_1", base);
    let binary = EventEnvelope {
        body: "AAEC/w==".into(),
        body_encoding: BodyEncoding::Base64,
        content_type: None,
        ..event("evt_2", base)
    };
    let empty = EventEnvelope {
        body: String::new(),
        ..event("evt_3", base)
    };
    for e in [&text, &binary, &empty] {
        store.put_event(e, far_expiry()).await.unwrap();
    }
    assert_eq!(store.get_event("evt_1").await.unwrap(), Some(text));
    assert_eq!(store.get_event("evt_2").await.unwrap(), Some(binary));
    assert_eq!(store.get_event("evt_3").await.unwrap(), Some(empty));
    assert_eq!(store.get_event("evt_missing").await.unwrap(), None);
}

/// Where the event checks put "now": a fixed instant, passed to `list_events` as the caller's
/// clock would (2023-11-14T22:13:20Z).
pub(super) const LIST_NOW_MILLIS: i64 = NOW * 1000;
pub(super) const DAY_MILLIS: i64 = DAY_SECS * 1000;

pub(super) fn event_of(
    id: &str,
    source: &str,
    event_type: &str,
    received_at: i64,
) -> EventEnvelope {
    EventEnvelope {
        source: source.to_owned(),
        event_type: event_type.to_owned(),
        ..event(id, received_at)
    }
}

pub(super) async fn put_events(store: &dyn Store, events: &[EventEnvelope]) {
    for e in events {
        store
            .put_event(e, far_expiry())
            .await
            .unwrap_or_else(|err| panic!("storing {}: {err}", e.id));
    }
}

pub(super) async fn page(store: &dyn Store, query: &EventQuery) -> EventPage {
    store
        .list_events(query)
        .await
        .unwrap_or_else(|e| panic!("listing {query:?}: {e}"))
}

pub(super) fn page_ids(page: &EventPage) -> Vec<&str> {
    page.events.iter().map(|e| e.id.as_str()).collect()
}

/// Every page of `query` (with its limit as the page size), following the cursors; panics on a
/// listing that does not end.
pub(super) async fn all_pages(store: &dyn Store, query: &EventQuery) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut query = query.clone();
    loop {
        assert!(pages.len() < 100, "paging {query:?} does not end");
        let got = page(store, &query).await;
        assert!(
            got.events.len() <= query.limit,
            "{} events on a page of {}",
            got.events.len(),
            query.limit
        );
        pages.push(page_ids(&got).into_iter().map(str::to_owned).collect());
        match got.next {
            Some(cursor) => query.before = Some(cursor),
            None => return pages,
        }
    }
}

/// Twelve events over four days, two sources and three types, with a tie in time.
fn mixed_events() -> Vec<EventEnvelope> {
    let t = LIST_NOW_MILLIS - 60_000;
    vec![
        event_of("evt_a01", "gh", "push", t - 10 * DAY_MILLIS),
        event_of("evt_a02", "stripe", "charge.paid", t - 3 * DAY_MILLIS),
        event_of("evt_a03", "gh", "issues.opened", t - 3 * DAY_MILLIS + 5),
        event_of("evt_a04", "gh", "push", t - DAY_MILLIS),
        event_of("evt_a05", "stripe", "charge.failed", t - DAY_MILLIS + 1),
        event_of("evt_a06", "stripe", "charge.paid", t - 500),
        event_of("evt_a07", "gh", "push", t - 400),
        event_of("evt_a08", "gh", "push", t - 300),
        // Same millisecond: the larger id is the newer.
        event_of("evt_a09", "stripe", "charge.paid", t - 200),
        event_of("evt_a10", "gh", "issues.opened", t - 200),
        event_of("evt_a11", "gh", "push", t - 100),
        event_of("evt_a12", "stripe", "charge.paid", t),
    ]
}

/// The ids of `events` that pass `keep`, newest first.
pub(super) fn newest_first(
    events: &[EventEnvelope],
    keep: impl Fn(&EventEnvelope) -> bool,
) -> Vec<String> {
    let mut kept: Vec<&EventEnvelope> = events.iter().filter(|e| keep(e)).collect();
    kept.sort_by(|a, b| (b.received_at, &b.id).cmp(&(a.received_at, &a.id)));
    kept.into_iter().map(|e| e.id.clone()).collect()
}

pub async fn events_listed_newest_first_across_sources(store: &dyn Store) {
    let empty = page(store, &EventQuery::newest(10, LIST_NOW_MILLIS)).await;
    assert_eq!(empty, EventPage::default());
    let t = LIST_NOW_MILLIS - 60_000;
    // Written out of order, from two sources, with a tie in time.
    let events = [
        event_of("evt_1", "gh", "push", t + 100),
        event_of("evt_3", "stripe", "charge.paid", t + 300),
        event_of("evt_2", "gh", "push", t + 200),
        event_of("evt_2b", "stripe", "charge.paid", t + 200),
    ];
    put_events(store, &events).await;
    let listed = page(store, &EventQuery::newest(10, LIST_NOW_MILLIS)).await;
    assert_eq!(page_ids(&listed), ["evt_3", "evt_2b", "evt_2", "evt_1"]);
    assert_eq!(listed.next, None);
    // A listing shows everything but the body, and the body's length.
    assert_eq!(listed.events[0], EventSummary::of(&events[1]));
    assert_eq!(listed.events[0].body_bytes, events[1].body.len());
    assert!(listed.events[0].body_bytes > 0);
}

pub async fn events_paged_by_cursor_without_repeats_or_gaps(store: &dyn Store) {
    let events = mixed_events();
    put_events(store, &events).await;
    let everything = newest_first(&events, |_| true);
    for size in [1, 2, 3, 5, 12] {
        let pages = all_pages(store, &EventQuery::newest(size, LIST_NOW_MILLIS)).await;
        // Full pages until the last; no empty page at the end.
        assert!(
            pages.iter().all(|p| !p.is_empty()),
            "size {size}: {pages:?}"
        );
        assert!(
            pages[..pages.len() - 1].iter().all(|p| p.len() == size),
            "size {size}: {pages:?}"
        );
        assert_eq!(pages.concat(), everything, "pages of {size}");
    }
    // The cursor is the last event shown, and its text form reads back.
    let first = page(store, &EventQuery::newest(4, LIST_NOW_MILLIS)).await;
    let cursor = first.next.clone().expect("more than four events");
    assert_eq!(cursor, EventCursor::after(&first.events[3]));
    assert_eq!(
        cursor.to_string().parse::<EventCursor>(),
        Ok(cursor.clone())
    );
    // A cursor of an event written meanwhile, or removed, still only bounds the position.
    let between = EventCursor {
        received_at: events[5].received_at,
        id: "evt_a05z".into(),
    };
    let after_between = page(
        store,
        &EventQuery {
            before: Some(between),
            ..EventQuery::newest(2, LIST_NOW_MILLIS)
        },
    )
    .await;
    assert_eq!(page_ids(&after_between), ["evt_a05", "evt_a04"]);
}

pub async fn events_filtered_by_source_and_type(store: &dyn Store) {
    let events = mixed_events();
    put_events(store, &events).await;
    let filters: [(Option<&str>, Option<&str>); 8] = [
        (Some("gh"), None),
        (None, Some("charge.paid")),
        (Some("gh"), Some("push")),
        (Some("stripe"), Some("push")),
        (Some("nobody"), None),
        // Types are patterns, as subscriptions write them.
        (None, Some("charge.*")),
        (Some("gh"), Some("issues.*")),
        (None, Some("*")),
    ];
    for (source, pattern) in filters {
        let expected = newest_first(&events, |e| {
            source.is_none_or(|s| e.source == s)
                && pattern.is_none_or(|p| crate::domain::patterns::matches(p, &e.event_type))
        });
        for size in [2, 50] {
            let query = EventQuery {
                source: source.map(str::to_owned),
                types: pattern.map(|p| vec![p.to_owned()]).unwrap_or_default(),
                ..EventQuery::newest(size, LIST_NOW_MILLIS)
            };
            let pages = all_pages(store, &query).await;
            assert_eq!(pages.concat(), expected, "{source:?} {pattern:?} by {size}");
        }
    }
    // An exact type is exact, not a prefix; several patterns match any of them.
    let prefix = EventQuery {
        types: vec!["charge".into()],
        ..EventQuery::newest(50, LIST_NOW_MILLIS)
    };
    assert!(page(store, &prefix).await.events.is_empty());
    let either = EventQuery {
        types: vec!["charge.failed".into(), "issues.*".into()],
        ..EventQuery::newest(50, LIST_NOW_MILLIS)
    };
    assert_eq!(
        page_ids(&page(store, &either).await),
        ["evt_a10", "evt_a05", "evt_a03"]
    );
}

/// Days come from the caller's clock, not the store's: the system clock is years past these
/// events, so a store that walked back from it would find none. The same events list the same
/// way from a clock on their last day or days later.
pub async fn events_of_several_days_by_the_given_clock(store: &dyn Store) {
    let day_zero = LIST_NOW_MILLIS;
    let events = [
        event_of("evt_d1", "gh", "push", day_zero - 10 * DAY_MILLIS),
        event_of("evt_d2", "gh", "push", day_zero - 3 * DAY_MILLIS),
        event_of("evt_d3", "gh", "push", day_zero - DAY_MILLIS),
        event_of("evt_d4", "gh", "push", day_zero),
    ];
    put_events(store, &events).await;
    for clock in [day_zero, day_zero + 2 * DAY_MILLIS] {
        let listed = page(store, &EventQuery::newest(10, clock)).await;
        assert_eq!(
            page_ids(&listed),
            ["evt_d4", "evt_d3", "evt_d2", "evt_d1"],
            "clock at {clock}"
        );
        let pages = all_pages(store, &EventQuery::newest(3, clock)).await;
        assert_eq!(
            pages,
            [vec!["evt_d4", "evt_d3", "evt_d2"], vec!["evt_d1"]],
            "clock at {clock}"
        );
    }
    // A cursor into an earlier day goes on from there.
    let from_the_cursor = EventQuery {
        before: Some(EventCursor::after(&EventSummary::of(&events[2]))),
        ..EventQuery::newest(10, day_zero)
    };
    assert_eq!(
        page_ids(&page(store, &from_the_cursor).await),
        ["evt_d2", "evt_d1"]
    );
}

pub async fn events_limit_bounds(store: &dyn Store) {
    let events = mixed_events();
    put_events(store, &events).await;
    let everything = newest_first(&events, |_| true);
    // 0 is an empty page with no cursor.
    assert_eq!(
        page(store, &EventQuery::newest(0, LIST_NOW_MILLIS)).await,
        EventPage::default()
    );
    let one = page(store, &EventQuery::newest(1, LIST_NOW_MILLIS)).await;
    assert_eq!(page_ids(&one), [everything[0].as_str()]);
    assert!(one.next.is_some());
    // Exactly as many as there are: all of them, and no next page.
    let exact = page(store, &EventQuery::newest(events.len(), LIST_NOW_MILLIS)).await;
    assert_eq!(page_ids(&exact), everything);
    assert_eq!(exact.next, None);
    // One fewer: a next page holding the oldest.
    let short = page(
        store,
        &EventQuery::newest(events.len() - 1, LIST_NOW_MILLIS),
    )
    .await;
    assert_eq!(short.events.len(), events.len() - 1);
    let rest = page(
        store,
        &EventQuery {
            before: short.next,
            ..EventQuery::newest(events.len(), LIST_NOW_MILLIS)
        },
    )
    .await;
    assert_eq!(page_ids(&rest), [everything[everything.len() - 1].as_str()]);
    assert_eq!(rest.next, None);
    // Far more than there are.
    let many = page(store, &EventQuery::newest(10_000, LIST_NOW_MILLIS)).await;
    assert_eq!(page_ids(&many), everything);
    assert_eq!(many.next, None);
}

/// Ordered by attempt number, then subscription id, whatever the write order and times.
pub async fn attempts_in_attempt_then_subscription_order(store: &dyn Store) {
    let at = recent_millis();
    // Times deliberately disagree with the attempt order: a retry of sub_b that started
    // before sub_a's first attempt still comes after it.
    let first = vec![
        attempt("evt_1", "sub_b", 1, at + 500),
        attempt("evt_1", "sub_a", 1, at + 900),
    ];
    let second = vec![
        attempt("evt_1", "sub_b", 2, at + 100),
        attempt("evt_1", "sub_a", 2, at + 5_000),
    ];
    let tenth = vec![attempt("evt_1", "sub_a", 10, at)];
    store.put_attempts(&tenth, far_expiry()).await.unwrap();
    store.put_attempts(&second, far_expiry()).await.unwrap();
    store.put_attempts(&first, far_expiry()).await.unwrap();
    store.put_attempts(&[], far_expiry()).await.unwrap();
    let log = store.event_attempts("evt_1").await.unwrap();
    let order: Vec<(u32, &str)> = log
        .iter()
        .map(|a| (a.attempt, a.subscription_id.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (1, "sub_a"),
            (1, "sub_b"),
            (2, "sub_a"),
            (2, "sub_b"),
            (10, "sub_a")
        ]
    );
    assert_eq!(log[0], first[1]);
    assert_eq!(log[3], second[0]);
    assert_eq!(log[4], tenth[0]);
}

/// The same (event, subscription, attempt number) written again replaces the earlier record.
pub async fn attempts_rewritten_replace_the_earlier_record(store: &dyn Store) {
    let at = recent_millis();
    let retrying = attempt("evt_1", "sub_a", 1, at);
    let other = attempt("evt_1", "sub_b", 1, at);
    store
        .put_attempts(&[retrying.clone(), other.clone()], far_expiry())
        .await
        .unwrap();
    // The fanout ran again (a redelivered message) and this time the attempt succeeded.
    let done = AttemptRecord {
        at: at + 2_000,
        status: Some(200),
        outcome: AttemptOutcome::Ok,
        response_excerpt: String::new(),
        next: NextStep::Done,
        ..retrying.clone()
    };
    store
        .put_attempts(std::slice::from_ref(&done), far_expiry())
        .await
        .unwrap();
    assert_eq!(
        store.event_attempts("evt_1").await.unwrap(),
        vec![done.clone(), other.clone()]
    );
    // Within one batch too, the last record of a key wins.
    let dropped = AttemptRecord {
        next: NextStep::Dropped,
        ..other.clone()
    };
    store
        .put_attempts(&[other.clone(), dropped.clone()], far_expiry())
        .await
        .unwrap();
    assert_eq!(
        store.event_attempts("evt_1").await.unwrap(),
        vec![done, dropped]
    );
}

pub async fn attempts_of_other_events_not_mixed_in(store: &dyn Store) {
    let at = recent_millis();
    // "evt_1" is a prefix of "evt_10": neither log may pick up the other's records.
    let mine = vec![
        attempt("evt_1", "sub_a", 1, at),
        attempt("evt_1", "sub_a", 2, at),
    ];
    let theirs = vec![
        attempt("evt_10", "sub_a", 1, at),
        attempt("evt_2", "sub_a", 1, at),
    ];
    store
        .put_attempts(&[theirs.clone(), mine.clone()].concat(), far_expiry())
        .await
        .unwrap();
    assert_eq!(store.event_attempts("evt_1").await.unwrap(), mine);
    assert_eq!(
        store.event_attempts("evt_10").await.unwrap(),
        vec![theirs[0].clone()]
    );
    assert_eq!(
        store.event_attempts("evt_2").await.unwrap(),
        vec![theirs[1].clone()]
    );
    assert!(store.event_attempts("evt_3").await.unwrap().is_empty());
}

/// More records than one store request may carry, written out of order.
pub async fn attempts_many_in_one_write(store: &dyn Store) {
    let at = recent_millis();
    let mut records = Vec::new();
    for number in (1..=15).rev() {
        for sub in ["sub_b", "sub_a"] {
            records.push(attempt("evt_1", sub, number, at + i64::from(number)));
        }
    }
    store.put_attempts(&records, far_expiry()).await.unwrap();
    let log = store.event_attempts("evt_1").await.unwrap();
    assert_eq!(log.len(), 30);
    let mut expected = records;
    expected.sort_by(|a, b| (a.attempt, &a.subscription_id).cmp(&(b.attempt, &b.subscription_id)));
    assert_eq!(log, expected);
}

/// `record_event` stores the event with its records; storing it again replaces those records
/// (the caller passes every record it knows), and a record written later by `put_attempts`
/// wins over one of the same key stored with the event.
pub async fn events_recorded_with_their_attempts(store: &dyn Store) {
    let at = recent_millis();
    let stored = event("evt_1", at);
    let handed_off = AttemptRecord {
        outcome: AttemptOutcome::Deferred,
        next: NextStep::RetryScheduled,
        ..attempt("evt_1", "sub_b", 1, at)
    };
    let delivered = AttemptRecord {
        status: Some(200),
        outcome: AttemptOutcome::Ok,
        next: NextStep::Done,
        ..attempt("evt_1", "sub_a", 1, at)
    };
    store
        .record_event(
            &stored,
            &[handed_off.clone(), delivered.clone()],
            far_expiry(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_event("evt_1").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store.event_attempts("evt_1").await.unwrap(),
        vec![delivered.clone(), handed_off.clone()]
    );
    // The deliveries queue's attempt replaces the hand-off's record.
    let retried = AttemptRecord {
        at: at + 5_000,
        status: Some(200),
        outcome: AttemptOutcome::Ok,
        next: NextStep::Done,
        ..handed_off.clone()
    };
    store
        .put_attempts(std::slice::from_ref(&retried), far_expiry())
        .await
        .unwrap();
    assert_eq!(
        store.event_attempts("evt_1").await.unwrap(),
        vec![delivered.clone(), retried.clone()]
    );
    // A later round stores the event again with every record known.
    let third = attempt("evt_1", "sub_c", 2, at + 9_000);
    store
        .record_event(
            &stored,
            &[delivered.clone(), handed_off, third.clone()],
            far_expiry(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.event_attempts("evt_1").await.unwrap(),
        vec![delivered, retried, third]
    );
    assert_eq!(store.get_event("evt_1").await.unwrap(), Some(stored));
}
