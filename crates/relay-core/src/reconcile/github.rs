//! GitHub: a webhook's recent deliveries, and redelivery of the missing ones.
//!
//! - List: `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`, `/orgs/{org}/hooks/{hook_id}/deliveries`
//!   or `/app/hook/deliveries`, newest first, `per_page` up to 100, cursor pagination through the
//!   `Link: <…>; rel="next"` header (docs.github.com/en/rest/repos/webhooks#list-deliveries-for-a-repository-webhook).
//! - Redeliver: `POST …/deliveries/{delivery_id}/attempts` answers 202; GitHub then sends the
//!   delivery again, signed, with the same `X-GitHub-Delivery` guid — the receiver's dedup key.
//!
//! A GitHub App's hook (`app/hook`) is called with JWTs minted from the App's private key (the
//! credential) and its id (`github_app_id`, see `github_app`); repository and organization hooks
//! with a token that may read and write hooks.

use async_trait::async_trait;
use serde::Deserialize;

use super::client::{ApiClient, ApiError};
use super::{
    Page, ProviderApi, ReconcileError, ReconcileSettings, Reconciler, Recovery, SentEvent,
};

pub static RECONCILER: Reconciler = Reconciler {
    provider: "github",
    default_api_url: "https://api.github.com",
    headers: &[("accept", ACCEPT), ("x-github-api-version", API_VERSION)],
    connect,
};

/// The headers GitHub's REST API asks every request to carry.
pub const ACCEPT: &str = "application/vnd.github+json";
pub const API_VERSION: &str = "2022-11-28";

fn connect(settings: &ReconcileSettings) -> Result<Box<dyn ProviderApi>, ReconcileError> {
    let hook = settings.github_hook.as_deref().ok_or_else(|| {
        ReconcileError::Config(
            "a github source needs --github-hook (repos/OWNER/REPO/hooks/ID, orgs/ORG/hooks/ID or app/hook)"
                .into(),
        )
    })?;
    let hook = parse_hook(hook)?;
    check_app_id(settings)?;
    Ok(Box::new(GithubApi { hook }))
}

/// The App hook is called with the App's JWT, so it needs the App's id; other hooks with a
/// token, so an App id there is a mistake.
pub fn check_app_id(settings: &ReconcileSettings) -> Result<(), ReconcileError> {
    let app_hook = settings
        .github_hook
        .as_deref()
        .is_some_and(|hook| hook.trim_matches('/') == APP_HOOK);
    match &settings.github_app_id {
        None if app_hook => Err(ReconcileError::Config(
            "the GitHub App hook (app/hook) needs --github-app-id (the App's client ID or App ID); its credential is the App's private key PEM".into(),
        )),
        Some(_) if !app_hook => Err(ReconcileError::Config(
            "--github-app-id is only for the GitHub App hook (--github-hook app/hook); other hooks use a token (remove it with --github-app-id '')".into(),
        )),
        Some(id) if !valid_app_id(id) => Err(ReconcileError::Config(format!(
            "github app id {id:?}: expected the App's client ID (Iv1.…, Iv23…) or its numeric App ID"
        ))),
        _ => Ok(()),
    }
}

/// A client ID or an App ID: letters, digits, `.`, `-`, `_` (it goes into the JWT as is).
fn valid_app_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

const APP_HOOK: &str = "app/hook";

/// Checks a hook path: `repos/OWNER/REPO/hooks/ID`, `orgs/ORG/hooks/ID` or `app/hook`.
pub fn parse_hook(text: &str) -> Result<String, ReconcileError> {
    let text = text.trim_matches('/');
    let parts: Vec<&str> = text.split('/').collect();
    // Names as GitHub allows them (`.github` is a repository), but never a `.` or `..` segment.
    let name_ok = |s: &str| {
        !matches!(s, "" | "." | "..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    let id_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let valid = match parts.as_slice() {
        ["repos", owner, repo, "hooks", id] => name_ok(owner) && name_ok(repo) && id_ok(id),
        ["orgs", org, "hooks", id] => name_ok(org) && id_ok(id),
        ["app", "hook"] => true,
        _ => false,
    };
    if !valid {
        return Err(ReconcileError::Config(format!(
            "github hook {text:?}: expected repos/OWNER/REPO/hooks/ID, orgs/ORG/hooks/ID or app/hook"
        )));
    }
    Ok(text.to_owned())
}

struct GithubApi {
    /// `repos/o/r/hooks/1`, `orgs/o/hooks/1` or `app/hook`.
    hook: String,
}

/// One entry of the deliveries list (the fields reconcile reads).
#[derive(Debug, Deserialize)]
struct Delivery {
    id: u64,
    guid: String,
    delivered_at: String,
}

#[async_trait]
impl ProviderApi for GithubApi {
    async fn page(
        &self,
        client: &mut ApiClient,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<Page, ApiError> {
        let url = match cursor {
            Some(next) => client.same_origin_url(next)?,
            None => client.url(&format!("{}/deliveries?per_page=100", self.hook))?,
        };
        let response = client.get(url).await?;
        let deliveries: Vec<Delivery> = serde_json::from_slice(&response.body)
            .map_err(|e| ApiError::Invalid(format!("deliveries list: {e}")))?;
        let next = response
            .headers
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        page_since(deliveries, next, since)
    }

    async fn redeliver(&self, client: &mut ApiClient, delivery_id: &str) -> Result<(), ApiError> {
        let url = client.url(&format!("{}/deliveries/{delivery_id}/attempts", self.hook))?;
        client.post(url).await.map(|_| ())
    }
}

/// The deliveries at or after `since`; the list is newest first, so one older than `since` ends
/// the listing.
fn page_since(
    deliveries: Vec<Delivery>,
    next: Option<String>,
    since: i64,
) -> Result<Page, ApiError> {
    let mut sent = Vec::with_capacity(deliveries.len());
    let mut reached_older = false;
    for delivery in deliveries {
        let at = parse_timestamp(&delivery.delivered_at).ok_or_else(|| {
            ApiError::Invalid(format!(
                "delivered_at {:?} is not an ISO 8601 UTC time",
                delivery.delivered_at
            ))
        })?;
        if at < since {
            reached_older = true;
            continue;
        }
        sent.push(SentEvent {
            key: delivery.guid,
            recovery: Recovery::Redeliver {
                delivery_id: delivery.id.to_string(),
            },
        });
    }
    Ok(Page {
        sent,
        next: if reached_older { None } else { next },
    })
}

/// The `rel="next"` target of a `Link` header, if it names one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// `2019-06-03T00:57:16Z` (fraction allowed) as seconds since the epoch.
fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let time = time.split('.').next()?;
    let mut time = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `civil::civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_paths() {
        assert_eq!(
            parse_hook("repos/octo/hello-world/hooks/12").unwrap(),
            "repos/octo/hello-world/hooks/12"
        );
        assert_eq!(
            parse_hook("/orgs/octo/hooks/3/").unwrap(),
            "orgs/octo/hooks/3"
        );
        assert_eq!(parse_hook("app/hook").unwrap(), "app/hook");
        for bad in [
            "repos/octo/hooks/12",
            "repos/octo/r/hooks/x",
            "orgs/../hooks/1",
            "orgs/o/hooks/1?x",
            "users/o/hooks/1",
            "",
        ] {
            assert!(parse_hook(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn link_header_next() {
        let header = r#"<https://api.github.com/repos/o/r/hooks/1/deliveries?per_page=2&cursor=v1_9>; rel="next", <https://api.github.com/repos/o/r/hooks/1/deliveries?per_page=2>; rel="first""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/repos/o/r/hooks/1/deliveries?per_page=2&cursor=v1_9")
        );
        assert_eq!(next_link(r#"<https://x/y>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("2019-06-03T00:57:16Z"), Some(1_559_523_436));
        assert_eq!(
            parse_timestamp("2024-02-29T12:00:00.123Z"),
            Some(1_709_208_000)
        );
        assert_eq!(parse_timestamp("2019-06-03 00:57:16"), None);
        assert_eq!(parse_timestamp("2019-13-03T00:57:16Z"), None);
        for days in [-1000, 0, 59, 365, 19_000, 30_000] {
            let (y, m, d) = crate::domain::civil::civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
    }

    fn delivery(id: u64, guid: &str, at: &str) -> Delivery {
        Delivery {
            id,
            guid: guid.into(),
            delivered_at: at.into(),
        }
    }

    #[test]
    fn pages_end_at_the_first_delivery_before_since() {
        let since = parse_timestamp("2024-01-02T00:00:00Z").unwrap();
        let deliveries = vec![
            delivery(3, "g3", "2024-01-03T00:00:00Z"),
            delivery(2, "g2", "2024-01-02T00:00:00Z"),
            delivery(1, "g1", "2024-01-01T23:59:59Z"),
        ];
        let page = page_since(deliveries, Some("next".into()), since).unwrap();
        let keys: Vec<&str> = page.sent.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["g3", "g2"]);
        assert_eq!(page.next, None, "older deliveries end the listing");
        assert_eq!(
            page.sent[0].recovery,
            Recovery::Redeliver {
                delivery_id: "3".into()
            }
        );

        let page = page_since(
            vec![delivery(4, "g4", "2024-01-04T00:00:00Z")],
            Some("next".into()),
            since,
        )
        .unwrap();
        assert_eq!(page.next.as_deref(), Some("next"));
        assert!(page_since(vec![delivery(5, "g5", "yesterday")], None, since).is_err());
    }
}
