//! The handle: one writer thread, a small pool of read connections, and per-queue wake-ups.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_core::StoreError;
use relay_core::ports::clock::{self, SharedClock};
use rusqlite::{Connection, Transaction};
use tokio::sync::Notify;

use crate::db::{self, DbError, DbResult};
use crate::queue::LocalQueueName;
use crate::turns::WriteTurns;
use crate::writer::{Purge, Writer, WriterStats};

/// The database file inside the data directory.
pub const DB_FILE: &str = "relay.db";

/// Idle read connections kept per process; more are opened on demand under load.
const MAX_IDLE_READERS: usize = 8;

/// Settings of a local backend. The receive counts play the part of the SQS redrive policies.
#[derive(Clone)]
pub struct LocalOptions {
    /// Receives after which an `events` message moves to `events-dlq` (SQS maxReceiveCount).
    pub events_max_receive_count: u32,
    /// Receives after which a `deliveries` message moves to `deliveries-dlq`.
    pub deliveries_max_receive_count: u32,
    /// Messages older than this are dropped, like SQS's retention period (14 days).
    pub message_retention: Duration,
    /// Time for visibility, delays and purging; tests pin it.
    pub clock: SharedClock,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            events_max_receive_count: 5,
            deliveries_max_receive_count: 10,
            message_retention: Duration::from_secs(14 * 24 * 3600),
            clock: clock::system(),
        }
    }
}

impl fmt::Debug for LocalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalOptions")
            .field("events_max_receive_count", &self.events_max_receive_count)
            .field(
                "deliveries_max_receive_count",
                &self.deliveries_max_receive_count,
            )
            .field("message_retention", &self.message_retention)
            .finish_non_exhaustive()
    }
}

/// The embedded SQLite backend: implements `Store` and `Queue`, plus the queue consumer API
/// `relay dev` and the admin CLI use. Cheap to clone; several processes may open the same
/// directory at once.
#[derive(Clone)]
pub struct LocalBackend {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    path: PathBuf,
    pub(crate) options: LocalOptions,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// Woken after this process sends to (or redrives into) a queue.
    notify: [Notify; LocalQueueName::ALL.len()],
}

impl fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBackend")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl LocalBackend {
    /// Opens (creating when absent) `dir/relay.db`, with the schema, WAL mode and durable commits.
    pub fn open(dir: &Path, options: LocalOptions) -> Result<LocalBackend, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join(DB_FILE);
        let turns = WriteTurns::open(&path).map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}-turn: {e}", path.display()))
        })?;
        let conn = db::open_writer(&path, &turns).map_err(|e| match StoreError::from(e) {
            StoreError::Unavailable(why) => {
                StoreError::Unavailable(format!("cannot open {}: {why}", path.display()))
            }
            other => other,
        })?;
        let checkpoints = db::open_checkpointer(&path).map_err(StoreError::from)?;
        let writer = Writer::spawn(
            conn,
            turns,
            checkpoints,
            Purge {
                clock: options.clock.clone(),
                message_retention: options.message_retention,
            },
        )?;
        Ok(LocalBackend {
            inner: Arc::new(Inner {
                path,
                options,
                writer,
                readers: Mutex::new(Vec::new()),
                notify: std::array::from_fn(|_| Notify::new()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Counters of this process's writer thread.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    pub(crate) fn now_millis(&self) -> i64 {
        self.inner.options.clock.now_millis()
    }

    pub(crate) fn notify(&self, queue: LocalQueueName) -> &Notify {
        &self.inner.notify[queue.index()]
    }

    /// Runs `work` in the writer thread's next group commit.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> DbResult<T> + Send + 'static,
    {
        self.inner.writer.run(work).await
    }

    /// Runs `work` on a pooled read connection, right here on the async worker: an indexed read
    /// takes microseconds, less than a hop to a blocking thread (measured with the throughput
    /// example: same or better events/s, about half the system CPU). Readers never wait on
    /// SQLite's busy handler (which would block the worker); a busy database is retried here with
    /// async sleeps instead, for as long as the writer's busy timeout.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: Fn(&Connection) -> DbResult<T> + Send,
    {
        let deadline = Instant::now() + db::BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            match self.inner.with_reader(&work) {
                Err(DbError::Sqlite(e)) if db::is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other.map_err(StoreError::from),
            }
        }
    }
}

impl Inner {
    fn with_reader<T>(&self, work: impl FnOnce(&Connection) -> DbResult<T>) -> DbResult<T> {
        let pooled = self.readers.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => db::open_reader(&self.path)?,
        };
        let result = work(&conn);
        let idle = self.readers.lock().ok();
        if let Some(mut idle) = idle.filter(|idle| idle.len() < MAX_IDLE_READERS) {
            idle.push(conn);
        }
        result
    }
}
