//! Building the catalog and its search cache from configuration.

use std::sync::Arc;
use std::time::Duration;

use cognito_auth::Clock;
use festival_catalog::sql::SqlCatalog;
use search_cache::redis::RedisCache;
use search_cache::{CacheAside, CacheStore, MemoryCache};

use super::Festivals;
use crate::application::{BuildError, engine_failed};
use crate::config::Config;
use crate::db::Database;
use crate::metrics::Metrics;

/// The catalog over the server's database, and the search cache (Redis when configured).
pub(crate) async fn build(
    config: &Config,
    db: &Database,
    redis: Option<&crate::backends::SharedRedis>,
    clock: Arc<dyn Clock>,
    metrics: &mut Metrics,
) -> Result<Festivals, BuildError> {
    let catalog = SqlCatalog::new(db.catalog_pool()).with_clock(clock.clone());
    catalog
        .migrate()
        .await
        .map_err(engine_failed("festival catalog"))?;
    let store: Arc<dyn CacheStore> = match redis {
        Some(redis) => Arc::new(crate::outage::guarded::GuardedCache::new(
            Arc::new(RedisCache::new(
                redis.connection.clone(),
                format!("{}cache:", config.redis_key_prefix),
            )),
            redis.dependency.clone(),
        )),
        None => Arc::new(MemoryCache::new(64 * 1024 * 1024).with_clock(clock.clone())),
    };
    // A TTL of 0 turns the cache off (to measure the database alone).
    let search_cache = (config.search_cache_ttl_secs > 0).then(|| {
        let cache =
            CacheAside::new(store).with_ttl(Duration::from_secs(config.search_cache_ttl_secs));
        metrics.register_cache("festival_search", cache.stats());
        cache
    });
    Ok(Festivals {
        catalog: Arc::new(catalog),
        search_cache,
        clock,
    })
}
