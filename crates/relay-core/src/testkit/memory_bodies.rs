//! An in-memory `BodyStore`, with switches that make its calls fail, for tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::ports::{BodyStore, BodyStoreError};

#[derive(Default)]
pub struct MemoryBodies {
    objects: Mutex<HashMap<String, Bytes>>,
    /// When set, `put` fails (the store is down).
    pub fail_puts: AtomicBool,
}

impl MemoryBodies {
    /// The keys stored, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Makes every `put` fail from now on (or succeed again).
    pub fn set_failing_puts(&self, failing: bool) {
        self.fail_puts.store(failing, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl BodyStore for MemoryBodies {
    async fn put(&self, key: &str, body: Bytes, _sha256: &str) -> Result<(), BodyStoreError> {
        if self.fail_puts.load(Ordering::SeqCst) {
            return Err(BodyStoreError::Unavailable(
                "memory bodies: puts fail".into(),
            ));
        }
        self.lock().insert(key.to_owned(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BodyStoreError> {
        Ok(self.lock().get(key).cloned())
    }

    async fn delete(&self, key: &str) -> Result<(), BodyStoreError> {
        self.lock().remove(key);
        Ok(())
    }
}
