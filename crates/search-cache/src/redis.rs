//! The Redis backend (feature `redis`): shared by every node on the same Redis.
//!
//! Each namespace has a generation counter, `{prefix}{ns}:gen`; values live under
//! `{prefix}{ns}:g{generation}:{key}` with a TTL. Invalidation is one `INCR`: every node's next
//! lookup reads the new generation and misses, with no `KEYS`/`SCAN` sweep; the old entries
//! expire on their own. A lookup is one round trip (a Lua script reads the counter and the value).
//! The namespace is a hash tag, so on a Redis Cluster all of a namespace's keys share a slot.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::{CacheError, CacheStore, Generation, Lookup, check_ttl};

const LOOKUP: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
local value = redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])
return {generation, value}
";

/// A cache in Redis.
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    lookup: Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> CacheError {
    CacheError::unavailable("redis", e)
}

impl RedisCache {
    /// A cache over `connection` whose keys all start with `prefix` (e.g. `myapp:cache:`).
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
            lookup: Script::new(LOOKUP),
        }
    }

    fn namespace_key(&self, namespace: &str) -> String {
        format!("{}{{{namespace}}}", self.prefix)
    }

    /// The key a value of `key` has in Redis under `generation`.
    pub fn value_key(&self, namespace: &str, generation: Generation, key: &str) -> String {
        format!("{}:g{}:{key}", self.namespace_key(namespace), generation.0)
    }
}

#[async_trait]
impl CacheStore for RedisCache {
    async fn get(&self, namespace: &str, key: &str) -> Result<Lookup, CacheError> {
        let ns = self.namespace_key(namespace);
        let (generation, value): (String, Option<Vec<u8>>) = self
            .lookup
            .key(format!("{ns}:gen"))
            .arg(format!("{ns}:g"))
            .arg(key)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        let generation = generation.parse().map_err(|_| {
            CacheError::unavailable(
                "redis",
                format!("generation counter of {namespace:?} is not a number"),
            )
        })?;
        Ok(Lookup {
            value: value.map(Bytes::from),
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
        let millis = u64::try_from(ttl.as_millis()).map_err(|_| CacheError::InvalidTtl(ttl))?;
        let _: () = self
            .connection
            .clone()
            .pset_ex(
                self.value_key(namespace, generation, key),
                value.as_ref(),
                millis,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn invalidate(&self, namespace: &str) -> Result<Generation, CacheError> {
        let generation: u64 = self
            .connection
            .clone()
            .incr(format!("{}:gen", self.namespace_key(namespace)), 1)
            .await
            .map_err(unavailable)?;
        Ok(Generation(generation))
    }
}
