//! `relay subscriptions ...`: add, update, list, remove, enable, disable, rotate, test-filter.

use super::*;

pub(super) async fn subscriptions(
    store: &dyn Store,
    destinations: &Destinations<'_>,
    json_mode: bool,
    cmd: SubscriptionsCommand,
) -> anyhow::Result<()> {
    match cmd {
        SubscriptionsCommand::Add(args) => {
            // A bad filter or policy is a usage error (exit 2), found before any lookup.
            let filter = crate::filters::read_filter(&args.filter)?;
            let mut policy = relay_core::domain::model::DeliveryPolicy::default();
            crate::filters::read_policy(&args.policy)?.apply(&mut policy);
            let input = NewSubscription {
                filter,
                policy,
                source: args.source,
                url: args.url,
                events: args.events,
                secret: args.secret,
                headers: args.headers,
            };
            core_subscriptions::check_destination(&input.url, destinations).await?;
            let sub = core_subscriptions::add_subscription(store, input, now_secs()).await?;
            let secret = sub
                .secrets
                .first()
                .map(|s| s.secret.clone())
                .unwrap_or_default();
            let mut value = subscription_json(&sub);
            value["secret"] = json!(secret);
            emit(json_mode, &value, || {
                format!(
                    "added subscription {}\nsigning secret: {secret}\n(verify deliveries with any Standard Webhooks library)",
                    sub.id
                )
            });
        }
        SubscriptionsCommand::List { source } => {
            let list = core_subscriptions::list_subscriptions(store, source.as_deref()).await?;
            emit_list(
                json_mode,
                &list,
                subscription_json,
                "no subscriptions",
                &[
                    "id",
                    "source",
                    "url",
                    "events",
                    "state",
                    "filter",
                    "policy",
                    "paused until",
                ],
                |s| {
                    let state = if s.enabled {
                        "enabled".to_owned()
                    } else {
                        format!(
                            "disabled ({})",
                            s.disabled_reason.as_deref().unwrap_or("by hand")
                        )
                    };
                    vec![
                        s.id.clone(),
                        s.source.clone(),
                        s.url.clone(),
                        s.events.join(","),
                        state,
                        s.filter
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |f| f.to_string()),
                        s.policy.summary(),
                        s.paused_until.map_or_else(|| "-".to_owned(), millis_text),
                    ]
                },
            );
        }
        SubscriptionsCommand::Remove { id } => {
            core_subscriptions::remove_subscription(store, &id).await?;
            emit_removed(json_mode, "subscription", &id);
        }
        SubscriptionsCommand::Disable { id } => {
            let sub = core_subscriptions::set_enabled(store, &id, false).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("disabled subscription {id}")
            });
        }
        SubscriptionsCommand::Enable { id } => {
            let sub = core_subscriptions::set_enabled(store, &id, true).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("enabled subscription {id}")
            });
        }
        SubscriptionsCommand::TestFilter { id, event, body } => {
            crate::filters::test_filter(store, json_mode, &id, event, body).await?;
        }
        SubscriptionsCommand::Update {
            id,
            url,
            events,
            headers,
            no_headers,
            filter,
            no_filter,
            policy,
        } => {
            let policy = crate::filters::read_policy(&policy)?;
            let filter = match crate::filters::read_filter(&filter)? {
                Some(filter) => Some(Some(filter)),
                None => no_filter.then_some(None),
            };
            let headers = if no_headers {
                Some(Vec::new())
            } else {
                (!headers.is_empty()).then_some(headers)
            };
            let change = SubscriptionChange {
                url,
                events,
                filter,
                headers,
                policy,
            };
            if change.is_empty() {
                return Err(crate::errors::usage(
                    "nothing to change: give --url, --events, --filter, --filter-file, --no-filter, --header, --no-headers, --retry-schedule, --timeout, --max-in-flight or --rate",
                ));
            }
            if let Some(url) = &change.url {
                core_subscriptions::check_destination(url, destinations).await?;
            }
            let sub = core_subscriptions::update_subscription(store, &id, change).await?;
            emit(json_mode, &subscription_json(&sub), || {
                format!("updated subscription {}", sub.id)
            });
        }
        SubscriptionsCommand::RotateSecret { id, keep_old } => {
            let keep = crate::when::duration(&keep_old)
                .map_err(|e| crate::errors::usage(format!("--keep-old: {e}")))?;
            let rotated = core_subscriptions::rotate_secret(store, &id, keep, now_secs()).await?;
            let secret = &rotated.secret;
            let mut value = subscription_json(&rotated.subscription);
            value["secret"] = json!(secret);
            value["old_secrets_expire_at"] = json!(rotated.old_secrets_expire_at);
            emit(json_mode, &value, || {
                format!("new signing secret: {secret}\nthe old secret keeps signing for {keep_old}")
            });
        }
    }
    Ok(())
}
