//! Recent counts for `relay status`, read from what the store keeps anyway: events by their
//! receive time and the attempt log by attempt time (the `relay dev` metrics live in one
//! process's memory and start again at each restart).

use async_trait::async_trait;
use relay_core::domain::model::AttemptOutcome;
use relay_core::{ActivityCounts, RecentActivity, StoreError};
use rusqlite::params;

use crate::backend::LocalBackend;

#[async_trait]
impl RecentActivity for LocalBackend {
    async fn activity(
        &self,
        since_millis: i64,
        until_millis: i64,
    ) -> Result<ActivityCounts, StoreError> {
        self.read(move |conn| {
            let accepted: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM events WHERE received_at >= ?1 AND received_at < ?2",
                )?
                .query_row(params![since_millis, until_millis], |row| row.get(0))?;
            let mut counts = ActivityCounts {
                accepted: u64::try_from(accepted).unwrap_or(0),
                ..ActivityCounts::default()
            };
            let mut by_outcome = conn.prepare_cached(
                "SELECT json_extract(doc, '$.outcome'), COUNT(*) FROM attempts \
                 WHERE at >= ?1 AND at < ?2 GROUP BY 1",
            )?;
            let rows = by_outcome.query_map(params![since_millis, until_millis], |row| {
                Ok((row.get::<_, Option<String>>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (outcome, n) = row?;
                // An outcome this build does not know (written by a newer one) is not counted.
                let known = outcome
                    .as_deref()
                    .and_then(|text| AttemptOutcome::ALL.iter().find(|o| o.as_str() == text));
                if let Some(outcome) = known {
                    counts.add_attempts(*outcome, u64::try_from(n).unwrap_or(0));
                }
            }
            Ok(counts)
        })
        .await
    }
}
