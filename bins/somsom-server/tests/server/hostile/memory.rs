//! Memory an anonymous caller can make the server spend: attempt-limit keys, metric series,
//! password hashes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use serde_json::json;

use super::memory_kib;
use crate::common::{ServerProcess, start};

/// A syntactically valid address of about 200 characters, different for every `i`.
fn long_email(i: usize) -> String {
    format!("{}{i}@example.com", "x".repeat(180))
}

/// The `i`-th of many client addresses (behind a trusted proxy, as a botnet would look).
fn address(i: usize) -> String {
    format!("198.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// Sends `n` requests numbered from `from`, `concurrency` at a time, each to one of the three
/// account routes an anonymous caller reaches, with its own e-mail and address. Returns how
/// many were answered 5xx other than 503.
async fn strangers(base: &str, from: usize, n: usize, concurrency: usize) -> usize {
    let http = reqwest::Client::new();
    let broken = Arc::new(AtomicUsize::new(0));
    futures::stream::iter(from..from + n)
        .for_each_concurrent(concurrency, |i| {
            let (http, broken) = (http.clone(), broken.clone());
            let email = long_email(i);
            let (path, body) = match i % 3 {
                0 => (
                    "/login",
                    json!({"email": email, "password": "Wrong-pass1!"}),
                ),
                1 => ("/confirm-signup", json!({"email": email, "code": "123456"})),
                _ => ("/resend-confirmation-code", json!({"email": email})),
            };
            let url = format!("{base}{path}");
            async move {
                let res = http
                    .post(url)
                    .header("x-forwarded-for", address(i))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                if status >= 500 && status != 503 {
                    broken.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    broken.load(Ordering::Relaxed)
}

/// 300 logins with 256 KB e-mails from one address, then 100,000 distinct e-mails from 100,000
/// addresses to `/login`, `/confirm-signup` and `/resend-confirmation-code`: the server's
/// resident memory afterwards is within a few MiB of before (e-mails are checked before any
/// limit sees them; the limits' tables are fixed in size and keyed by hashes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_strangers_leave_the_server_no_bigger() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(
        dir.path(),
        &[
            ("SOMSOM_HTTP__TRUSTED_PROXIES", "127.0.0.1"),
            // Logins that would wait for a password hash are turned away at once (the hashing
            // thread's 19 MiB workspace is made during the warm-up).
            ("SOMSOM_AUTH__PASSWORD_HASHES_AT_ONCE", "1"),
            ("SOMSOM_AUTH__PASSWORD_HASHES_WAITING", "0"),
            ("SOMSOM_LOG__FILTER", "info,tower_http=warn"),
        ],
    );
    let base = format!("http://{}", server.addr);
    // Warm up: connection buffers, the database's caches, the allocator's arenas.
    assert_eq!(strangers(&base, 0, 10_000, 32).await, 0);
    let (before, _) = memory_kib(server.child.id());
    // The reproduction: 256 KB e-mails from one address are refused before any limit
    // remembers them.
    let http = reqwest::Client::new();
    for i in 0..300 {
        let huge = format!("{}{i}@example.com", "y".repeat(256 * 1024));
        let res = http
            .post(format!("{base}/login"))
            .json(&json!({"email": huge, "password": "Wrong-pass1!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    assert_eq!(strangers(&base, 10_000, 100_000, 32).await, 0);
    let (after, _) = memory_kib(server.child.id());
    let grown = after.saturating_sub(before);
    eprintln!("resident memory: {before} KiB before, {after} KiB after 100,300 strangers");
    assert!(
        grown < 8 * 1024,
        "the server grew by {grown} KiB ({before} → {after})"
    );
}

/// Invented methods and paths never become new metric series.
#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let ctx = start(|_| {}).await;
    let send = |method: &str, path: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        ctx.http.request(method, ctx.server.url(path)).send()
    };
    // One of each kind first, so that "other" and "unmatched" exist.
    send("FROB", "/healthz").await.unwrap();
    send("FROB", "/no/such/route").await.unwrap();
    send("GET", "/no/such/route").await.unwrap();
    let series = ctx.state.metrics.series();
    for i in 0..10_000 {
        let path = if i % 2 == 0 {
            "/healthz".to_owned()
        } else {
            format!("/x/{i}")
        };
        send(&format!("M{i}"), &path).await.unwrap();
    }
    assert_eq!(ctx.state.metrics.series(), series, "no series were added");
    let text = ctx.state.metrics.encode().unwrap();
    assert!(!text.contains("M9999"), "an invented method became a label");
    assert!(text.contains("method=\"other\""));
    ctx.server.shutdown().await;
}

/// 500 sign-ups at once: from one address most are refused (429), and from 500 addresses the
/// password hashes run a few at a time (the rest are told to come back, 503), so the server's
/// peak memory stays far below 500 × 19 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sign_ups_at_once_are_limited_and_hashed_a_few_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(
        dir.path(),
        &[
            ("SOMSOM_HTTP__TRUSTED_PROXIES", "127.0.0.1"),
            ("SOMSOM_AUTH__PASSWORD_HASHES_AT_ONCE", "2"),
            ("SOMSOM_AUTH__PASSWORD_HASHES_WAITING", "8"),
        ],
    );
    let base = format!("http://{}", server.addr);
    let (_, peak_before) = memory_kib(server.child.id());
    let sign_ups = |forwarded: bool| {
        let http = reqwest::Client::new();
        let base = base.clone();
        async move {
            let mut all = tokio::task::JoinSet::new();
            for i in 0..500 {
                let mut request = http.post(format!("{base}/signup")).json(&json!({
                    "email": format!("crowd{i}-{forwarded}@example.com"),
                    "password": super::PASSWORD,
                    "name": "crowd",
                }));
                if forwarded {
                    request = request.header("x-forwarded-for", address(i));
                }
                all.spawn(async move { request.send().await.unwrap().status().as_u16() });
            }
            let statuses = all.join_all().await;
            let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
            (count(200), count(429), count(503), statuses.len())
        }
    };
    let (ok, limited, busy, _) = sign_ups(false).await;
    assert_eq!(limited, 480, "twenty sign-ups an hour from one address");
    assert_eq!(ok + busy, 20);
    let (ok, limited, busy, all) = sign_ups(true).await;
    assert_eq!(
        ok + busy,
        all,
        "{ok} made, {limited} limited, {busy} told to wait"
    );
    assert!(busy > 0 && ok > 0, "{ok} made, {busy} told to wait");
    let (_, peak_after) = memory_kib(server.child.id());
    let grown = peak_after.saturating_sub(peak_before);
    eprintln!("peak memory: {peak_before} KiB before, {peak_after} KiB after; {ok} of 500 hashed");
    assert!(
        grown < 256 * 1024,
        "peak memory grew by {grown} KiB: hashes were not rationed"
    );
}
