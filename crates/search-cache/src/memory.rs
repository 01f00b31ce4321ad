//! The in-process backend: a bounded `moka` cache. One process only; the embedded default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use engine_clock::{Clock, SystemClock};
use moka::Expiry;
use moka::sync::Cache;

use crate::{CacheError, CacheStore, Generation, Lookup, check_ttl};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryKey {
    namespace: Arc<str>,
    generation: u64,
    key: Box<str>,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
    /// Checked on read against the injected clock, so tests can expire entries without sleeping;
    /// moka's own expiry (by `ttl`) frees the memory.
    expires_at: DateTime<Utc>,
}

struct ByTtl;

impl Expiry<EntryKey, Entry> for ByTtl {
    fn expire_after_create(&self, _: &EntryKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
    fn expire_after_update(
        &self,
        _: &EntryKey,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// An in-memory cache bounded by the total size of its values.
#[derive(Clone)]
pub struct MemoryCache {
    entries: Cache<EntryKey, Entry>,
    generations: Arc<Mutex<HashMap<Arc<str>, u64>>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(64 * 1024 * 1024)
    }
}

impl MemoryCache {
    /// A cache holding at most about `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &EntryKey, v: &Entry| {
                u32::try_from(k.key.len() + k.namespace.len() + v.value.len() + 64)
                    .unwrap_or(u32::MAX)
            })
            .expire_after(ByTtl)
            .build();
        Self {
            entries,
            generations: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn generation(&self, namespace: &str) -> (Arc<str>, u64) {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        match generations.get_key_value(namespace) {
            Some((ns, g)) => (ns.clone(), *g),
            None => (Arc::from(namespace), 0),
        }
    }
}

#[async_trait]
impl CacheStore for MemoryCache {
    async fn get(&self, namespace: &str, key: &str) -> Result<Lookup, CacheError> {
        let (namespace, generation) = self.generation(namespace);
        let entry_key = EntryKey {
            namespace,
            generation,
            key: key.into(),
        };
        let value = match self.entries.get(&entry_key) {
            Some(entry) if entry.expires_at > self.clock.now() => Some(entry.value),
            Some(_) => {
                self.entries.invalidate(&entry_key);
                None
            }
            None => None,
        };
        Ok(Lookup {
            value,
            generation: Generation(generation),
        })
    }

    async fn put(
        &self,
        namespace: &str,
        generation: Generation,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        check_ttl(ttl)?;
        let (namespace, current) = self.generation(namespace);
        if generation.0 != current {
            // Computed before an invalidation: nobody may read it.
            return Ok(());
        }
        let expires_at = self.clock.now()
            + chrono::Duration::from_std(ttl).map_err(|_| CacheError::InvalidTtl(ttl))?;
        self.entries.insert(
            EntryKey {
                namespace,
                generation: generation.0,
                key: key.into(),
            },
            Entry {
                value,
                ttl,
                expires_at,
            },
        );
        Ok(())
    }

    async fn invalidate(&self, namespace: &str) -> Result<Generation, CacheError> {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let generation = generations.entry(Arc::from(namespace)).or_insert(0);
        *generation += 1;
        Ok(Generation(*generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{Harness, run_all};
    use engine_clock::ManualClock;

    #[tokio::test]
    async fn memory_cache_passes_the_conformance_suite() {
        let clock = ManualClock::starting_now();
        let cache = Arc::new(MemoryCache::new(1 << 20).with_clock(Arc::new(clock.clone())));
        run_all(Harness {
            store: cache.clone(),
            // Clones share entries and generations, like two handles on one Redis.
            second: Some(Arc::new((*cache).clone())),
            clock: Some(clock),
        })
        .await;
    }

    #[tokio::test]
    async fn memory_is_bounded_by_size() {
        let cache = MemoryCache::new(10_000);
        for i in 0..1_000 {
            let g = cache.get("ns", &i.to_string()).await.unwrap().generation;
            cache
                .put(
                    "ns",
                    g,
                    &i.to_string(),
                    Bytes::from(vec![0u8; 500]),
                    crate::DEFAULT_TTL,
                )
                .await
                .unwrap();
        }
        cache.entries.run_pending_tasks();
        assert!(
            cache.entries.weighted_size() <= 10_000,
            "{}",
            cache.entries.weighted_size()
        );
    }
}
