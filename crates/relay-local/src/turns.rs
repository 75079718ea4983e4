//! Taking turns at the database's write lock between processes.
//!
//! SQLite's write lock has no queue: a process that finds it taken sleeps and tries again, and a
//! loaded `relay dev` that begins its next batch the moment it commits can hold the lock at nearly
//! every instant another process looks, so an operator's `relay subscriptions add` beside it
//! timed out with "database is locked". So every writer says when it is waiting (a shared lock on
//! the side file `relay.db-turn`, held while its BEGIN is kept waiting) and, before beginning a
//! batch, gives way while anyone says so. Giving way lasts at most `GIVE_WAY_MAX` a batch, so two
//! busy processes alternate and neither can stall the other.
//!
//! A waiter polls every `POLL` (SQLite's default handler backs off to 100 ms, longer than a
//! loaded writer's gaps) and gives up after `db::BUSY_TIMEOUT`, with an error that says so.

use std::cell::RefCell;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::BUSY_TIMEOUT;

/// How often a waiting writer tries the lock again.
const POLL: Duration = Duration::from_millis(1);
/// Longest a writer holds back one batch for another process that waits.
pub(crate) const GIVE_WAY_MAX: Duration = Duration::from_millis(250);

/// The side file through which this process's writer takes turns with other processes.
#[derive(Debug, Clone)]
pub(crate) struct WriteTurns {
    file: Arc<File>,
}

/// What the busy handler of the thread now beginning a transaction needs.
#[derive(Default)]
struct Waiting {
    /// The turns file of the transaction being begun on this thread, if any.
    turns: Option<Arc<File>>,
    /// Whether this thread holds its shared "waiting" lock.
    announced: bool,
    /// When the current wait began.
    since: Option<Instant>,
}

thread_local! {
    // The busy handler is a plain `fn` (SQLite calls it back with a count only), so what it needs
    // lives with the thread that runs the statement.
    static WAITING: RefCell<Waiting> = RefCell::new(Waiting::default());
}

impl WriteTurns {
    /// Opens (creating when absent) the turns file beside the database at `db_path`.
    pub(crate) fn open(db_path: &Path) -> std::io::Result<WriteTurns> {
        let mut name = db_path.as_os_str().to_owned();
        name.push("-turn");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(name)?;
        Ok(WriteTurns {
            file: Arc::new(file),
        })
    }

    /// Waits while another process says it is waiting for the write lock, at most
    /// `GIVE_WAY_MAX`; true when somebody was waiting.
    pub(crate) fn give_way(&self) -> bool {
        let started = Instant::now();
        let mut gave_way = false;
        loop {
            match self.file.try_lock() {
                Ok(()) => {
                    // Nobody waits. An unlock failure would leave our own lock, which the next
                    // try_lock on this same open file converts anyway.
                    let _ = self.file.unlock();
                    return gave_way;
                }
                Err(TryLockError::WouldBlock) if started.elapsed() < GIVE_WAY_MAX => {
                    gave_way = true;
                    std::thread::sleep(POLL);
                }
                Err(TryLockError::WouldBlock) => return true,
                Err(TryLockError::Error(_)) => return gave_way,
            }
        }
    }

    /// Runs `begin` (which begins a write transaction on this thread) with this process said to
    /// be waiting for as long as SQLite keeps it waiting.
    pub(crate) fn begin<T>(&self, begin: impl FnOnce() -> T) -> T {
        WAITING.with(|w| {
            *w.borrow_mut() = Waiting {
                turns: Some(Arc::clone(&self.file)),
                ..Waiting::default()
            }
        });
        let begun = begin();
        WAITING.with(|w| {
            let done = std::mem::take(&mut *w.borrow_mut());
            if let (true, Some(file)) = (done.announced, done.turns) {
                let _ = file.unlock();
            }
        });
        begun
    }
}

/// The writer connection's busy handler: says this process waits (when a transaction is being
/// begun through `WriteTurns::begin`), tries again every `POLL`, gives up after `BUSY_TIMEOUT`.
pub(crate) fn busy_handler(calls_so_far: i32) -> bool {
    let waited = WAITING.with(|w| {
        let mut w = w.borrow_mut();
        if calls_so_far == 0 {
            w.since = Some(Instant::now());
        }
        if !w.announced {
            // Fails only while a writer checks for waiters; announced on the next call then.
            w.announced = w
                .turns
                .as_ref()
                .is_some_and(|file| file.try_lock_shared().is_ok());
        }
        w.since.map_or(Duration::ZERO, |since| since.elapsed())
    });
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(POLL);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_gives_way_only_while_another_waits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let ours = WriteTurns::open(&db).unwrap();
        assert!(!ours.give_way(), "nobody waits");

        // Another open of the file stands for another process that says it waits.
        let theirs = WriteTurns::open(&db).unwrap();
        theirs.file.lock_shared().unwrap();
        let started = Instant::now();
        assert!(ours.give_way());
        assert!(
            started.elapsed() >= GIVE_WAY_MAX,
            "gives way until the bound"
        );
        theirs.file.unlock().unwrap();
        assert!(!ours.give_way());
    }

    #[test]
    fn a_begin_that_waits_announces_itself_until_it_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let ours = WriteTurns::open(&db).unwrap();
        let other = WriteTurns::open(&db).unwrap();
        let seen_waiting = ours.begin(|| {
            // SQLite calling the handler: the lock was busy.
            assert!(busy_handler(0));
            matches!(other.file.try_lock(), Err(TryLockError::WouldBlock))
        });
        assert!(
            seen_waiting,
            "a waiting begin must be visible to other writers"
        );
        // Once begun, nobody is said to wait any more.
        assert!(!other.give_way());
    }
}
