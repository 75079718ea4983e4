//! A small time-bounded cache for source and subscription look-ups in warm processes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value for `key`, or the loader's, which is cached when it is `Ok(Some(_))`.
    /// Misses are not cached, so a source created a moment ago is found at once.
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if !self.ttl.is_zero()
            && let Ok(entries) = self.entries.lock()
            && let Some((at, value)) = entries.get(key)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(value.clone()));
        }
        let loaded = load().await?;
        if let (Some(value), false) = (&loaded, self.ttl.is_zero())
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() > 10_000 {
                entries.clear();
            }
            entries.insert(key.to_owned(), (Instant::now(), value.clone()));
        }
        Ok(loaded)
    }

    pub fn invalidate(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caches_hits_not_misses() {
        let cache = TtlCache::new(Duration::from_secs(60));
        let v: Result<Option<u32>, ()> = cache.get_or_load("a", || async { Ok(Some(1)) }).await;
        assert_eq!(v, Ok(Some(1)));
        let v: Result<Option<u32>, ()> = cache.get_or_load("a", || async { Ok(Some(2)) }).await;
        assert_eq!(v, Ok(Some(1)));
        let v: Result<Option<u32>, ()> = cache.get_or_load("b", || async { Ok(None) }).await;
        assert_eq!(v, Ok(None));
        let v: Result<Option<u32>, ()> = cache.get_or_load("b", || async { Ok(Some(3)) }).await;
        assert_eq!(v, Ok(Some(3)));
        cache.invalidate("a");
        let v: Result<Option<u32>, ()> = cache.get_or_load("a", || async { Ok(Some(4)) }).await;
        assert_eq!(v, Ok(Some(4)));
    }
}
