//! The writer thread: owns this process's write connection and commits in groups.
//!
//! One `synchronous=FULL` commit costs an fsync, so committing every request on its own caps the
//! whole relay at the disk's fsync rate. Instead the thread takes the first queued job, drains
//! whatever else is waiting, runs each job inside its own SAVEPOINT of one transaction (a failing
//! job rolls back only itself), commits once and then answers every caller. A lone request still
//! commits at once: nothing ever waits on a timer to fill a batch.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use relay_core::StoreError;
use relay_core::ports::clock::SharedClock;
use rusqlite::{Connection, Transaction};
use tokio::sync::oneshot;

use crate::db::{DbResult, begin_write};
use crate::turns::WriteTurns;

/// Most jobs per commit; bounds the latency a batch adds to its first caller.
const MAX_BATCH: usize = 256;
/// Least time between two background checkpoints.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(50);
/// How often expired rows are purged, from this thread, between batches.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// Rows deleted per table per purge pass, so a purge never holds the write lock for long.
const PURGE_CHUNK: i64 = 5000;

/// What the writer thread runs: work inside the batch transaction, then an answer once the
/// batch's commit is known.
trait Job: Send {
    /// Runs the work; false when it failed and its savepoint must be rolled back.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Replies to the caller; `committed` is the batch's fate.
    fn answer(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    outcome: Option<DbResult<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> DbResult<T> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = work(tx);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, committed: Result<(), &StoreError>) {
        let result = match (self.outcome, committed) {
            // A job's own failure is the more useful answer, whatever became of the batch.
            (Some(Err(e)), _) => Err(StoreError::from(e)),
            (Some(Ok(value)), Ok(())) => Ok(value),
            // Not run: the batch could not begin (its error says why) or the job panicked.
            (_, Err(batch)) => Err(same_error(batch)),
            (None, Ok(())) => Err(StoreError::Unavailable("write job did not run".into())),
        };
        // The caller may have gone away (cancelled request); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// Housekeeping the writer does between batches.
pub(crate) struct Purge {
    pub clock: SharedClock,
    /// Queue messages older than this are dropped, as SQS drops them after its retention period.
    pub message_retention: Duration,
}

/// The handle async code uses to reach the writer thread.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    counters: Arc<Counters>,
}

/// What the writer thread has done so far in this process (diagnostics, tuning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Write jobs run (committed or not).
    pub jobs: u64,
    /// Transactions they ran in: `jobs / batches` is the group-commit factor.
    pub batches: u64,
    /// Time spent running batches, commits included.
    pub busy: Duration,
}

#[derive(Default)]
struct Counters {
    jobs: AtomicU64,
    batches: AtomicU64,
    busy_micros: AtomicU64,
}

impl Counters {
    fn record(&self, jobs: u64, took: Duration) {
        self.jobs.fetch_add(jobs, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl Writer {
    /// Starts the writer thread on `conn`, and a checkpointer thread on `checkpoints`.
    pub(crate) fn spawn(
        conn: Connection,
        turns: WriteTurns,
        checkpoints: Connection,
        purge: Purge,
    ) -> Result<Writer, StoreError> {
        let (jobs, rx) = mpsc::channel::<Box<dyn Job>>();
        let counters = Arc::new(Counters::default());
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let failed =
            |e: std::io::Error| StoreError::Unavailable(format!("cannot start a thread: {e}"));
        std::thread::Builder::new()
            .name("relay-sqlite-ckpt".into())
            .spawn(move || checkpointer_loop(checkpoints, commits))
            .map_err(failed)?;
        std::thread::Builder::new()
            .name("relay-sqlite-writer".into())
            .spawn({
                let counters = Arc::clone(&counters);
                move || writer_loop(conn, &turns, rx, committed, purge, counters)
            })
            .map_err(failed)?;
        Ok(Writer { jobs, counters })
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            busy: Duration::from_micros(self.counters.busy_micros.load(Ordering::Relaxed)),
        }
    }

    /// Runs `work` in the next group commit and returns its result once the commit is durable.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> DbResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work: Some(work),
            outcome: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| StoreError::Unavailable("the SQLite writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer thread has stopped".into()))?
    }
}

fn writer_loop(
    mut conn: Connection,
    turns: &WriteTurns,
    rx: mpsc::Receiver<Box<dyn Job>>,
    committed: mpsc::SyncSender<()>,
    purge: Purge,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // Purge soon after open, but after the first batch so opening never waits on it.
    let mut next_purge = Instant::now();
    loop {
        let wait = next_purge.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(job) => batch.push(job),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every handle is gone: close the connection and stop.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let started = Instant::now();
            let jobs = batch.len() as u64;
            // Back to back, batches would keep the lock from other processes for good.
            turns.give_way();
            run_batch(&mut conn, turns, &mut batch);
            // Tell the checkpointer there is work; a signal already pending covers this one.
            let _ = committed.try_send(());
            counters.record(jobs, started.elapsed());
        }
        if Instant::now() >= next_purge {
            turns.give_way();
            next_purge = match purge_expired(&mut conn, turns, &purge) {
                // A full chunk means more is left: continue after the next batch.
                Ok(true) => Instant::now() + Duration::from_millis(50),
                Ok(false) => Instant::now() + PURGE_INTERVAL,
                Err(e) => {
                    tracing::warn!(error = %StoreError::from(e), "purging expired rows failed");
                    Instant::now() + PURGE_INTERVAL
                }
            };
        }
    }
}

/// Copies committed WAL frames into the database file off the writer's path: a checkpoint
/// writes and syncs the database file, which would otherwise stall every caller of the commit
/// that triggers it. The writer's own (rare, large-threshold) autocheckpoint remains as the
/// backstop that lets the WAL restart under sustained load.
fn checkpointer_loop(conn: Connection, commits: mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "background checkpoint failed");
        }
        // Coalesces bursts of commits into one checkpoint.
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

fn run_batch(conn: &mut Connection, turns: &WriteTurns, batch: &mut Vec<Box<dyn Job>>) {
    let committed = run_jobs(conn, turns, batch).map_err(StoreError::from);
    for job in batch.drain(..) {
        job.answer(committed.as_ref().map(|_| ()));
    }
}

/// The batch's error, once for each of its callers (`StoreError` is not `Clone`).
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Stale(m) => StoreError::Stale(m.clone()),
    }
}

fn run_jobs(conn: &mut Connection, turns: &WriteTurns, batch: &mut [Box<dyn Job>]) -> DbResult<()> {
    // IMMEDIATE takes the write lock up front (waiting its turn behind other processes), so a
    // batch never fails half way on a lock upgrade.
    let tx = begin_write(conn, turns)?;
    if let [job] = batch {
        // Alone in the batch, the transaction itself is the job's savepoint.
        if run_guarded(job.as_mut(), &tx) {
            tx.commit()?;
        }
        // A failed lone job: dropping `tx` rolls it back; its own error is its answer.
        return Ok(());
    }
    for job in batch.iter_mut() {
        tx.prepare_cached("SAVEPOINT job")?.execute([])?;
        if run_guarded(job.as_mut(), &tx) {
            tx.prepare_cached("RELEASE job")?.execute([])?;
        } else {
            tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
            tx.prepare_cached("RELEASE job")?.execute([])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Runs one job; a panicking job counts as failed rather than killing the thread.
fn run_guarded(job: &mut dyn Job, tx: &Transaction<'_>) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| job.run(tx))).unwrap_or_else(|_| {
        tracing::error!("a SQLite write job panicked; its changes were rolled back");
        false
    })
}

/// Deletes expired rows, at most a chunk per table; true when a table had more to delete.
fn purge_expired(conn: &mut Connection, turns: &WriteTurns, purge: &Purge) -> DbResult<bool> {
    let now_ms = purge.clock.now_millis();
    let now_secs = now_ms.div_euclid(1000);
    let retention_ms = i64::try_from(purge.message_retention.as_millis()).unwrap_or(i64::MAX);
    let oldest_message = now_ms.saturating_sub(retention_ms);
    let tx = begin_write(conn, turns)?;
    let mut more = false;
    for (sql, cutoff) in [
        (
            "DELETE FROM dedup WHERE (source, key) IN \
             (SELECT source, key FROM dedup WHERE expires_at <= ?1 LIMIT ?2)",
            now_secs,
        ),
        (
            "DELETE FROM events WHERE rowid IN \
             (SELECT rowid FROM events WHERE expires_at <= ?1 LIMIT ?2)",
            now_secs,
        ),
        (
            "DELETE FROM attempts WHERE rowid IN \
             (SELECT rowid FROM attempts WHERE expires_at <= ?1 LIMIT ?2)",
            now_secs,
        ),
        (
            "DELETE FROM messages WHERE rowid IN \
             (SELECT rowid FROM messages WHERE sent_at <= ?1 LIMIT ?2)",
            oldest_message,
        ),
    ] {
        let deleted = tx.execute(sql, rusqlite::params![cutoff, PURGE_CHUNK])?;
        more |= deleted as i64 >= PURGE_CHUNK;
    }
    tx.commit()?;
    Ok(more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::ports::clock;
    use std::sync::Arc;

    fn writer(dir: &std::path::Path) -> (Writer, std::path::PathBuf) {
        let path = dir.join("w.db");
        let turns = WriteTurns::open(&path).unwrap();
        let conn = crate::db::open_writer(&path, &turns).unwrap();
        let purge = Purge {
            clock: clock::system(),
            message_retention: Duration::from_secs(3600),
        };
        let checkpoints = crate::db::open_checkpointer(&path).unwrap();
        (
            Writer::spawn(conn, turns, checkpoints, purge).unwrap(),
            path,
        )
    }

    fn count(path: &std::path::Path) -> i64 {
        let conn = crate::db::open_reader(path).unwrap();
        conn.query_row("SELECT COUNT(*) FROM sources", [], |r| r.get(0))
            .unwrap()
    }

    async fn insert(writer: &Writer, i: usize, fail: bool) -> Result<(), StoreError> {
        writer
            .run(move |tx| {
                tx.execute(
                    "INSERT INTO sources (name, doc) VALUES (?1, '{}')",
                    [format!("s{i}")],
                )?;
                if fail {
                    return Err(StoreError::Conflict(format!("job {i} fails")).into());
                }
                Ok(())
            })
            .await
    }

    /// Jobs that fail after writing are rolled back alone; the rest of their batch commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(dir.path());
        let writer = Arc::new(writer);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..600 {
            let writer = Arc::clone(&writer);
            tasks.spawn(async move { (i, insert(&writer, i, i % 3 == 0).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, result) = done.unwrap();
            match result {
                Ok(()) => assert!(i % 3 != 0),
                Err(StoreError::Conflict(msg)) => assert_eq!(msg, format!("job {i} fails")),
                Err(e) => panic!("job {i}: {e:?}"),
            }
        }
        assert_eq!(count(&path), 400);
    }

    #[tokio::test]
    async fn a_lone_failing_job_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(dir.path());
        assert!(insert(&writer, 1, true).await.is_err());
        assert_eq!(count(&path), 0);
        insert(&writer, 2, false).await.unwrap();
        assert_eq!(count(&path), 1);
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(dir.path());
        let result: Result<(), StoreError> = writer
            .run(|tx| {
                tx.execute("INSERT INTO sources (name, doc) VALUES ('p', '{}')", [])?;
                panic!("bug in a job");
            })
            .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        insert(&writer, 1, false).await.unwrap();
        assert_eq!(count(&path), 1);
    }

    /// Another process's writer (here: a second writer on the same file) gets its turn while
    /// this one is kept busy back to back, each batch holding the lock for a while.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_writer_gets_its_turn_beside_a_busy_one() {
        let dir = tempfile::tempdir().unwrap();
        let (busy, path) = writer(dir.path());
        let (other, _) = writer(dir.path());
        let busy = Arc::new(busy);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = tokio::task::JoinSet::new();
        // More jobs in flight than a batch takes: the next batch is always waiting.
        for _ in 0..MAX_BATCH + MAX_BATCH / 2 {
            let (busy, stop) = (Arc::clone(&busy), Arc::clone(&stop));
            load.spawn(async move {
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    busy.run(|tx| {
                        tx.execute(
                            "INSERT INTO sources (name, doc) VALUES (hex(randomblob(8)), '{}')",
                            [],
                        )?;
                        // A slow disk: the lock is held for a while by every job.
                        std::thread::sleep(Duration::from_micros(500));
                        Ok(())
                    })
                    .await
                    .unwrap();
                    done += 1;
                }
                done
            });
        }
        for i in 0..20 {
            insert(&other, 100_000 + i, false)
                .await
                .unwrap_or_else(|e| panic!("write {i} beside the busy writer: {e}"));
        }
        stop.store(true, Ordering::Relaxed);
        let mut busy_jobs = 0;
        while let Some(done) = load.join_next().await {
            busy_jobs += done.unwrap();
        }
        assert!(busy_jobs > 0, "the busy writer wrote meanwhile");
        assert_eq!(count(&path), 20 + busy_jobs as i64);
    }

    /// When the lock is held elsewhere for longer than the busy timeout, the caller is told so.
    #[tokio::test]
    async fn a_batch_that_cannot_begin_reports_why() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(dir.path());
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = insert(&writer, 1, false).await.unwrap_err();
        holder.execute_batch("ROLLBACK").unwrap();
        match err {
            StoreError::Unavailable(why) => assert!(
                why.contains("another process held the database's write lock for over 5 s"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        insert(&writer, 2, false).await.unwrap();
        assert_eq!(count(&path), 1);
    }

    #[tokio::test]
    async fn sql_errors_reach_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = writer(dir.path());
        let result: Result<(), StoreError> = writer
            .run(|tx| {
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
    }
}
