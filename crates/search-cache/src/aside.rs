//! Cache-aside for any read function: look up, and on a miss run the query once however many
//! callers miss at the same time (single flight), then store the answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::{CacheError, CacheStore, DEFAULT_TTL, Generation, Lookup};

/// Counters of a [`CacheAside`], for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    errors: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Answered from the cache.
    pub hits: u64,
    /// Not in the cache: the read function ran.
    pub misses: u64,
    /// Not in the cache, but another caller was already running the read function for the
    /// same key, and its answer was shared.
    pub coalesced: u64,
    /// The backend failed; the read function ran without the cache.
    pub errors: u64,
}

impl CacheStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

type FlightKey = (Box<str>, Generation, Box<str>);
type Flights = Mutex<HashMap<FlightKey, Arc<OnceCell<Bytes>>>>;

/// Cache-aside over a [`CacheStore`]: values are stored as JSON.
///
/// A backend failure never fails the read: the value is computed without the cache and the
/// failure is counted in [`CacheStats`].
#[derive(Debug, Clone)]
pub struct CacheAside {
    store: Arc<dyn CacheStore>,
    ttl: Duration,
    flights: Arc<Flights>,
    stats: Arc<CacheStats>,
}

impl CacheAside {
    /// Cache-aside over `store` with the [default TTL](DEFAULT_TTL).
    pub fn new(store: Arc<dyn CacheStore>) -> Self {
        Self {
            store,
            ttl: DEFAULT_TTL,
            flights: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// Sets the time entries live.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The counters (shared by clones).
    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.store
    }

    /// Makes every entry of `namespace` invisible, on every node sharing the store.
    pub async fn invalidate(&self, namespace: &str) -> Result<Generation, CacheError> {
        self.store.invalidate(namespace).await
    }

    /// The cached value of `key`, or the value of `load`, which is then cached. Concurrent
    /// misses for one key in one process run `load` once and share its answer; an error of
    /// `load` is returned to its caller and nothing is cached.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        load: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let generation = match self.store.get(namespace, key).await {
            Ok(Lookup {
                value: Some(bytes),
                generation,
            }) => match serde_json::from_slice(&bytes) {
                Ok(value) => {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(value);
                }
                // Written by another version of the program: recompute and overwrite.
                Err(_) => Some(generation),
            },
            Ok(Lookup {
                value: None,
                generation,
            }) => Some(generation),
            Err(error) => {
                self.count_error(&error);
                None
            }
        };
        let Some(generation) = generation else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return load().await;
        };

        let flight_key: FlightKey = (namespace.into(), generation, key.into());
        let cell = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(flight_key.clone()).or_default().clone()
        };
        let mut load = Some(load);
        let mut ran = None;
        let outcome = cell
            .get_or_try_init(|| async {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                let load = load
                    .take()
                    .expect("the initialiser runs at most once per caller");
                let value = load().await?;
                match serde_json::to_vec(&value) {
                    Ok(json) => {
                        let bytes = Bytes::from(json);
                        if let Err(error) = self
                            .store
                            .put(namespace, generation, key, bytes.clone(), self.ttl)
                            .await
                        {
                            self.count_error(&error);
                        }
                        ran = Some(value);
                        Ok::<_, E>(bytes)
                    }
                    // Not representable as JSON: share nothing, cache nothing.
                    Err(_) => {
                        ran = Some(value);
                        Ok(Bytes::new())
                    }
                }
            })
            .await;
        {
            // Later callers find the value in the store; a caller still waiting on this cell
            // keeps its own handle.
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            if flights
                .get(&flight_key)
                .is_some_and(|c| Arc::ptr_eq(c, &cell))
            {
                flights.remove(&flight_key);
            }
        }
        let bytes = outcome?;
        if let Some(value) = ran {
            return Ok(value);
        }
        match serde_json::from_slice(bytes) {
            Ok(value) => {
                self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
                Ok(value)
            }
            Err(_) => match load.take() {
                Some(load) => {
                    self.stats.misses.fetch_add(1, Ordering::Relaxed);
                    load().await
                }
                None => {
                    unreachable!("a caller that did not initialise the cell still has its loader")
                }
            },
        }
    }

    fn count_error(&self, error: &CacheError) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "cache unavailable; reading through");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    /// A backend that is down.
    #[derive(Debug)]
    struct Down;

    #[async_trait]
    impl CacheStore for Down {
        async fn get(&self, _: &str, _: &str) -> Result<Lookup, CacheError> {
            Err(CacheError::unavailable("test", "down"))
        }
        async fn put(
            &self,
            _: &str,
            _: Generation,
            _: &str,
            _: Bytes,
            _: Duration,
        ) -> Result<(), CacheError> {
            unreachable!("no put after a failed get")
        }
        async fn invalidate(&self, _: &str) -> Result<Generation, CacheError> {
            Err(CacheError::unavailable("test", "down"))
        }
    }

    #[tokio::test]
    async fn a_dead_backend_reads_through_and_is_counted() {
        let cache = CacheAside::new(Arc::new(Down));
        for expected in [1u32, 2] {
            let got: u32 = cache
                .get_or_load("ns", "k", || async { Ok::<_, ()>(expected) })
                .await
                .unwrap();
            assert_eq!(got, expected, "every read runs the query");
        }
        let stats = cache.stats().snapshot();
        assert_eq!((stats.errors, stats.misses, stats.hits), (2, 2, 0));
    }
}
