//! The body store of `relay dev`: one file per stored body under `<data dir>/bodies/`, written to
//! a temporary file and renamed into place (a reader never sees half a body), and removed once
//! older than the event retention, as the S3 bucket's lifecycle rule expires them on AWS.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use relay_core::ports::{BodyStore, BodyStoreError};

/// The directory inside the data dir (also the keys' prefix).
pub const BODIES_DIR: &str = "bodies";

/// How often a write also removes the bodies past retention.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Temporary files older than this were left by a crash mid-write.
const ABANDONED_TEMP_AGE: Duration = Duration::from_secs(3600);

pub struct LocalBodies {
    dir: PathBuf,
    retention: Duration,
    last_sweep: Mutex<Option<SystemTime>>,
}

impl LocalBodies {
    /// The store under `data_dir/bodies/`, created when absent; bodies older than `retention`
    /// are removed.
    pub fn open(data_dir: &Path, retention: Duration) -> Result<Self, BodyStoreError> {
        let dir = data_dir.join(BODIES_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| unavailable(&dir, e))?;
        Ok(Self {
            dir,
            retention,
            last_sweep: Mutex::new(None),
        })
    }

    /// The file of `key` (`bodies/<name>`, the name of ASCII letters, digits, `_` and `-`).
    fn path_of(&self, key: &str) -> Result<PathBuf, BodyStoreError> {
        let name = key
            .strip_prefix(BODIES_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
            .ok_or_else(|| BodyStoreError::Unavailable(format!("not a body key: {key:?}")))?;
        Ok(self.dir.join(name))
    }

    /// Whether a sweep is due at `now` (at most one every `SWEEP_EVERY`); marks it taken.
    fn sweep_due(&self, now: SystemTime) -> bool {
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|at| now.duration_since(at).unwrap_or_default() >= SWEEP_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }
}

/// Removes the bodies in `dir` older than `retention`, and temporary files a crash left.
fn sweep(dir: &Path, retention: Duration, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let temp = entry.file_name().to_string_lossy().starts_with('.');
        let max_age = if temp { ABANDONED_TEMP_AGE } else { retention };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|modified| now.duration_since(modified).unwrap_or_default());
        if age.is_ok_and(|age| age >= max_age)
            && let Err(e) = std::fs::remove_file(entry.path())
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %entry.path().display(), error = %e, "could not remove an expired body");
        }
    }
}

fn unavailable(path: &Path, e: std::io::Error) -> BodyStoreError {
    BodyStoreError::Unavailable(format!("{}: {e}", path.display()))
}

/// Writes `body` to a temporary file beside `path`, flushes it to disk and renames it into place.
fn write_atomically(path: &Path, body: &[u8]) -> Result<(), BodyStoreError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(
        ".{name}.{}.{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(body)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&temp);
        return Err(unavailable(path, e));
    }
    // The rename is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| unavailable(dir, e))
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, BodyStoreError> + Send + 'static,
) -> Result<T, BodyStoreError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| BodyStoreError::Unavailable(format!("body store task failed: {e}")))?
}

#[async_trait]
impl BodyStore for LocalBodies {
    async fn put(&self, key: &str, body: Bytes, _sha256: &str) -> Result<(), BodyStoreError> {
        let path = self.path_of(key)?;
        let now = SystemTime::now();
        // Bodies past the retention go as new ones come, as S3's lifecycle rule expires them.
        let sweep_dir = self.sweep_due(now).then(|| self.dir.clone());
        let retention = self.retention;
        blocking(move || {
            write_atomically(&path, &body)?;
            if let Some(dir) = sweep_dir {
                sweep(&dir, retention, now);
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BodyStoreError> {
        let path = self.path_of(key)?;
        blocking(move || match std::fs::read(&path) {
            Ok(body) => Ok(Some(Bytes::from(body))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(&path, e)),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BodyStoreError> {
        let path = self.path_of(key)?;
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(&path, e)),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_in_the_data_dir_keep_the_body_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let bodies = LocalBodies::open(dir.path(), Duration::from_secs(3600)).unwrap();
        relay_core::testkit::body_contract::body_store_contract(&bodies).await;
    }

    #[tokio::test]
    async fn keys_outside_the_bodies_dir_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bodies = LocalBodies::open(dir.path(), Duration::from_secs(3600)).unwrap();
        for key in [
            "bodies/../relay.db",
            "relay.db",
            "bodies/",
            "bodies/a/b",
            "other/evt_1",
        ] {
            assert!(bodies.get(key).await.is_err(), "{key}");
            assert!(bodies.put(key, Bytes::new(), "").await.is_err(), "{key}");
        }
    }

    #[tokio::test]
    async fn bodies_past_the_retention_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let bodies = LocalBodies::open(dir.path(), Duration::from_secs(3600)).unwrap();
        bodies
            .put("bodies/evt_old", Bytes::from_static(b"x"), "")
            .await
            .unwrap();
        let now = SystemTime::now();
        sweep(&bodies.dir, bodies.retention, now);
        assert!(
            bodies.get("bodies/evt_old").await.unwrap().is_some(),
            "young bodies stay"
        );
        sweep(
            &bodies.dir,
            bodies.retention,
            now + Duration::from_secs(3601),
        );
        assert_eq!(bodies.get("bodies/evt_old").await.unwrap(), None);
        // One sweep per `SWEEP_EVERY` at most: the put above took this period's.
        assert!(!bodies.sweep_due(now));
        assert!(bodies.sweep_due(now + SWEEP_EVERY + Duration::from_secs(1)));
    }
}
