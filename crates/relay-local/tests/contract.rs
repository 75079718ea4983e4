//! The store contract suite (`relay_core::testkit::contract`) on SQLite, one fresh database file
//! per test.

mod common;

use std::ops::Deref;

use relay_local::LocalBackend;

/// The backend and the directory holding its file, removed when the test ends.
struct SqliteFixture {
    backend: LocalBackend,
    _dir: tempfile::TempDir,
}

impl Deref for SqliteFixture {
    type Target = LocalBackend;

    fn deref(&self) -> &LocalBackend {
        &self.backend
    }
}

/// The clock stays at the suite's `NOW`, so the writer's purge of expired rows never removes a
/// claim the suite is still looking at.
async fn fresh_store() -> SqliteFixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (backend, _clock) = common::pinned(dir.path());
    SqliteFixture { backend, _dir: dir }
}

const _: () = assert!(common::T0 == relay_core::testkit::contract::NOW);

relay_core::store_contract_tests!(fresh_store());
