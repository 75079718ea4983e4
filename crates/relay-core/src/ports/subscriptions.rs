//! Changing a stored subscription without undoing anyone else's change: every writer (the
//! fanout's health tracking, operators' commands) goes through `modify_subscription`.

use crate::domain::model::Subscription;
use crate::ports::{Catalog, StoreError};

/// How often a change is re-read and redone when other writers keep getting in first.
const MAX_WRITE_ROUNDS: usize = 8;

/// Reads the subscription, applies `change`, and writes it back on the revision it read; when
/// another writer got in first, reads again and redoes the change. `change` returns false when
/// there is nothing to write. `Ok(None)`: there is no such subscription (a removed one is never
/// written back).
pub async fn modify_subscription<F>(
    store: &dyn Catalog,
    id: &str,
    mut change: F,
) -> Result<Option<Subscription>, StoreError>
where
    F: FnMut(&mut Subscription) -> bool + Send,
{
    for _ in 0..MAX_WRITE_ROUNDS {
        let Some(mut subscription) = store.get_subscription(id).await? else {
            return Ok(None);
        };
        if !change(&mut subscription) {
            return Ok(Some(subscription));
        }
        match store.put_subscription(&subscription).await {
            Ok(revision) => {
                subscription.revision = revision;
                return Ok(Some(subscription));
            }
            Err(StoreError::Stale(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Stale(format!(
        "subscription {id} (other writers kept changing it; try again)"
    )))
}
