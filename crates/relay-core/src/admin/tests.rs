//! The admin use cases over the memory store and recording queue: each provider's secret rule
//! on add and update, options of other providers, rotation's grace period, enabling restarting
//! the health window, replay's targets and attempt numbering (the fanout's), and not-found cases.

use std::sync::Arc;
use std::time::Duration;

use super::events::{plan_replay, replay, show_event};
use super::redrive::{RedriveQueue, redrive};
use super::sources::{
    NewSource, SourceChange, add_source, list_sources, remove_source, update_source,
};
use super::subscriptions::{
    Destinations, NewSubscription, SubscriptionChange, add_subscription, check_destination,
    get_subscription, list_subscriptions, rotate_secret, set_enabled, update_subscription,
};
use super::{AdminError, Missing};
use crate::domain::model::{Disposition, QueueMessage, ReceivedMessage, Subscription};
use crate::fanout::{Fanout, FanoutConfig};
use crate::ports::clock::FixedClock;
use crate::ports::{Catalog, EventArchive, QueueConsumer, QueueName};
use crate::testkit::contract::{attempt, event, subscription};
use crate::testkit::{MemoryStore, RecordingQueue, ScriptedDeliverer};

use crate::providers::GivenOptions;

const NOW: i64 = 1_700_000_000;

fn new_source(name: &str, provider: &str, secret: &str) -> NewSource {
    NewSource {
        name: name.into(),
        provider: provider.into(),
        secrets: vec![secret.into()],
        tolerance_secs: 300,
        options: GivenOptions::default(),
        allow_weak_secret: false,
    }
}

fn options(given: &[(&str, &str)]) -> GivenOptions {
    let mut options = GivenOptions::default();
    for (name, value) in given {
        options.set(name, Some((*value).to_owned()));
    }
    options
}

fn invalid(error: AdminError) -> (&'static str, String) {
    match error {
        AdminError::Invalid { field, reason } => (field, reason),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The memory store with source `gh` (github) and the given subscriptions of it.
async fn store_with(subscriptions: impl IntoIterator<Item = Subscription>) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::with_sources([
        crate::testkit::contract::source("gh"),
        crate::testkit::contract::source("other"),
    ]));
    for sub in subscriptions {
        store.put_subscription(&sub).await.unwrap();
    }
    store
}

// ------------------------------------------------------------------ sources

#[tokio::test]
async fn a_weak_secret_in_use_is_kept_with_allow_weak_secret_and_reported() {
    let store = MemoryStore::new();
    // Refused without the flag, and the refusal names it.
    let (_, reason) = invalid(
        add_source(&store, new_source("gh", "github", "s3cret"), NOW)
            .await
            .unwrap_err(),
    );
    assert!(reason.contains("--allow-weak-secret"), "{reason}");
    assert!(!reason.contains("s3cret"), "{reason}");
    let kept = NewSource {
        allow_weak_secret: true,
        ..new_source("gh", "github", "s3cret")
    };
    let added = add_source(&store, kept, NOW).await.unwrap();
    assert_eq!(added.secrets, ["s3cret"]);
    assert_eq!(super::sources::weak_secret_count(&added), 1);
    // Never an empty one, flag or not.
    let empty = NewSource {
        allow_weak_secret: true,
        ..new_source("empty", "github", "  ")
    };
    let (field, reason) = invalid(add_source(&store, empty, NOW).await.unwrap_err());
    assert_eq!((field, reason.as_str()), ("secrets", "--secret is empty"));
    // Rotating to a strong secret and removing the weak one clears the warning.
    let rotated = update_source(
        &store,
        "gh",
        SourceChange {
            add_secrets: vec!["a-strong-github-secret-0123".into()],
            remove_secrets: vec!["s3cret".into()],
            ..SourceChange::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(super::sources::weak_secret_count(&rotated), 0);
    // --add-secret keeps the same rule and the same way out.
    let (field, reason) = invalid(
        update_source(
            &store,
            "gh",
            SourceChange {
                add_secrets: vec!["short".into()],
                ..SourceChange::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(field, "add_secrets");
    assert!(reason.contains("--allow-weak-secret"), "{reason}");
    let weak_again = update_source(
        &store,
        "gh",
        SourceChange {
            add_secrets: vec!["short".into()],
            allow_weak_secret: true,
            ..SourceChange::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(super::sources::weak_secret_count(&weak_again), 1);
}

#[tokio::test]
async fn standard_secrets_are_taken_with_or_without_whsec() {
    let store = MemoryStore::new();
    let key = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    for (name, secret) in [("a", format!("whsec_{key}")), ("b", key.to_owned())] {
        add_source(&store, new_source(name, "standard", &secret), NOW)
            .await
            .unwrap_or_else(|e| panic!("{secret}: {e}"));
    }
    // Still at least 24 bytes of key either way.
    for short in ["whsec_QQ==", "QQ=="] {
        let (_, reason) = invalid(
            add_source(&store, new_source("c", "standard", short), NOW)
                .await
                .unwrap_err(),
        );
        assert!(reason.contains("holds 1"), "{short}: {reason}");
    }
}

#[tokio::test]
async fn weak_source_secrets_are_refused_per_provider_without_echoing_them() {
    let store = MemoryStore::new();
    let weak = [
        ("standard", "whsec_QQ==", "holds 1"),
        ("stripe", "sk_live_not_an_endpoint_secret", "whsec_"),
        ("github", "s3cret", "too short: 6 of at least 16"),
        ("shopify", "shopify-short", "too short: 13 of at least 16"),
        ("slack", "abc123", "Signing Secret"),
        ("twilio", "twilio-tok", "Auth Token"),
        ("token", "Tk9", "too short: 3 of at least 16"),
        ("typeform", "tf-Qx9z", "Typeform"),
    ];
    for (provider, secret, why) in weak {
        let error = add_source(&store, new_source("weak", provider, secret), NOW)
            .await
            .unwrap_err();
        let (field, reason) = invalid(error);
        assert_eq!(field, "secrets", "{provider}");
        assert!(reason.starts_with("--secret: "), "{provider}: {reason}");
        assert!(reason.contains(why), "{provider}: {reason}");
        assert!(
            !reason.contains(secret),
            "{provider} echoes the secret: {reason}"
        );
    }
    let hmac = NewSource {
        options: options(&[("header", "X-Sig")]),
        ..new_source("weak", "hmac", "Q")
    };
    let (_, reason) = invalid(add_source(&store, hmac, NOW).await.unwrap_err());
    assert!(reason.contains("too short: 1 of at least 16"), "{reason}");
    assert!(list_sources(&store).await.unwrap().is_empty());

    let added = add_source(
        &store,
        new_source("gh", "github", "a".repeat(16).as_str()),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!((added.created_at, added.secrets.len()), (NOW, 1));
    let again = add_source(&store, new_source("gh", "github", &"b".repeat(16)), NOW).await;
    assert!(matches!(again, Err(AdminError::Conflict(m)) if m.contains("exists already")));
}

#[tokio::test]
async fn update_add_secret_keeps_the_rules_of_add() {
    let store = MemoryStore::new();
    add_source(
        &store,
        new_source("gh", "github", "gh-secret-number-1"),
        NOW,
    )
    .await
    .unwrap();
    let change = |secrets: &[&str]| SourceChange {
        add_secrets: secrets.iter().map(|s| s.to_string()).collect(),
        ..SourceChange::default()
    };
    let (field, reason) = invalid(
        update_source(&store, "gh", change(&["sh0rt-X"]))
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "add_secrets");
    assert!(
        reason.starts_with("--add-secret: the secret is too short: 7 of at least 16"),
        "{reason}"
    );
    let (_, reason) = invalid(
        update_source(&store, "gh", change(&["gh-secret-number-2", "t1ny"]))
            .await
            .unwrap_err(),
    );
    assert!(reason.starts_with("--add-secret (number 2): "), "{reason}");
    assert!(!reason.contains("t1ny"));
    let stored = store.get_source("gh").await.unwrap().unwrap();
    assert_eq!(stored.secrets, vec!["gh-secret-number-1"]);

    let updated = update_source(&store, "gh", change(&["gh-secret-number-2"]))
        .await
        .unwrap();
    assert_eq!(updated.secrets.len(), 2);
    // A source keeps at least one secret.
    let remove_all = SourceChange {
        remove_secrets: vec!["gh-secret-number-1".into(), "gh-secret-number-2".into()],
        ..SourceChange::default()
    };
    let (_, reason) = invalid(update_source(&store, "gh", remove_all).await.unwrap_err());
    assert_eq!(reason, "a source keeps at least one secret");
    let missing = update_source(&store, "nope", SourceChange::default()).await;
    assert!(matches!(missing, Err(AdminError::NotFound(Missing::Source(n))) if n == "nope"));
}

#[tokio::test]
async fn options_of_other_providers_are_refused() {
    let store = MemoryStore::new();
    let secret = "0123456789abcdef0123456789abcdef";
    let github_with_header = NewSource {
        options: options(&[("header", "X-Sig")]),
        ..new_source("a", "github", secret)
    };
    let (field, _) = invalid(
        add_source(&store, github_with_header, NOW)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "options");
    let github_with_url = NewSource {
        options: options(&[("public-url", "https://example.com/a")]),
        ..new_source("a", "github", secret)
    };
    let (_, reason) = invalid(add_source(&store, github_with_url, NOW).await.unwrap_err());
    assert_eq!(reason, "--public-url is an option of --provider twilio");
    let (_, reason) = invalid(
        add_source(&store, new_source("a", "hmac", secret), NOW)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        reason,
        "--provider hmac needs --header NAME (or a --preset)"
    );
    let twilio_with_query = NewSource {
        options: options(&[("public-url", "https://example.com/t?x=1")]),
        ..new_source("t", "twilio", secret)
    };
    let (field, _) = invalid(
        add_source(&store, twilio_with_query, NOW)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "options");
    let (field, _) = invalid(
        add_source(&store, new_source("healthz", "github", secret), NOW)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "name");
    assert!(list_sources(&store).await.unwrap().is_empty());
}

#[tokio::test]
async fn removing_a_source_with_subscriptions_needs_cascade() {
    let store = store_with([subscription("s1", "gh"), subscription("s2", "gh")]).await;
    match remove_source(store.as_ref(), "gh", false).await {
        Err(AdminError::Conflict(message)) => {
            assert!(message.contains("2 subscription(s)"), "{message}");
            assert!(message.contains("--cascade"), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store.get_source("gh").await.unwrap().is_some());
    assert_eq!(
        list_subscriptions(store.as_ref(), None)
            .await
            .unwrap()
            .len(),
        2
    );
    // Without subscriptions no flag is needed.
    remove_source(store.as_ref(), "other", false).await.unwrap();
    assert!(store.get_source("other").await.unwrap().is_none());
}

#[tokio::test]
async fn removing_a_source_removes_its_subscriptions() {
    let store = store_with([subscription("s1", "gh"), subscription("s2", "other")]).await;
    remove_source(store.as_ref(), "gh", true).await.unwrap();
    let left: Vec<String> = list_subscriptions(store.as_ref(), None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec!["s2"]);
    assert!(store.get_source("gh").await.unwrap().is_none());
    let again = remove_source(store.as_ref(), "gh", true).await;
    assert!(matches!(
        again,
        Err(AdminError::NotFound(Missing::Source(_)))
    ));
}

// ------------------------------------------------------------------ subscriptions

#[tokio::test]
async fn a_delivery_policy_is_added_changed_reset_and_checked() {
    use crate::domain::model::DeliveryPolicy;
    use crate::domain::policy::PolicyChange;
    let store = store_with([]).await;
    let policy = DeliveryPolicy {
        retry_schedule: Some("1s,2s".into()),
        timeout_secs: Some(3),
        max_in_flight: Some(2),
        rate: Some(0.5),
    };
    let input = |policy: DeliveryPolicy| NewSubscription {
        source: "gh".into(),
        url: "https://a.example/".into(),
        events: "*".into(),
        secret: None,
        headers: vec![],
        filter: None,
        policy,
    };
    let sub = add_subscription(store.as_ref(), input(policy.clone()), NOW)
        .await
        .unwrap();
    assert_eq!(
        get_subscription(store.as_ref(), &sub.id)
            .await
            .unwrap()
            .policy,
        policy
    );
    let bad = add_subscription(
        store.as_ref(),
        input(DeliveryPolicy {
            rate: Some(0.0),
            ..DeliveryPolicy::default()
        }),
        NOW,
    )
    .await
    .unwrap_err();
    assert_eq!(invalid(bad).0, "policy");
    assert_eq!(
        list_subscriptions(store.as_ref(), None)
            .await
            .unwrap()
            .len(),
        1
    );

    // The timeout back to the relay's, a new rate; the rest kept.
    let changed = update_subscription(
        store.as_ref(),
        &sub.id,
        SubscriptionChange {
            policy: PolicyChange {
                timeout_secs: Some(None),
                rate: Some(Some(4.0)),
                ..PolicyChange::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        changed.policy,
        DeliveryPolicy {
            timeout_secs: None,
            rate: Some(4.0),
            ..policy
        }
    );
    let refused = update_subscription(
        store.as_ref(),
        &sub.id,
        SubscriptionChange {
            policy: PolicyChange {
                max_in_flight: Some(Some(0)),
                ..PolicyChange::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(invalid(refused).0, "policy");
    assert_eq!(
        get_subscription(store.as_ref(), &sub.id)
            .await
            .unwrap()
            .revision,
        changed.revision
    );
}

#[tokio::test]
async fn adding_a_subscription_checks_source_url_patterns_and_headers() {
    let store = store_with([]).await;
    let input = |source: &str, url: &str, events: &str, headers: &[&str]| NewSubscription {
        source: source.into(),
        url: url.into(),
        events: events.into(),
        secret: None,
        headers: headers.iter().map(|h| h.to_string()).collect(),
        filter: None,
        policy: Default::default(),
    };
    let missing = add_subscription(
        store.as_ref(),
        input("nobody", "https://a.example/", "*", &[]),
        NOW,
    )
    .await;
    assert!(
        matches!(missing, Err(AdminError::NotFound(Missing::SourceToSubscribe(s))) if s == "nobody")
    );
    for (url, events, headers, field) in [
        ("ftp://a.example/", "*", &[][..], "url"),
        ("https://a.example/", "is*ues", &[][..], "events"),
        ("https://a.example/", "*", &["no colon"][..], "headers"),
        ("https://a.example/", "*", &["bad name: v"][..], "headers"),
    ] {
        let error = add_subscription(store.as_ref(), input("gh", url, events, headers), NOW)
            .await
            .unwrap_err();
        assert_eq!(invalid(error).0, field, "{url} {events} {headers:?}");
    }
    let added = add_subscription(
        store.as_ref(),
        input(
            "gh",
            "https://a.example/",
            "push, issues.*",
            &["Authorization: Bearer t"],
        ),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(added.events, vec!["push", "issues.*"]);
    assert_eq!(
        added.headers,
        vec![("Authorization".to_owned(), "Bearer t".to_owned())]
    );
    assert!(crate::signing::validate_signing_secret(&added.secrets[0].secret).is_ok());
    assert_eq!(
        get_subscription(store.as_ref(), &added.id).await.unwrap(),
        added
    );
}

/// Answers fixed addresses per host name; any other name does not resolve.
struct FixedResolver(Vec<(&'static str, Vec<std::net::IpAddr>)>);

#[async_trait::async_trait]
impl crate::ports::HostResolver for FixedResolver {
    async fn resolve(&self, host: &str, _port: u16) -> Result<Vec<std::net::IpAddr>, String> {
        self.0
            .iter()
            .find(|(name, _)| *name == host)
            .map(|(_, addresses)| addresses.clone())
            .ok_or_else(|| format!("{host}: no such host"))
    }
}

#[tokio::test]
async fn where_private_destinations_are_denied_a_url_reaching_one_is_refused() {
    let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
    let resolver = FixedResolver(vec![
        ("localhost", vec![ip("127.0.0.1"), ip("::1")]),
        ("hooks.example.com", vec![ip("93.184.215.14")]),
        (
            "mixed.example.com",
            vec![ip("93.184.215.14"), ip("10.1.2.3")],
        ),
    ]);
    let denied = Destinations::GlobalOnly {
        resolver: &resolver,
        because: "the stack's AllowPrivateDestinations is false".into(),
    };
    for (url, says) in [
        (
            "http://127.0.0.1:9000/hook",
            "127.0.0.1 is a loopback address",
        ),
        ("https://[::1]/hook", "::1 is a loopback address (::1)"),
        (
            "http://169.254.169.254/latest",
            "169.254.169.254 is a link-local address",
        ),
        (
            "https://10.0.0.7/",
            "10.0.0.7 is a private address (10.0.0.0/8)",
        ),
        (
            "http://localhost:8080/",
            "localhost resolves to 127.0.0.1, a loopback address",
        ),
        (
            "https://mixed.example.com/",
            "mixed.example.com resolves to 10.1.2.3, a private address",
        ),
    ] {
        let (field, reason) = invalid(check_destination(url, &denied).await.unwrap_err());
        assert_eq!(field, "url");
        assert!(reason.contains(says), "{url}: {reason}");
        assert!(
            reason.ends_with("because the stack's AllowPrivateDestinations is false"),
            "{reason}"
        );
    }
    for url in [
        "https://hooks.example.com/in",
        "https://93.184.215.14/in",
        // Not resolvable yet: accepted, the guard checks every delivery.
        "https://not-yet.example.com/in",
    ] {
        check_destination(url, &denied).await.unwrap();
    }
    for url in ["http://127.0.0.1:9000/hook", "http://localhost/"] {
        check_destination(url, &Destinations::Any).await.unwrap();
    }
    let (field, _) = invalid(
        check_destination("ftp://10.0.0.1/", &denied)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "url");
}

#[tokio::test]
async fn update_changes_what_it_is_given_and_keeps_id_and_secret() {
    let mut stored = subscription("s1", "gh");
    stored.failing_since = Some(NOW - 600);
    stored.headers = vec![("X-Old".into(), "1".into())];
    let store = store_with([stored]).await;
    let before = get_subscription(store.as_ref(), "s1").await.unwrap();

    // Only the events: URL, health, headers and secret stay.
    let changed = update_subscription(
        store.as_ref(),
        "s1",
        SubscriptionChange {
            events: Some("push, issues.*".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(changed.events, vec!["push", "issues.*"]);
    assert_eq!(
        (&changed.url, changed.failing_since, &changed.headers),
        (&before.url, before.failing_since, &before.headers)
    );
    assert_eq!(
        (&changed.id, &changed.secrets),
        (&before.id, &before.secrets)
    );
    assert!(changed.revision > before.revision);

    // A new URL, a filter and new headers; the old URL's failures go with it.
    let filter = crate::domain::filter::Filter::parse(r#"{"body":{"action":"opened"}}"#).unwrap();
    let changed = update_subscription(
        store.as_ref(),
        "s1",
        SubscriptionChange {
            url: Some("https://new.example/hook".into()),
            filter: Some(Some(filter.clone())),
            headers: Some(vec!["Authorization: Bearer t".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(changed.url, "https://new.example/hook");
    assert_eq!(changed.failing_since, None);
    assert_eq!(
        changed.filter.as_ref().map(|f| f.to_string()),
        Some(filter.to_string())
    );
    assert_eq!(
        changed.headers,
        vec![("Authorization".to_owned(), "Bearer t".to_owned())]
    );
    assert_eq!(
        (&changed.id, &changed.secrets),
        (&before.id, &before.secrets)
    );
    assert_eq!(
        get_subscription(store.as_ref(), "s1").await.unwrap().url,
        changed.url
    );

    // Removing the filter and the headers.
    let cleared = update_subscription(
        store.as_ref(),
        "s1",
        SubscriptionChange {
            filter: Some(None),
            headers: Some(Vec::new()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(cleared.filter.is_none() && cleared.headers.is_empty());

    // Bad input: refused, naming the field; nothing written.
    let revision = cleared.revision;
    for (change, field) in [
        (
            SubscriptionChange {
                url: Some("ftp://x.example/".into()),
                events: Some("push".into()),
                ..Default::default()
            },
            "url",
        ),
        (
            SubscriptionChange {
                events: Some("is*ues".into()),
                ..Default::default()
            },
            "events",
        ),
        (
            SubscriptionChange {
                headers: Some(vec!["no colon".into()]),
                ..Default::default()
            },
            "headers",
        ),
        (SubscriptionChange::default(), "change"),
    ] {
        let error = update_subscription(store.as_ref(), "s1", change)
            .await
            .unwrap_err();
        assert_eq!(invalid(error).0, field);
    }
    let unchanged = get_subscription(store.as_ref(), "s1").await.unwrap();
    assert_eq!(unchanged.revision, revision);
    assert_eq!(unchanged.events, vec!["push", "issues.*"]);

    let missing = update_subscription(
        store.as_ref(),
        "nope",
        SubscriptionChange {
            events: Some("push".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(missing, Err(AdminError::NotFound(Missing::Subscription(id))) if id == "nope")
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_the_grace_period() {
    let store = store_with([subscription("s1", "gh")]).await;
    let hour = Duration::from_secs(3600);
    let rotated = rotate_secret(store.as_ref(), "s1", hour, NOW)
        .await
        .unwrap();
    assert_eq!(rotated.old_secrets_expire_at, NOW + 3600);
    let stored = get_subscription(store.as_ref(), "s1").await.unwrap();
    assert_eq!(stored, rotated.subscription);
    assert_eq!(
        stored.active_secrets(NOW + 3599),
        vec![rotated.secret.as_str(), "whsec_abc"]
    );
    assert_eq!(
        stored.active_secrets(NOW + 3600),
        vec![rotated.secret.as_str()]
    );

    // A second rotation within the hour: the first old secret keeps its earlier expiry, the
    // secret it replaces gets the new grace period.
    let later = NOW + 60;
    let second = rotate_secret(store.as_ref(), "s1", Duration::from_secs(7200), later)
        .await
        .unwrap();
    let expiries: Vec<Option<i64>> = second
        .subscription
        .secrets
        .iter()
        .map(|s| s.expires_at)
        .collect();
    assert_eq!(expiries, vec![None, Some(later + 7200), Some(NOW + 3600)]);
    // Once expired, an old secret is dropped by the next rotation.
    let third = rotate_secret(store.as_ref(), "s1", hour, NOW + 4000)
        .await
        .unwrap();
    assert_eq!(third.subscription.secrets.len(), 3);
    assert!(
        !third
            .subscription
            .secrets
            .iter()
            .any(|s| s.secret == "whsec_abc")
    );

    let missing = rotate_secret(store.as_ref(), "nope", hour, NOW).await;
    assert!(matches!(
        missing,
        Err(AdminError::NotFound(Missing::Subscription(_)))
    ));
}

#[tokio::test]
async fn enabling_restarts_the_health_window() {
    let failing = Subscription {
        enabled: false,
        disabled_reason: Some("failing continuously for 5.0 days".into()),
        failing_since: Some(NOW - 6 * 86_400),
        ..subscription("s1", "gh")
    };
    let store = store_with([failing]).await;
    let enabled = set_enabled(store.as_ref(), "s1", true).await.unwrap();
    assert!(enabled.enabled);
    assert_eq!(
        (enabled.disabled_reason, enabled.failing_since),
        (None, None)
    );
    let stored = get_subscription(store.as_ref(), "s1").await.unwrap();
    assert_eq!(stored.failing_since, None);

    let disabled = set_enabled(store.as_ref(), "s1", false).await.unwrap();
    assert!(!disabled.enabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("disabled by an operator")
    );
    let missing = set_enabled(store.as_ref(), "sub_nope", true).await;
    assert!(
        matches!(missing, Err(AdminError::NotFound(Missing::Subscription(id))) if id == "sub_nope")
    );
}

// ------------------------------------------------------------------ events and replay

/// Subscriptions of `gh` the fanout delivers a `push` to (s1, s2) and ones it does not.
fn mixed_subscriptions() -> Vec<Subscription> {
    vec![
        subscription("s1", "gh"),
        Subscription {
            events: vec!["*".into()],
            ..subscription("s2", "gh")
        },
        Subscription {
            enabled: false,
            ..subscription("s3", "gh")
        },
        Subscription {
            events: vec!["issues.*".into()],
            ..subscription("s4", "gh")
        },
        subscription("s5", "other"),
    ]
}

#[tokio::test]
async fn replay_targets_the_subscriptions_the_fanout_delivers_to_and_numbers_on() {
    let store = store_with(mixed_subscriptions()).await;
    let evt = event("evt_1", NOW * 1000);
    let queue = Arc::new(RecordingQueue::default());
    let deliverer = Arc::new(ScriptedDeliverer::new(Duration::from_secs(5), []));
    let fanout = Fanout::with_deliverer(
        store.clone(),
        queue.clone(),
        deliverer.clone(),
        FixedClock::at_secs(NOW),
        FanoutConfig {
            cache_ttl: Duration::ZERO,
            ..FanoutConfig::default()
        },
    );
    let message = ReceivedMessage {
        receipt: "m-1".into(),
        message_id: None,
        body: serde_json::to_string(&QueueMessage::Event(evt.clone())).unwrap(),
        receive_count: 1,
    };
    assert_eq!(
        fanout.handle_message(&message, None).await,
        Disposition::Delete
    );
    let mut fanned: Vec<(String, u32)> = deliverer
        .seen()
        .into_iter()
        .map(|a| (a.subscription_id, a.attempt))
        .collect();
    fanned.sort();
    assert_eq!(fanned, vec![("s1".into(), 1), ("s2".into(), 1)]);

    let replayed = replay(
        store.as_ref(),
        store.as_ref(),
        queue.as_ref(),
        "evt_1",
        None,
    )
    .await
    .unwrap();
    let replayed: Vec<(String, u32)> = replayed
        .into_iter()
        .map(|r| (r.subscription_id, r.attempt))
        .collect();
    assert_eq!(replayed, vec![("s1".into(), 2), ("s2".into(), 2)]);
    let scheduled = queue.scheduled();
    assert_eq!(scheduled.len(), 2);
    for (task, delay) in &scheduled {
        assert_eq!((delay, task.schedule_step, task.not_before), (&0, 0, 0));
        assert_eq!(task.event, evt);
    }
}

#[tokio::test]
async fn replay_numbering_continues_each_subscriptions_attempt_log() {
    let store = store_with(mixed_subscriptions()).await;
    store
        .put_event(&event("evt_1", NOW * 1000), NOW + 86_400)
        .await
        .unwrap();
    let log = [
        attempt("evt_1", "s1", 1, NOW * 1000),
        attempt("evt_1", "s1", 2, NOW * 1000 + 5),
        attempt("evt_1", "s3", 7, NOW * 1000),
    ];
    store.put_attempts(&log, NOW + 86_400).await.unwrap();
    let plan = plan_replay(store.as_ref(), store.as_ref(), "evt_1", None)
        .await
        .unwrap();
    let numbered: Vec<(&str, u32)> = plan
        .tasks
        .iter()
        .map(|t| (t.subscription_id.as_str(), t.attempt))
        .collect();
    assert_eq!(numbered, vec![("s1", 3), ("s2", 1)]);

    // A disabled subscription is refused, naming the command that enables it.
    let refused = plan_replay(store.as_ref(), store.as_ref(), "evt_1", Some("s3")).await;
    match refused {
        Err(AdminError::Conflict(message)) => {
            assert!(message.contains("s3 is disabled"), "{message}");
            assert!(
                message.contains("relay subscriptions enable s3"),
                "{message}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    set_enabled(store.as_ref(), "s3", true).await.unwrap();
    // One subscription by id, numbered on from its own log.
    let only = plan_replay(store.as_ref(), store.as_ref(), "evt_1", Some("s3"))
        .await
        .unwrap();
    assert_eq!(only.tasks.len(), 1);
    assert_eq!(
        (
            only.tasks[0].subscription_id.as_str(),
            only.tasks[0].attempt
        ),
        ("s3", 8)
    );
    let (field, reason) = invalid(
        plan_replay(store.as_ref(), store.as_ref(), "evt_1", Some("s5"))
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "subscription");
    assert_eq!(reason, "subscription s5 belongs to source other, not gh");
    let unknown_sub = plan_replay(store.as_ref(), store.as_ref(), "evt_1", Some("nope")).await;
    assert!(matches!(
        unknown_sub,
        Err(AdminError::NotFound(Missing::Subscription(_)))
    ));
}

#[tokio::test]
async fn replay_of_an_unknown_event_is_not_found_and_queues_nothing() {
    let store = store_with(mixed_subscriptions()).await;
    let queue = RecordingQueue::default();
    let error = replay(store.as_ref(), store.as_ref(), &queue, "evt_gone", None)
        .await
        .unwrap_err();
    assert!(matches!(&error, AdminError::NotFound(Missing::Event(id)) if id == "evt_gone"));
    assert_eq!(
        error.to_string(),
        "no event evt_gone (events are kept for a limited time)"
    );
    assert!(queue.scheduled().is_empty());
    let shown = show_event(store.as_ref(), "evt_gone").await;
    assert!(matches!(
        shown,
        Err(AdminError::NotFound(Missing::Event(_)))
    ));
}

#[tokio::test]
async fn a_queue_that_is_down_fails_the_replay_as_a_queue_error() {
    let store = store_with(mixed_subscriptions()).await;
    store
        .put_event(&event("evt_1", NOW * 1000), NOW + 86_400)
        .await
        .unwrap();
    let queue = RecordingQueue::default();
    queue.fail_sends(true);
    let error = replay(store.as_ref(), store.as_ref(), &queue, "evt_1", None)
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::Queue(_)), "{error:?}");
}

// ------------------------------------------------------------------ redrive

/// A memory queue with `events` dead letters in the events DLQ and `deliveries` in the
/// deliveries DLQ.
fn queue_with_dead_letters(events: usize, deliveries: usize) -> crate::testkit::MemoryQueue {
    let queue = crate::testkit::MemoryQueue::new(FixedClock::at_secs(NOW));
    for n in 0..events {
        queue.send_raw(
            QueueName::EventsDlq,
            format!("{{\"e\":{n}}}"),
            Duration::ZERO,
        );
    }
    for n in 0..deliveries {
        queue.send_raw(
            QueueName::DeliveriesDlq,
            format!("{{\"d\":{n}}}"),
            Duration::ZERO,
        );
    }
    queue
}

async fn redriven(
    queue: &crate::testkit::MemoryQueue,
    named: Option<RedriveQueue>,
) -> Vec<(&'static str, u64)> {
    let mut moved = Vec::new();
    redrive(queue, named, |q, n| moved.push((q.name(), n)))
        .await
        .unwrap();
    moved
}

#[tokio::test]
async fn redrive_empties_both_dead_letter_queues_events_first() {
    let queue = queue_with_dead_letters(2, 3);
    assert_eq!(
        redriven(&queue, None).await,
        [("events", 2), ("deliveries", 3)]
    );
    for (dlq, main, count) in [
        (QueueName::EventsDlq, QueueName::Events, 2),
        (QueueName::DeliveriesDlq, QueueName::Deliveries, 3),
    ] {
        assert_eq!(queue.depth(dlq).await.unwrap().total(), 0, "{dlq}");
        assert_eq!(queue.depth(main).await.unwrap().visible, count, "{main}");
    }
    // Nothing left is not an error.
    assert_eq!(
        redriven(&queue, None).await,
        [("events", 0), ("deliveries", 0)]
    );
}

#[tokio::test]
async fn redrive_of_one_queue_leaves_the_other_dead_letter_queue() {
    let queue = queue_with_dead_letters(2, 3);
    assert_eq!(
        redriven(&queue, Some(RedriveQueue::Deliveries)).await,
        [("deliveries", 3)]
    );
    assert_eq!(queue.depth(QueueName::EventsDlq).await.unwrap().total(), 2);
    assert_eq!(queue.depth(QueueName::Events).await.unwrap().total(), 0);
}

// ------------------------------------------------------------------ content filters

#[tokio::test]
async fn a_filter_is_stored_tried_and_followed_by_replay() {
    use super::subscriptions::{FilterSubject, FilterTrial, test_filter};
    use crate::domain::filter::Filter;
    let store = store_with([]).await;
    let sub = add_subscription(
        store.as_ref(),
        NewSubscription {
            source: "gh".into(),
            url: "https://a.example/".into(),
            events: "push".into(),
            secret: None,
            headers: vec![],
            filter: Some(Filter::parse(r#"{"body":{"id":"evt_1"}}"#).unwrap()),
            policy: Default::default(),
        },
        NOW,
    )
    .await
    .unwrap();
    let stored = get_subscription(store.as_ref(), &sub.id).await.unwrap();
    assert_eq!(stored.filter, sub.filter);
    // contract::event's body is {"id": <its id>, ...}.
    let matching = event("evt_1", NOW * 1000);
    let other = event("evt_2", NOW * 1000 + 1);
    for e in [&matching, &other] {
        store.put_event(e, NOW + 86_400).await.unwrap();
    }
    let trial = |subject| test_filter(store.as_ref(), store.as_ref(), &sub.id, subject);
    assert_eq!(
        trial(FilterSubject::Event("evt_1".into())).await.unwrap(),
        FilterTrial {
            subscription_id: sub.id.clone(),
            event_id: Some("evt_1".into()),
            matched: true,
            reasons: vec![],
        }
    );
    let missed = trial(FilterSubject::Event("evt_2".into())).await.unwrap();
    assert!(!missed.matched);
    assert_eq!(
        missed.reasons,
        ["filter: body.id: expected \"evt_1\", found \"evt_2\""]
    );
    let issues = crate::domain::model::EventEnvelope {
        id: "evt_3".into(),
        event_type: "issues".into(),
        body: "not json".into(),
        ..matching.clone()
    };
    store.put_event(&issues, NOW + 86_400).await.unwrap();
    let both = trial(FilterSubject::Event("evt_3".into())).await.unwrap();
    assert_eq!(
        both.reasons,
        [
            "event type issues matches none of the patterns push",
            "filter: the body is not JSON, and the filter reads the body"
        ]
    );
    let body = trial(FilterSubject::Body(br#"{"id":"evt_1"}"#.to_vec()))
        .await
        .unwrap();
    assert!(body.matched && body.event_id.is_none());
    assert!(matches!(
        trial(FilterSubject::Event("evt_9".into())).await,
        Err(AdminError::NotFound(Missing::Event(_)))
    ));
    // Replay reaches it for the matching event only.
    let plan = |id: &'static str| plan_replay(store.as_ref(), store.as_ref(), id, None);
    assert_eq!(plan("evt_1").await.unwrap().tasks.len(), 1);
    assert!(plan("evt_2").await.unwrap().tasks.is_empty());
}
