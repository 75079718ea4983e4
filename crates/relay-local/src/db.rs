//! Connections, schema and error mapping shared by the writer thread and the readers.

use std::path::Path;
use std::time::Duration;

use relay_core::StoreError;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;

use crate::turns::{self, WriteTurns};

/// Bumped whenever the schema changes; `open` refuses a file written by a newer relay.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// How long a connection waits for another process's lock before giving up. Writers take turns
/// (`turns`), so a write waits about one batch of a busy process, far less than this.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Version 1, the schema a fresh file starts from; `MIGRATIONS` then bring it up to date, so a
/// fresh file and an upgraded one take the same path.
const SCHEMA: &str = "

CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS subscriptions (
    id     TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    doc    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_source ON subscriptions (source, id);

CREATE TABLE IF NOT EXISTS dedup (
    source     TEXT NOT NULL,
    key        TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires_at);

CREATE TABLE IF NOT EXISTS events (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at, id);
CREATE INDEX IF NOT EXISTS events_by_expiry ON events (expires_at);

CREATE TABLE IF NOT EXISTS attempts (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_event ON attempts (event_id, at);
CREATE INDEX IF NOT EXISTS attempts_by_expiry ON attempts (expires_at);

-- receipt is 0 while nobody holds the message; a receive sets a fresh random one.
CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY,
    queue         TEXT NOT NULL,
    body          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       INTEGER NOT NULL DEFAULT 0,
    sent_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at, id);
";

/// `MIGRATIONS[i]` takes a file from version `i + 1` to `i + 2`.
const MIGRATIONS: [&str; 1] = [
    // 2: an attempt record is keyed by (event, attempt number, subscription), the log is read in
    // that order, and writing a key again replaces its record. Rows written by version 1 get
    // their key from the stored document; of duplicates, the last written is kept.
    "
ALTER TABLE attempts ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN subscription_id TEXT NOT NULL DEFAULT '';
UPDATE attempts SET
    attempt = COALESCE(json_extract(doc, '$.attempt'), 0),
    subscription_id = COALESCE(json_extract(doc, '$.subscription_id'), '');
DELETE FROM attempts WHERE seq NOT IN
    (SELECT MAX(seq) FROM attempts GROUP BY event_id, attempt, subscription_id);
DROP INDEX IF EXISTS attempts_by_event;
CREATE UNIQUE INDEX attempts_by_key ON attempts (event_id, attempt, subscription_id);
",
];

/// Errors inside jobs and readers: SQLite's own, or one the port defines. Lets closures use `?`
/// on both, and is mapped to `StoreError` at the boundary.
#[derive(Debug)]
pub(crate) enum DbError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<StoreError> for DbError {
    fn from(e: StoreError) -> Self {
        DbError::Store(e)
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(e) => e,
            DbError::Sqlite(e) => sqlite_to_store(&e),
        }
    }
}

pub(crate) fn sqlite_to_store(e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(e.to_string())
        }
        // Busy, locked, I/O, disk full and the rest: the caller may retry later.
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// Another connection holds a lock this one needs.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(crate) type DbResult<T> = Result<T, DbError>;

/// Decodes a stored JSON document; a bad one is corruption, not unavailability.
pub(crate) fn decode<T: DeserializeOwned>(doc: &str, what: &str) -> DbResult<T> {
    serde_json::from_str(doc)
        .map_err(|e| DbError::Store(StoreError::Corrupt(format!("{what}: {e}"))))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn open_flags() -> OpenFlags {
    // NO_MUTEX: every connection is used by one thread at a time, so SQLite's own locking is waste.
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// The one write connection of this process: WAL so readers never block it, `synchronous=FULL`
/// so a commit survives a power cut (an accepted event must not be lost, as with SQS).
pub(crate) fn open_writer(path: &Path, turns: &WriteTurns) -> DbResult<Connection> {
    let mut conn = Connection::open_with_flags(path, open_flags())?;
    conn.busy_handler(Some(turns::busy_handler))?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{} cannot use WAL mode (got {mode}); is it on a network file system?",
            path.display()
        ))
        .into());
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on the checkpointer thread; this large threshold only bounds the WAL when
    // that thread cannot catch up (the writer then completes the checkpoint and the WAL restarts).
    conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    tune(&conn)?;
    migrate(&mut conn, turns)?;
    Ok(conn)
}

/// The checkpointer thread's connection.
pub(crate) fn open_checkpointer(path: &Path) -> DbResult<Connection> {
    let conn = Connection::open_with_flags(path, open_flags())?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// A connection for reads only; `query_only` guards against a write slipping past the writer.
/// No busy timeout: readers run on async workers, so the caller retries with async sleeps.
pub(crate) fn open_reader(path: &Path) -> DbResult<Connection> {
    let conn = Connection::open_with_flags(path, open_flags())?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "query_only", "ON")?;
    tune(&conn)?;
    Ok(conn)
}

fn tune(conn: &Connection) -> DbResult<()> {
    // Every statement is prepared once and reused. Without the planner stability guarantee,
    // SQLite re-prepares range queries (receive, earliest visible) on every run to re-plan for
    // the bound values: measured at over a tenth of the writer thread's time.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Begins a write transaction, taking turns with other processes' writers (`turns`); a lock held
/// elsewhere for longer than `BUSY_TIMEOUT` is reported as such.
pub(crate) fn begin_write<'c>(
    conn: &'c mut Connection,
    turns: &WriteTurns,
) -> DbResult<Transaction<'c>> {
    turns
        .begin(move || conn.transaction_with_behavior(TransactionBehavior::Immediate))
        .map_err(|e| {
            if is_busy(&e) {
                DbError::Store(StoreError::Unavailable(format!(
                    "another process held the database's write lock for over {} s ({e})",
                    BUSY_TIMEOUT.as_secs()
                )))
            } else {
                DbError::Sqlite(e)
            }
        })
}

fn migrate(conn: &mut Connection, turns: &WriteTurns) -> DbResult<()> {
    // IMMEDIATE: two processes opening a fresh file at once create the schema one after another.
    let tx = begin_write(conn, turns)?;
    // The version first: a file from a newer relay is left exactly as it is.
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found: Option<i64> =
        tx.query_row("SELECT MAX(version) FROM schema_version", [], |row| {
            row.get(0)
        })?;
    let current = match found {
        None => {
            tx.execute_batch(SCHEMA)?;
            1
        }
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::Unavailable(format!(
                "the database has schema version {v}, newer than this relay's {SCHEMA_VERSION}; \
                 upgrade the relay"
            ))
            .into());
        }
        Some(v) => v,
    };
    if current < SCHEMA_VERSION {
        // Inside the same IMMEDIATE transaction: a failed step leaves the file as it was.
        let first = usize::try_from(current - 1).unwrap_or(0);
        for step in MIGRATIONS.get(first..).unwrap_or_default() {
            tx.execute_batch(step)?;
        }
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SCHEMA_VERSION],
        )?;
    }
    tx.commit()?;
    Ok(())
}
