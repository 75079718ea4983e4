//! The queue contract suite (`relay_core::testkit::queue_contract`) on SQLite, one fresh
//! database file per test, on a clock the fixture moves.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use relay_core::testkit::QueueFixture;
use relay_core::{Clock, FixedClock, Queue, QueueConsumer};
use relay_local::LocalBackend;

struct SqliteQueues {
    backend: LocalBackend,
    clock: Arc<FixedClock>,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl QueueFixture for SqliteQueues {
    fn consumer(&self) -> &dyn QueueConsumer {
        &self.backend
    }
    fn producer(&self) -> &dyn Queue {
        &self.backend
    }
    fn events_max_receives(&self) -> u32 {
        // common::pinned's events_max_receive_count.
        3
    }
    async fn pass(&self, by: Duration) {
        let later = self.clock.now_millis() + i64::try_from(by.as_millis()).unwrap_or(0);
        self.clock.set_millis(later);
    }
}

async fn fresh_queues() -> SqliteQueues {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (backend, clock) = common::pinned(dir.path());
    SqliteQueues {
        backend,
        clock,
        _dir: dir,
    }
}

relay_core::queue_contract_tests!(fresh_queues());
