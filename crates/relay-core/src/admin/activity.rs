//! The last hour's activity minute by minute (the console's chart), from the same counts
//! `relay status` reads for the whole hour (`RecentActivity`).

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::ports::{ActivityCounts, RecentActivity, StoreError};

/// Minutes read at once: CloudWatch answers each minute with its own call.
const CONCURRENT_READS: usize = 6;
const MINUTE_MILLIS: i64 = 60_000;

/// One minute's counts, starting at `start_millis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCounts {
    pub start_millis: i64,
    pub counts: ActivityCounts,
}

/// The counts of each of the `minutes` whole minutes before `now_millis`, oldest first; the
/// minute in progress is the last, so the newest events show at once.
pub async fn per_minute(
    activity: &dyn RecentActivity,
    now_millis: i64,
    minutes: usize,
) -> Result<Vec<MinuteCounts>, StoreError> {
    let current = now_millis.div_euclid(MINUTE_MILLIS) * MINUTE_MILLIS;
    let starts: Vec<i64> = (0..minutes)
        .rev()
        .map(|back| {
            current - MINUTE_MILLIS * i64::try_from(back).unwrap_or(i64::MAX / MINUTE_MILLIS)
        })
        .collect();
    stream::iter(starts)
        .map(|start| async move {
            let counts = activity.activity(start, start + MINUTE_MILLIS).await?;
            Ok::<_, StoreError>(MinuteCounts {
                start_millis: start,
                counts,
            })
        })
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    /// Counts one accepted event per call and remembers the windows asked for.
    #[derive(Default)]
    struct Windows(Mutex<Vec<(i64, i64)>>);

    #[async_trait]
    impl RecentActivity for Windows {
        async fn activity(&self, since: i64, until: i64) -> Result<ActivityCounts, StoreError> {
            self.0.lock().unwrap().push((since, until));
            Ok(ActivityCounts {
                accepted: u64::try_from(since / MINUTE_MILLIS).unwrap(),
                delivered: 0,
                failed: 0,
            })
        }
    }

    #[tokio::test]
    async fn each_minute_is_read_once_oldest_first_ending_with_the_current_one() {
        let activity = Windows::default();
        let now = 10 * MINUTE_MILLIS + 1_234;
        let minutes = per_minute(&activity, now, 3).await.unwrap();
        let starts: Vec<i64> = minutes.iter().map(|m| m.start_millis).collect();
        assert_eq!(starts, [8, 9, 10].map(|m| m * MINUTE_MILLIS));
        assert_eq!(
            minutes[0].counts.accepted, 8,
            "each minute carries its own counts"
        );
        let mut asked = activity.0.lock().unwrap().clone();
        asked.sort_unstable();
        assert_eq!(
            asked,
            [8, 9, 10].map(|m| (m * MINUTE_MILLIS, (m + 1) * MINUTE_MILLIS))
        );
    }
}
