#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

mod aside;
pub mod memory;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use aside::{CacheAside, CacheStats, StatsSnapshot};
pub use engine_clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryCache;

/// How long an entry lives unless the caller says otherwise: ten minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// A namespace's generation. Invalidating a namespace moves it on; entries written under an older
/// generation are never read again and age out by their TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The cached value, if any.
    pub value: Option<Bytes>,
    /// The namespace's generation at the time of the lookup. A value computed after a miss must
    /// be stored under it, so that an invalidation that happens meanwhile makes it invisible.
    pub generation: Generation,
}

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend could not be reached or failed: worth trying again later
    /// ([`CacheError::is_retryable`]). What it said is the [`source`](std::error::Error::source).
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A TTL of zero or one too long for the backend.
    #[error("invalid TTL {0:?}")]
    InvalidTtl(Duration),
}

impl CacheError {
    /// [`CacheError::Unavailable`] from whatever `backend` said.
    pub fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Whether trying again later may succeed: the backend was unavailable. Every other error
    /// is an answer about the request itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Results of this crate.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// Where cached bytes live. Namespaces group keys that are invalidated together; keys and
/// namespaces are arbitrary strings.
#[async_trait]
pub trait CacheStore: Send + Sync + Debug {
    /// The value under `key` and the namespace's current generation.
    async fn get(&self, namespace: &str, key: &str) -> Result<Lookup, CacheError>;

    /// Stores `value` under `key` for `ttl`, as of `generation` (from the [`Lookup`] that
    /// missed). A stale generation makes the write invisible.
    async fn put(
        &self,
        namespace: &str,
        generation: Generation,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError>;

    /// Makes every entry of `namespace` invisible at once, to every user of the same backend.
    /// Returns the new generation.
    async fn invalidate(&self, namespace: &str) -> Result<Generation, CacheError>;
}

fn check_ttl(ttl: Duration) -> Result<(), CacheError> {
    // A year is far beyond any sensible cache entry and keeps milliseconds inside i64.
    if ttl.is_zero() || ttl > Duration::from_secs(366 * 24 * 3600) {
        return Err(CacheError::InvalidTtl(ttl));
    }
    Ok(())
}
