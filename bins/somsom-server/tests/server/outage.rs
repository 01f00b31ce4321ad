//! Redis and MariaDB going away under a running node, through a proxy the test controls. While
//! Redis is known to be down, requests that need it answer 503 without asking it (the proxy sees
//! nothing but the outage probe), the search answers from the database, `/readyz` says so, and
//! once Redis is back everything recovers by itself, with no cached answer outliving a change
//! made meanwhile. While MariaDB is known to be down, every route that needs it answers 503 at
//! once instead of waiting for a pool connection, and the node recovers by itself too.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use common::{eventually, festival_ids, start};

/// A TCP proxy (in front of Redis, MariaDB or Kafka) that can turn into a black hole: connections are accepted and
/// what clients send is recorded, but nothing is forwarded or answered (a partition, the worst
/// kind of outage: nothing fails, everything waits).
pub(crate) struct Proxy {
    /// `host:port` to connect to instead of the target.
    pub(crate) addr: String,
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
    /// In front of `target` (`host:port`).
    pub(crate) async fn start(target: &str) -> Self {
        let target = target.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
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
        Self { addr, state }
    }

    /// Drops every connection; new ones go into the black hole (`true`) or through.
    pub(crate) fn set_blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::SeqCst);
        for connection in self.state.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Everything sent into the black hole.
    pub(crate) fn swallowed(&self) -> Vec<u8> {
        self.state.swallowed.lock().unwrap().clone()
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

/// A component's status in `/readyz`.
async fn component(ctx: &common::Ctx, name: &str) -> String {
    let (_, ready) = ctx.get("/readyz", None).await;
    ready["components"][name]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_node_fails_fast_while_redis_is_down_and_recovers_by_itself() {
    let redis = test_support::require_service!(test_support::REDIS);
    let target = redis.trim_start_matches("redis://").trim_end_matches('/');
    let proxy = Proxy::start(target).await;
    let prefix = format!("{}:", test_support::unique_name("outage"));
    let ctx = start(|c| {
        c.redis_url = Some(format!("redis://{}", proxy.addr));
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
        component(&ctx, "redis").await == "DOWN"
    })
    .await;
    let (status, ready) = ctx.get("/readyz", None).await;
    assert_eq!(
        status, 200,
        "a shared service's outage leaves the node in the load balancer: {ready}"
    );
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
    eventually("Redis is up again", || async {
        component(&ctx, "redis").await == "UP"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fails_fast_while_mariadb_is_down_and_recovers_by_itself() {
    let mysql = test_support::require_service!(test_support::MYSQL);
    let db = test_support::mysql::TestDatabase::create(&mysql)
        .await
        .unwrap();
    let target = db
        .url()
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(&target).await;
    let ctx = start(|c| {
        c.database_url = db.url().replacen(&target, &proxy.addr, 1);
        // Without the gate, every request below would wait this long for a pool connection.
        c.database_acquire_timeout_secs = 600;
    })
    .await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let (status, body) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(
                json!({"title": "정전 축제", "startDate": "2099-08-01", "endDate": "2099-08-01",
                        "saleQueued": false}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let festival = body["id"].as_i64().unwrap();
    let base = ctx.server.url("");
    let up = r#"somsom_dependency_up{dependency="database"}"#;
    assert_eq!(common::metric(&base, up).await, 1);

    // Figures for docs/benchmarks.md, printed, never asserted.
    let cut = std::time::Instant::now();
    proxy.set_blackhole(true);
    eventually("the node notices that the database is gone", || async {
        component(&ctx, "database").await == "DOWN"
    })
    .await;
    let noticed = cut.elapsed();
    let (status, ready) = ctx.get("/readyz", None).await;
    assert_eq!(
        status, 200,
        "every node sees the same outage: none leaves the load balancer"
    );
    assert_eq!(ready["components"]["database"]["status"], "DOWN", "{ready}");
    assert_eq!(common::metric(&base, up).await, 0);
    assert_eq!(ctx.get("/healthz", None).await.0, 200, "alive");

    // Twenty requests at once, reads and a booking: each answers 503 with the API's body and
    // Retry-After instead of waiting (ten minutes here) for a connection.
    let down = std::time::Instant::now();
    let requests = (0..20).map(|i| {
        let (ctx, fan) = (&ctx, fan.clone());
        async move {
            let request = match i % 3 {
                0 => ctx.http.get(ctx.server.url("/festivals")),
                1 => ctx.http.get(ctx.server.url("/me")).bearer_auth(&fan),
                _ => ctx
                    .http
                    .post(ctx.server.url("/reservations"))
                    .bearer_auth(&fan)
                    .json(&json!({"festivalId": festival, "festivalDate": "2099-08-01", "quantity": 1})),
            };
            request.send().await.unwrap()
        }
    });
    let answers = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        futures::future::join_all(requests),
    )
    .await
    .expect("requests answer while the database is down instead of waiting for it");
    let per_request = down.elapsed() / 20;
    for response in answers {
        assert_eq!(response.status().as_u16(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
    }

    let back = std::time::Instant::now();
    proxy.set_blackhole(false);
    eventually("the festivals answer again", || async {
        ctx.get("/festivals", None).await.0 == 200
    })
    .await;
    eprintln!(
        "database outage: noticed {} ms after the cut, then 503 in {} µs per request \
         (20 at once, HTTP), back {} ms after the database returned",
        noticed.as_millis(),
        per_request.as_micros(),
        back.elapsed().as_millis()
    );
    let (status, body) = ctx.book(&fan, festival, "2099-08-01", 1, None).await;
    assert_eq!(status, 200, "booking works again: {body}");
    assert_eq!(common::metric(&base, up).await, 1);
    let outages = r#"somsom_dependency_outages_total{dependency="database"}"#;
    assert!(common::metric(&base, outages).await >= 1);
}

#[test]
fn commands_are_read_from_resp_arrays() {
    let sent = b"*1\r\n$4\r\nPING\r\n*3\r\n$7\r\nevalsha\r\n$2\r\nab\r\n$1\r\n0\r\n*2\r\n$3\r\nGET";
    assert_eq!(commands(sent), ["PING", "EVALSHA"]);
}
