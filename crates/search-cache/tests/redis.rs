//! The Redis backend against a real Redis (`TEST_REDIS_URL`).
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;
use search_cache::CacheStore;
use search_cache::conformance::{Harness, run_all};
use search_cache::redis::RedisCache;
use test_support::{REDIS, require_service, unique_name};

async fn connect(url: &str) -> redis::aio::ConnectionManager {
    let client = redis::Client::open(url).expect("redis url");
    redis::aio::ConnectionManager::new(client)
        .await
        .expect("connect to redis")
}

#[tokio::test]
async fn redis_cache_passes_the_conformance_suite_with_two_nodes() {
    let url = require_service!(REDIS);
    let prefix = format!("{}:", unique_name("cache"));
    // Two separate connections, as two server nodes would have.
    let first = RedisCache::new(connect(&url).await, prefix.clone());
    let second = RedisCache::new(connect(&url).await, prefix);
    run_all(Harness {
        store: Arc::new(first),
        second: Some(Arc::new(second)),
        clock: None,
    })
    .await;
}

#[tokio::test]
async fn redis_entries_carry_the_ttl_and_invalidation_is_one_counter() {
    let url = require_service!(REDIS);
    let prefix = format!("{}:", unique_name("cache"));
    let cache = RedisCache::new(connect(&url).await, prefix.clone());
    let mut raw = connect(&url).await;

    let generation = cache.get("festival::search", "k").await.unwrap().generation;
    cache
        .put(
            "festival::search",
            generation,
            "k",
            Bytes::from_static(b"v"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let key = cache.value_key("festival::search", generation, "k");
    let ttl: i64 = raw.pttl(&key).await.unwrap();
    assert!(ttl > 0 && ttl <= 30_000, "PTTL {ttl}");

    cache.invalidate("festival::search").await.unwrap();
    // Nothing was deleted: the old entry is unreachable and ages out on its own.
    let exists: bool = raw.exists(&key).await.unwrap();
    assert!(exists);
    assert_eq!(
        cache.get("festival::search", "k").await.unwrap().value,
        None
    );
    let keys: Vec<String> = raw.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let _: () = raw.del(keys).await.unwrap();
}
