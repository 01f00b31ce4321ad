//! Durability of reminders across a crash: 10,000 reminders are planned, the server process
//! sending them through FCM is killed (SIGKILL) mid-delivery, another process starts on the same
//! database, and a local FCM stand-in counts what it received: every reminder reached its device,
//! and the only repeats are sends the dead process had made but not yet recorded — each with the
//! same collapse key, which FCM turns into a replacement, not a second notification.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use futures::StreamExt;
use push_notify::sql::SqlPush;
use reqwest::Method;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

use common::{ServerProcess, start};

const USERS: usize = 50;
const FESTIVALS: usize = 200;
const CONCURRENCY: usize = 16;

#[derive(Default)]
struct Sink {
    /// (device token, collapse key) → requests.
    received: HashMap<(String, String), u32>,
    total: u64,
}

/// The stand-in's record, and its running total for the test to wait on.
#[derive(Clone)]
struct Shared {
    sink: Arc<Mutex<Sink>>,
    sent: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            sink: Arc::default(),
            sent: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.sink.lock().unwrap()
    }
}

async fn send(State(sink): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    // A provider that takes a few milliseconds per message.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let token = body["message"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let collapse = body["message"]["android"]["collapse_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut record = sink.lock();
    *record.received.entry((token, collapse)).or_default() += 1;
    record.total += 1;
    sink.sent.send_replace(record.total);
    Json(json!({"name": format!("projects/crash/messages/{}", record.total)}))
}

async fn token() -> Json<Value> {
    Json(json!({"access_token": "stand-in", "expires_in": 3600}))
}

async fn counts(db: &str) -> HashMap<String, i64> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(db)
        .await
        .unwrap();
    let push = SqlPush::new(push_notify::sql::SqlPool::Sqlite(pool.clone()));
    let counts = push.counts().await.unwrap().into_iter().collect();
    pool.close().await;
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_survive_a_killed_server_and_reach_each_device_once() {
    // The FCM stand-in.
    let sink = Shared::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/v1/projects/crash/messages:send", post(send))
        .with_state(sink.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let account = dir.path().join("service-account.json");
    std::fs::write(
        &account,
        json!({"project_id": "crash", "client_email": "push@crash.iam.gserviceaccount.com",
               "private_key": key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
               "token_uri": format!("{base}/token")})
        .to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let db = format!("sqlite://{}/data/somsom.db", dir.path().display());

    // Accounts, devices, festivals and 10,000 bookings through an in-process node that plans
    // but does not send. Reminders fire at 00:00 KST on the eve, so tomorrow's are due now.
    let setup = start(|c| {
        c.database_url = db.clone();
        c.push.run_dispatcher = false;
        c.push.remind_at = "00:00".into();
        c.auth.attempts_per_address_per_minute = 100_000;
        c.auth.signups_per_address_per_hour = 100_000;
    })
    .await;
    let admin = setup.admin_token("admin@example.com").await;
    let tomorrow =
        (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive() + chrono::Days::new(1);
    let date = tomorrow.to_string();
    let mut festivals = Vec::new();
    for n in 0..FESTIVALS {
        let (status, created) = setup
            .send(Method::POST, "/festivals/create", Some(&admin),
                Some(json!({"title": format!("축제 {n}"), "startDate": date, "endDate": date, "ticketsPerDay": 100, "saleQueued": false})))
            .await;
        assert_eq!(status, 201, "{created}");
        festivals.push(created["id"].as_i64().unwrap());
    }
    let mut users = Vec::new();
    for u in 0..USERS {
        let token = setup.user_token(&format!("fan{u}@example.com")).await;
        let (status, _) = setup
            .send(
                Method::POST,
                "/notification/activate",
                Some(&token),
                Some(json!({"token": format!("device-{u}"), "deviceType": "MOBILE"})),
            )
            .await;
        assert_eq!(status, 200);
        users.push(token);
    }
    let bookings: Vec<(String, i64)> = users
        .iter()
        .flat_map(|t| festivals.iter().map(move |f| (t.clone(), *f)))
        .collect();
    let setup = Arc::new(setup);
    futures::stream::iter(bookings)
        .for_each_concurrent(32, |(token, festival)| {
            let setup = setup.clone();
            let date = date.clone();
            async move {
                let (status, body) = setup
                    .send(
                        Method::POST,
                        "/reservations",
                        Some(&token),
                        Some(json!({"festivalId": festival, "festivalDate": date})),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        })
        .await;
    let total = USERS * FESTIVALS;
    common::eventually("all planned", || async {
        counts(&db).await.get("pending").copied() == Some(total as i64)
    })
    .await;
    assert_eq!(
        counts(&db).await.get("pending").copied(),
        Some(total as i64),
        "all planned"
    );
    let Ok(setup) = Arc::try_unwrap(setup) else {
        panic!("setup still shared")
    };
    setup.server.shutdown().await;

    let concurrency = CONCURRENCY.to_string();
    let endpoint = account.display().to_string();
    let envs = [
        ("SOMSOM_DATABASE_URL", db.as_str()),
        ("SOMSOM_PUSH__FCM_SERVICE_ACCOUNT_FILE", endpoint.as_str()),
        ("SOMSOM_PUSH__FCM_ENDPOINT", base.as_str()),
        ("SOMSOM_PUSH__REMIND_AT", "00:00"),
        ("SOMSOM_PUSH__LEASE_SECS", "2"),
        ("SOMSOM_PUSH__BATCH", "100"),
        ("SOMSOM_PUSH__CONCURRENCY", concurrency.as_str()),
    ];
    let mut first = ServerProcess::spawn(dir.path(), &envs);
    let mut sent = sink.sent.subscribe();
    tokio::time::timeout(
        Duration::from_secs(120),
        sent.wait_for(|n| *n >= (total / 3) as u64),
    )
    .await
    .expect("a third sent within two minutes")
    .unwrap();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let at_kill = sink.lock().total;
    assert!(
        at_kill > 0 && at_kill < total as u64,
        "killed mid-delivery ({at_kill} of {total} sent)"
    );

    let second = ServerProcess::spawn(dir.path(), &envs);
    common::eventually("all delivered", || async {
        counts(&db).await.get("delivered").copied() == Some(total as i64)
    })
    .await;
    assert_eq!(
        counts(&db).await,
        HashMap::from([("delivered".to_owned(), total as i64)])
    );
    let sink = std::mem::take(&mut *sink.lock());
    let repeats: u32 = sink.received.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {total} reminders, {at_kill} sent before the kill, {} requests in all, {repeats} repeated",
        sink.total
    );
    assert_eq!(
        sink.received.len(),
        total,
        "every reminder reached its device"
    );
    for u in 0..USERS {
        let device = format!("device-{u}");
        assert_eq!(
            sink.received.keys().filter(|(d, _)| *d == device).count(),
            FESTIVALS
        );
    }
    // Only sends in flight when the process died can repeat: at most the concurrency, plus the
    // finished ones whose record was being written.
    assert!(repeats as usize <= 2 * CONCURRENCY, "{repeats} repeats");
    assert!(second.terminate().await.success());
}
