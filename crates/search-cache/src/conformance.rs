//! The checks every [`CacheStore`] backend passes, and the cache-aside behaviour over it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use engine_clock::ManualClock;

use crate::{CacheAside, CacheStore, DEFAULT_TTL};

/// A backend under test.
pub struct Harness {
    /// The store.
    pub store: Arc<dyn CacheStore>,
    /// A second, separately connected handle on the same backend (another node), if the backend
    /// is shared between processes.
    pub second: Option<Arc<dyn CacheStore>>,
    /// The clock the store reads, when expiry can be driven by a test clock.
    pub clock: Option<ManualClock>,
}

/// Runs every check. Each uses its own namespaces, so backends may be shared between tests.
pub async fn run_all(h: Harness) {
    miss_then_hit(&*h.store).await;
    invalidation_hides_a_whole_namespace_only(&*h.store).await;
    a_write_computed_before_an_invalidation_stays_invisible(&*h.store).await;
    keys_are_arbitrary_strings(&*h.store).await;
    zero_ttl_is_refused(&*h.store).await;
    if let Some(second) = &h.second {
        another_node_sees_values_and_invalidations(&*h.store, &**second).await;
    }
    if let Some(clock) = &h.clock {
        entries_expire_by_the_clock(&*h.store, clock).await;
    }
    aside_caches_and_counts(h.store.clone()).await;
    aside_runs_concurrent_misses_once(h.store.clone()).await;
    aside_does_not_cache_errors(h.store.clone()).await;
    aside_never_stores_a_value_computed_across_an_invalidation(h.store.clone()).await;
}

fn ns(name: &str) -> String {
    // Unique per run, so suites against a shared Redis do not meet.
    format!("{name}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

async fn put_now(store: &dyn CacheStore, namespace: &str, key: &str, value: &'static str) {
    let generation = store.get(namespace, key).await.unwrap().generation;
    store
        .put(
            namespace,
            generation,
            key,
            Bytes::from_static(value.as_bytes()),
            DEFAULT_TTL,
        )
        .await
        .unwrap();
}

async fn value(store: &dyn CacheStore, namespace: &str, key: &str) -> Option<Bytes> {
    store.get(namespace, key).await.unwrap().value
}

/// A key reads as missing until it is put, then as its value.
pub async fn miss_then_hit(store: &dyn CacheStore) {
    let n = ns("miss");
    assert_eq!(value(store, &n, "a").await, None);
    put_now(store, &n, "a", "1").await;
    assert_eq!(value(store, &n, "a").await.as_deref(), Some(&b"1"[..]));
    put_now(store, &n, "a", "2").await;
    assert_eq!(value(store, &n, "a").await.as_deref(), Some(&b"2"[..]));
    assert_eq!(value(store, &n, "b").await, None);
}

/// Invalidating a namespace hides all its keys and no other namespace's.
pub async fn invalidation_hides_a_whole_namespace_only(store: &dyn CacheStore) {
    let (a, b) = (ns("inv-a"), ns("inv-b"));
    for key in ["x", "y", "z"] {
        put_now(store, &a, key, "va").await;
        put_now(store, &b, key, "vb").await;
    }
    let before = store.get(&a, "x").await.unwrap().generation;
    let after = store.invalidate(&a).await.unwrap();
    assert!(after > before, "{after:?} after {before:?}");
    for key in ["x", "y", "z"] {
        assert_eq!(value(store, &a, key).await, None, "{key} survived");
        assert_eq!(value(store, &b, key).await.as_deref(), Some(&b"vb"[..]));
    }
    // The namespace works as before after an invalidation.
    put_now(store, &a, "x", "new").await;
    assert_eq!(value(store, &a, "x").await.as_deref(), Some(&b"new"[..]));
}

/// A value looked up before an invalidation and stored after it is never read.
pub async fn a_write_computed_before_an_invalidation_stays_invisible(store: &dyn CacheStore) {
    let n = ns("race");
    let stale = store.get(&n, "k").await.unwrap().generation;
    store.invalidate(&n).await.unwrap();
    store
        .put(&n, stale, "k", Bytes::from_static(b"stale"), DEFAULT_TTL)
        .await
        .unwrap();
    assert_eq!(value(store, &n, "k").await, None);
}

/// Separators, Unicode and empty keys are keys like any other.
pub async fn keys_are_arbitrary_strings(store: &dyn CacheStore) {
    let n = ns("festival::search");
    let keys = ["축제::0::10", "a:b:c", "", "%_*?[]{}", "서울 불꽃"];
    for (i, key) in keys.iter().enumerate() {
        let generation = store.get(&n, key).await.unwrap().generation;
        store
            .put(&n, generation, key, Bytes::from(i.to_string()), DEFAULT_TTL)
            .await
            .unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            value(store, &n, key).await,
            Some(Bytes::from(i.to_string())),
            "{key:?}"
        );
    }
}

/// A zero TTL is an error, not an entry that never expires.
pub async fn zero_ttl_is_refused(store: &dyn CacheStore) {
    let n = ns("ttl0");
    let generation = store.get(&n, "k").await.unwrap().generation;
    let result = store
        .put(
            &n,
            generation,
            "k",
            Bytes::from_static(b"v"),
            Duration::ZERO,
        )
        .await;
    assert!(
        matches!(result, Err(crate::CacheError::InvalidTtl(_))),
        "{result:?}"
    );
}

/// Two handles on one backend (two nodes) see each other's values and invalidations at once.
pub async fn another_node_sees_values_and_invalidations(
    first: &dyn CacheStore,
    second: &dyn CacheStore,
) {
    let n = ns("nodes");
    put_now(first, &n, "k", "from-first").await;
    assert_eq!(
        value(second, &n, "k").await.as_deref(),
        Some(&b"from-first"[..])
    );
    second.invalidate(&n).await.unwrap();
    assert_eq!(value(first, &n, "k").await, None);
    assert_eq!(
        first.get(&n, "k").await.unwrap().generation,
        second.get(&n, "k").await.unwrap().generation
    );
}

/// An entry is there until its TTL has passed on the store's clock, then gone.
pub async fn entries_expire_by_the_clock(store: &dyn CacheStore, clock: &ManualClock) {
    let n = ns("expiry");
    let generation = store.get(&n, "k").await.unwrap().generation;
    store
        .put(
            &n,
            generation,
            "k",
            Bytes::from_static(b"v"),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    clock.advance(chrono::Duration::seconds(599));
    assert!(value(store, &n, "k").await.is_some());
    clock.advance(chrono::Duration::seconds(2));
    assert_eq!(value(store, &n, "k").await, None);
}

/// The first read loads and counts a miss; the second is a hit with the same value.
pub async fn aside_caches_and_counts(store: Arc<dyn CacheStore>) {
    let cache = CacheAside::new(store);
    let n = ns("aside");
    let loads = AtomicUsize::new(0);
    for _ in 0..3 {
        let got: Vec<String> = cache
            .get_or_load(&n, "k", || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(vec!["불꽃".to_owned(), "축제".to_owned()])
            })
            .await
            .unwrap();
        assert_eq!(got, ["불꽃", "축제"]);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stats = cache.stats().snapshot();
    assert_eq!((stats.misses, stats.hits, stats.errors), (1, 2, 0));

    cache.invalidate(&n).await.unwrap();
    let _: Vec<String> = cache
        .get_or_load(&n, "k", || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(vec![])
        })
        .await
        .unwrap();
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "invalidation must force a reload"
    );
}

/// Many concurrent misses for one key run the read function once and all get its answer.
pub async fn aside_runs_concurrent_misses_once(store: Arc<dyn CacheStore>) {
    const CALLERS: usize = 64;
    let cache = CacheAside::new(store);
    let n = ns("flight");
    let loads = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (cache, n, loads, arrived) = (cache.clone(), n.clone(), loads.clone(), arrived.clone());
        tasks.spawn(async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            cache
                .get_or_load(&n, "k", || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Hold the load open until every caller has started, so that without single
                    // flight each of them would miss and load too.
                    while arrived.load(Ordering::SeqCst) < CALLERS {
                        tokio::task::yield_now().await;
                    }
                    for _ in 0..10 {
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, std::convert::Infallible>(42u32)
                })
                .await
                .unwrap()
        });
    }
    while let Some(got) = tasks.join_next().await {
        assert_eq!(got.unwrap(), 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stats = cache.stats().snapshot();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits + stats.coalesced, CALLERS as u64 - 1);
}

/// A failed read is returned to its caller and not cached; the next read loads again.
pub async fn aside_does_not_cache_errors(store: Arc<dyn CacheStore>) {
    let cache = CacheAside::new(store);
    let n = ns("errors");
    let first: Result<u32, &str> = cache
        .get_or_load(&n, "k", || async { Err("db down") })
        .await;
    assert_eq!(first, Err("db down"));
    let second: Result<u32, &str> = cache.get_or_load(&n, "k", || async { Ok(7) }).await;
    assert_eq!(second, Ok(7));
    let third: Result<u32, &str> = cache.get_or_load(&n, "k", || async { Ok(8) }).await;
    assert_eq!(third, Ok(7), "the successful value is cached");
}

/// A value whose computation overlaps an invalidation is returned to its caller but never
/// served to the next one.
pub async fn aside_never_stores_a_value_computed_across_an_invalidation(
    store: Arc<dyn CacheStore>,
) {
    let cache = CacheAside::new(store);
    let n = ns("across");
    let stale: u32 = cache
        .get_or_load(&n, "k", || async {
            // A festival is created while the search runs.
            cache.invalidate(&n).await.unwrap();
            Ok::<_, std::convert::Infallible>(1)
        })
        .await
        .unwrap();
    assert_eq!(stale, 1);
    let fresh: u32 = cache
        .get_or_load(&n, "k", || async { Ok::<_, std::convert::Infallible>(2) })
        .await
        .unwrap();
    assert_eq!(fresh, 2);
}
