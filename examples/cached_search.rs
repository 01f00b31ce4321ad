//! A slow search put behind `search-cache`, nothing else from SomSom: repeated searches are
//! answered from the cache, a burst of identical searches runs the query once, and a change to
//! the data invalidates every cached answer at once (on every node sharing the store). With
//! `REDIS_URL` set the cache lives in Redis, so several copies of this program share it.
//!
//! ```sh
//! cargo run -p somsom-examples --example cached_search
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p somsom-examples --example cached_search
//! ```

#![expect(clippy::print_stdout, reason = "what this example prints is its point")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use search_cache::redis::RedisCache;
use search_cache::{CacheAside, CacheStore, MemoryCache};

/// The "database": a list of names and a counter of the queries it ran.
#[derive(Default)]
struct Festivals {
    names: RwLock<Vec<String>>,
    queries: AtomicU32,
}

impl Festivals {
    async fn search(&self, keyword: &str) -> Result<Vec<String>, std::convert::Infallible> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await; // a full scan, say
        let keyword = keyword.to_lowercase();
        Ok(self
            .names
            .read()
            .expect("not poisoned")
            .iter()
            .filter(|n| n.to_lowercase().contains(&keyword))
            .cloned()
            .collect())
    }
}

const NAMESPACE: &str = "festival::search";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn CacheStore> = match std::env::var("REDIS_URL") {
        Ok(url) => {
            let redis = redis::Client::open(url)?.get_connection_manager().await?;
            Arc::new(RedisCache::new(redis, "cached-search-example:"))
        }
        // 16 MiB of answers at most, least recently used dropped first.
        Err(_) => Arc::new(MemoryCache::new(16 * 1024 * 1024)),
    };
    let cache = CacheAside::new(store).with_ttl(Duration::from_secs(60));
    // This run's "database" is new: answers an earlier run left in Redis are not about it.
    cache.invalidate(NAMESPACE).await?;
    let db = Arc::new(Festivals::default());
    db.names.write().expect("not poisoned").extend([
        "Seoul Jazz Festival".to_owned(),
        "Busan International Rock Festival".to_owned(),
    ]);

    let search = |keyword: &'static str| {
        let (cache, db) = (cache.clone(), db.clone());
        async move {
            cache
                .get_or_load(
                    NAMESPACE,
                    keyword,
                    || async move { db.search(keyword).await },
                )
                .await
        }
    };

    // A hundred people search for the same thing at once: one query.
    let burst = futures::future::join_all((0..100).map(|_| search("festival"))).await;
    println!(
        "100 concurrent searches: {} answers of {} festivals, {} database queries",
        burst.len(),
        burst[0].as_ref().map_or(0, Vec::len),
        db.queries.load(Ordering::Relaxed)
    );

    // Later searches are answered from the cache.
    for _ in 0..10 {
        search("festival").await?;
    }
    println!(
        "10 more searches: {} database queries in all",
        db.queries.load(Ordering::Relaxed)
    );

    // A festival is added: invalidate, and the next search sees it.
    db.names
        .write()
        .expect("not poisoned")
        .push("Jarasum Jazz Festival".to_owned());
    cache.invalidate(NAMESPACE).await?;
    let after = search("festival").await?;
    println!("after the change: {} festivals", after.len());

    let stats = cache.stats().snapshot();
    println!(
        "cache: {} hits, {} misses, {} coalesced",
        stats.hits, stats.misses, stats.coalesced
    );
    assert_eq!(after.len(), 3);
    Ok(())
}
