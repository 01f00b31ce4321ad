//! Redis going away under a running node, through a proxy the test controls: while Redis is known
//! to be down, requests that need it answer 503 without asking it (the proxy sees nothing but the
//! outage probe), the search answers from the database, `/readyz` says so, and once Redis is back
//! everything recovers by itself, with no cached answer outliving a change made meanwhile.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use common::{eventually, festival_ids, start};

/// A TCP proxy in front of Redis that can turn into a black hole: connections are accepted and
/// what clients send is recorded, but nothing is forwarded or answered (a partition, the worst
/// kind of outage: nothing fails, everything waits).
struct Proxy {
    url: String,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    blackhole: AtomicBool,
    /// What clients sent while the proxy was a black hole.
    swallowed: std::sync::Mutex<Vec<u8>>,
    connections: std::sync::Mutex<Vec<AbortHandle>>,
}

impl Proxy {
    async fn start(target: &str) -> Self {
        let target = target
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProxyState::default());
        let accepting = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = accepting.clone();
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if state.blackhole.load(Ordering::SeqCst) {
                        swallow(client, &state).await;
                    } else if let Ok(server) = TcpStream::connect(&target).await {
                        pipe(client, server).await;
                    }
                });
                accepting
                    .connections
                    .lock()
                    .unwrap()
                    .push(task.abort_handle());
            }
        });
        Self { url, state }
    }

    /// Drops every connection; new ones go into the black hole (`true`) or through.
    fn set_blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::SeqCst);
        for connection in self.state.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// The names of the commands sent into the black hole.
    fn swallowed_commands(&self) -> Vec<String> {
        commands(&self.state.swallowed.lock().unwrap())
    }
}

async fn swallow(mut client: TcpStream, state: &ProxyState) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = client.read(&mut buf).await {
        if n == 0 {
            return;
        }
        state.swallowed.lock().unwrap().extend_from_slice(&buf[..n]);
    }
}

async fn pipe(mut client: TcpStream, mut server: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    let _ = client.shutdown().await;
}

/// The command names in a stream of RESP arrays of bulk strings (what a Redis client sends).
fn commands(mut bytes: &[u8]) -> Vec<String> {
    fn line(bytes: &mut &[u8]) -> Option<String> {
        let end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
        *bytes = &bytes[end + 2..];
        Some(text)
    }
    let mut names = Vec::new();
    while let Some(header) = line(&mut bytes) {
        let count: usize = header.trim_start_matches('*').parse().unwrap_or(0);
        for i in 0..count {
            let Some(size) = line(&mut bytes) else {
                return names;
            };
            let size: usize = size.trim_start_matches('$').parse().unwrap_or(0);
            if bytes.len() < size + 2 {
                return names;
            }
            if i == 0 {
                names.push(String::from_utf8_lossy(&bytes[..size]).to_uppercase());
            }
            bytes = &bytes[size + 2..];
        }
    }
    names
}

#[tokio::test]
async fn a_node_fails_fast_while_redis_is_down_and_recovers_by_itself() {
    let redis = test_support::require_service!(test_support::REDIS);
    let proxy = Proxy::start(&redis).await;
    let prefix = format!("{}:", test_support::unique_name("outage"));
    let ctx = start(|c| {
        c.redis_url = Some(proxy.url.clone());
        c.redis_key_prefix = prefix.clone();
    })
    .await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let create = |title: &'static str| {
        let (ctx, admin) = (&ctx, admin.clone());
        async move {
            let (status, body) = ctx
                .send(
                    Method::POST,
                    "/festivals/create",
                    Some(&admin),
                    Some(json!({"title": title, "description": "바다",
                                "startDate": "2099-08-01", "endDate": "2099-08-02"})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_i64().unwrap()
        }
    };
    let search = || async {
        let (status, body) = ctx
            .get("/festivals/search?keyword=%EB%B0%94%EB%8B%A4", None) // 바다
            .await;
        assert_eq!(status, 200, "{body}");
        festival_ids(&body)
    };
    let first = create("부산 바다축제").await;
    // The answer is cached in Redis now.
    assert_eq!(search().await, [first]);
    assert_eq!(search().await, [first]);
    let (status, _, _) = ctx.join(&fan, first, "fan@example.com").await;
    assert_eq!(status, 200);

    // Figures for docs/benchmarks.md, printed, never asserted.
    let cut = std::time::Instant::now();
    proxy.set_blackhole(true);
    eventually("a waiting-room request fails", || async {
        ctx.join(&fan, first, "fan@example.com").await.0 == 503
    })
    .await;
    let first_failure = cut.elapsed();
    eventually("the node notices that Redis is gone", || async {
        ctx.get("/readyz", None).await.0 == 503
    })
    .await;
    let (_, ready) = ctx.get("/readyz", None).await;
    assert_eq!(ready["components"]["database"]["status"], "UP", "{ready}");
    assert_eq!(ready["components"]["redis"]["status"], "DOWN", "{ready}");
    let base = ctx.server.url("");
    let up = r#"somsom_dependency_up{dependency="redis"}"#;
    assert_eq!(common::metric(&base, up).await, 0);
    let before = proxy.swallowed_commands();

    // While it is down: the waiting room answers 503 with the API's body and Retry-After; the
    // search and a festival change do without the cache.
    let down = std::time::Instant::now();
    for _ in 0..20 {
        let response = ctx
            .http
            .get(ctx.server.url(&format!(
                "/queues/festival{first}/waiting-room/users/fan@example.com"
            )))
            .bearer_auth(&fan)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
    }
    let per_request = down.elapsed() / 20;
    let second = create("강릉 바다 불꽃").await;
    let mut found = search().await;
    found.sort_unstable();
    assert_eq!(found, [first, second], "answered from the database");
    let asked: Vec<String> = proxy.swallowed_commands()[before.len()..]
        .iter()
        .filter(|name| !matches!(name.as_str(), "PING" | "CLIENT" | "HELLO" | "SELECT"))
        .cloned()
        .collect();
    assert!(
        asked.is_empty(),
        "requests asked Redis while it was known to be down: {asked:?}"
    );

    let back = std::time::Instant::now();
    proxy.set_blackhole(false);
    eventually("the waiting room works again", || async {
        ctx.join(&fan, first, "fan@example.com").await.0 == 200
    })
    .await;
    eprintln!(
        "redis outage: first failure {} ms after the cut, then 503 in {} µs per request \
         (HTTP round trip), back {} ms after Redis returned",
        first_failure.as_millis(),
        per_request.as_micros(),
        back.elapsed().as_millis()
    );
    // `/readyz` reuses a report for a second.
    eventually("ready again", || async {
        ctx.get("/readyz", None).await.0 == 200
    })
    .await;
    assert_eq!(common::metric(&base, up).await, 1);
    let outages = r#"somsom_dependency_outages_total{dependency="redis"}"#;
    assert!(common::metric(&base, outages).await >= 1);
    // The entry cached before the outage does not hide the festival created during it.
    let mut found = search().await;
    found.sort_unstable();
    assert_eq!(found, [first, second]);
}

#[test]
fn commands_are_read_from_resp_arrays() {
    let sent = b"*1\r\n$4\r\nPING\r\n*3\r\n$7\r\nevalsha\r\n$2\r\nab\r\n$1\r\n0\r\n*2\r\n$3\r\nGET";
    assert_eq!(commands(sent), ["PING", "EVALSHA"]);
}
