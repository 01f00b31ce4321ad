//! A shared service killed and restarted under load. The database server is a private
//! `mariadbd` of the test's own (Debian's MariaDB), so the test can SIGKILL it mid-booking and
//! start it again on the same files, as a crash and a restart in production would.
//!
//! Buyers book as fast as they can throughout. While the server is gone every booking answers
//! at once, 503 with `Retry-After` (no request hangs, nothing answers 500); once it is back
//! bookings succeed again by themselves; and reading the stock back shows that every booking
//! answered 200 is there, and that the day's stock matches the reservations exactly.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;
use test_support::{MYSQL, require_service};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use common::{eventually, start};

/// SIGKILLs the child, if any, and reaps it.
fn sigkill(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A MariaDB server of the test's own, on its own files and port.
struct PrivateMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateMariaDb {
    /// Creates the files and starts the server; `None` if MariaDB's programs are not here.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let installed = std::process::Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg("--auth-root-authentication-method=normal")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("mariadb-install-db runs (Debian's mariadb-server)");
        assert!(installed.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            dir,
            port,
            child: None,
        };
        server.run().await;
        server
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts `mariadbd` on the files and waits until it answers.
    async fn run(&mut self) {
        let child = std::process::Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg("--max-connections=500")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
        let url = self.url();
        eventually("the private MariaDB answers", || async {
            use sqlx::Connection;
            sqlx::MySqlConnection::connect(&url).await.is_ok()
        })
        .await;
    }

    /// SIGKILL: no clean shutdown, as in a crash.
    fn kill(&mut self) {
        sigkill(&mut self.child);
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the buyers saw.
#[derive(Default)]
struct Outcomes {
    /// Reservation ids answered 200.
    booked: Vec<i64>,
    /// Answers by status and code.
    answers: HashMap<String, usize>,
}

/// Books one ticket after another until `stop`, recording every answer.
async fn buyer(
    url: String,
    token: String,
    festival: i64,
    outcomes: Arc<Mutex<Outcomes>>,
    booked: watch::Sender<usize>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    while !stop.is_cancelled() {
        let response = http
            .post(format!("{url}/reservations"))
            .bearer_auth(&token)
            .json(&json!({"festivalId": festival, "festivalDate": "2099-07-01", "quantity": 1}))
            .send()
            .await
            .expect("an answer, not a hang");
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let key = format!("{status} {}", body["code"].as_str().unwrap_or(""));
        {
            let mut outcomes = outcomes.lock().unwrap();
            *outcomes.answers.entry(key).or_default() += 1;
            match status {
                200 => outcomes
                    .booked
                    .push(body["reservationId"].as_i64().unwrap()),
                503 => assert!(retry_after, "503 with Retry-After: {body}"),
                _ => panic!("unexpected answer {status}: {body}"),
            }
        }
        if status == 200 {
            booked.send_modify(|n| *n += 1);
        } else {
            // A client backing off as told, briefly.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_killed_and_restarted_under_bookings_loses_no_booking() {
    // The machine's MariaDB must be there: this test runs Debian's MariaDB programs beside it.
    let _ = require_service!(MYSQL);
    let mut mariadb = PrivateMariaDb::start().await;
    {
        use sqlx::Connection;
        let mut connection = sqlx::MySqlConnection::connect(&mariadb.url())
            .await
            .unwrap();
        sqlx::query("CREATE DATABASE somsom")
            .execute(&mut connection)
            .await
            .unwrap();
    }
    let database_url = format!("{}/somsom", mariadb.url());
    let ctx = start(|c| {
        c.database_url = database_url.clone();
        c.auth.signups_per_address_per_hour = 1_000;
        c.auth.attempts_per_address_per_minute = 1_000;
    })
    .await;
    let admin = ctx.admin_token("admin@example.com").await;
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(
                json!({"title": "재시작 축제", "description": "부하", "startDate": "2099-07-01",
                "endDate": "2099-07-01", "ticketsPerDay": 100_000, "maxPerUserPerDay": 1_000, "saleQueued": false}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let festival = created["id"].as_i64().unwrap();
    let mut tokens = Vec::new();
    for i in 0..16 {
        tokens.push(ctx.user_token(&format!("buyer{i}@example.com")).await);
    }

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let (booked, mut counted) = watch::channel(0usize);
    let stop = CancellationToken::new();
    let mut buyers = tokio::task::JoinSet::new();
    for token in tokens {
        buyers.spawn(buyer(
            ctx.server.url(""),
            token,
            festival,
            outcomes.clone(),
            booked.clone(),
            stop.clone(),
        ));
    }
    let patience = Duration::from_secs(120);
    tokio::time::timeout(patience, counted.wait_for(|n| *n >= 300))
        .await
        .expect("bookings flow")
        .unwrap();

    // Crash.
    let killed = std::time::Instant::now();
    mariadb.kill();
    let before_kill = *counted.borrow();
    eventually("bookings answer 503 while the database is gone", || async {
        outcomes
            .lock()
            .unwrap()
            .answers
            .get("503 SERVICE_UNAVAILABLE")
            .copied()
            .unwrap_or(0)
            >= 50
    })
    .await;
    let first_503s = killed.elapsed();

    // Restart on the same files (InnoDB recovers its log).
    let restarted = std::time::Instant::now();
    mariadb.run().await;
    let after_restart = *counted.borrow();
    tokio::time::timeout(patience, counted.wait_for(|n| *n > after_restart))
        .await
        .expect("bookings succeed again by themselves")
        .unwrap();
    let recovered = restarted.elapsed();
    tokio::time::timeout(patience, counted.wait_for(|n| *n >= after_restart + 300))
        .await
        .expect("bookings flow again")
        .unwrap();
    stop.cancel();
    while let Some(done) = buyers.join_next().await {
        done.unwrap();
    }

    // Read the stock back.
    let (status, detail) = ctx
        .send(Method::GET, &format!("/festivals/{festival}"), None, None)
        .await;
    assert_eq!(status, 200, "{detail}");
    let left: i64 = ctx.left(festival).await.iter().map(|(_, n)| n).sum();
    let pool = sqlx::MySqlPool::connect(&database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT id, quantity FROM reservations WHERE festival_id = ? AND status = 'ACTIVE'",
    )
    .bind(festival)
    .fetch_all(&pool)
    .await
    .unwrap();
    let stored: HashMap<i64, i64> = rows
        .iter()
        .map(|r| {
            (
                r.get::<i64, _>("id"),
                i64::from(r.get::<i32, _>("quantity")),
            )
        })
        .collect();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let lost: Vec<&i64> = outcomes
        .booked
        .iter()
        .filter(|id| !stored.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "bookings answered 200 but gone after the crash: {lost:?}"
    );
    let sold: i64 = stored.values().sum();
    assert_eq!(
        100_000 - left,
        sold,
        "the day's stock matches its reservations"
    );
    // A booking whose commit the crash interrupted was answered 503 and may or may not be
    // there; every other stored one was answered 200.
    let unanswered = stored.len() - outcomes.booked.len();
    assert!(
        unanswered <= 16,
        "{unanswered} stored bookings were not answered 200 (16 buyers had at most one in flight)"
    );
    eprintln!(
        "mariadb crash: {} bookings before the kill; 50 answers 503 within {} ms of it; \
         bookings again {} ms after the restart began; answers {:?}; {} stored, {} answered 200",
        before_kill,
        first_503s.as_millis(),
        recovered.as_millis(),
        outcomes.answers,
        stored.len(),
        outcomes.booked.len()
    );
    drop(pool);
    ctx.server.shutdown().await;
}

/// A Redis server of the test's own that keeps nothing on disk, as in a cache deployment.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.run().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let port = self.port;
        eventually("the private Redis answers", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    fn kill(&mut self) {
        sigkill(&mut self.child);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls its rank until `stop`; joins again whenever it is not in line (as the web app does
/// when its rank comes back -1), and reports its first return to the line on `rejoined`.
/// Returns its answers by status, and whether a last join after `stop` found it in line or let
/// in. (The pause is Redis state too: after an empty restart some waiters are let in, and an
/// admitted waiter's rank is -1 as well.)
async fn waiter(
    url: String,
    token: String,
    festival: i64,
    email: String,
    rejoined: watch::Sender<usize>,
    stop: CancellationToken,
) -> (HashMap<u16, usize>, bool) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let join = format!("{url}/queues/festival{festival}/waiting-room/users/{email}");
    let rank = format!("{url}/queues/festival{festival}/users/{email}/rank");
    let mut answers = HashMap::new();
    let mut in_line = true;
    let mut back = false;
    while !stop.is_cancelled() {
        let target = if in_line { &rank } else { &join };
        let response = http
            .get(target)
            .bearer_auth(&token)
            .send()
            .await
            .expect("an answer, not a hang");
        let status = response.status().as_u16();
        *answers.entry(status).or_default() += 1;
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            200 => {
                let placed = body["rank"].as_i64().is_some_and(|r| r >= 0)
                    || body["allowed"].as_bool() == Some(true);
                if !in_line && placed && !back {
                    back = true;
                    rejoined.send_modify(|n| *n += 1);
                }
                in_line = placed;
            }
            503 => assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}"),
            _ => panic!("unexpected answer {status}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last: Value = http
        .get(&join)
        .bearer_auth(&token)
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .unwrap();
    let placed =
        last["rank"].as_i64().is_some_and(|r| r >= 0) || last["allowed"].as_bool() == Some(true);
    (answers, placed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_under_a_waiting_room_sends_every_waiter_back_in_line() {
    let _ = require_service!(test_support::REDIS);
    let mut redis = PrivateRedis::start().await;
    let redis_url = redis.url();
    let ctx = start(|c| {
        c.redis_url = Some(redis_url.clone());
        c.auth.signups_per_address_per_hour = 1_000;
        c.auth.attempts_per_address_per_minute = 1_000;
    })
    .await;
    let admin = ctx.admin_token("admin@example.com").await;
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(json!({"title": "대기열 재시작", "description": "부하", "startDate": "2099-07-01", "endDate": "2099-07-01"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let festival = created["id"].as_i64().unwrap();
    // Nobody is let in: everyone stays in line, so being in line is what the test sees.
    let (status, body) = ctx
        .send(
            Method::POST,
            &format!("/admin/queues/festival{festival}/pause"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stop = CancellationToken::new();
    let (rejoined, mut counted) = watch::channel(0usize);
    let mut waiters = tokio::task::JoinSet::new();
    const WAITERS: usize = 20;
    for i in 0..WAITERS {
        let email = format!("waiter{i}@example.com");
        let token = ctx.user_token(&email).await;
        let (status, _, _) = ctx.join(&token, festival, &email).await;
        assert_eq!(status, 200);
        waiters.spawn(waiter(
            ctx.server.url(""),
            token,
            festival,
            email,
            rejoined.clone(),
            stop.clone(),
        ));
    }

    let killed = std::time::Instant::now();
    redis.kill();
    eventually("the node notices that Redis is gone", || async {
        common::metric(
            &ctx.server.url(""),
            r#"somsom_dependency_up{dependency="redis"}"#,
        )
        .await
            == 0
    })
    .await;
    let noticed = killed.elapsed();
    let restarted = std::time::Instant::now();
    redis.run().await;
    // Every place was lost with Redis; each waiter learns it (-1) and joins again.
    tokio::time::timeout(
        Duration::from_secs(120),
        counted.wait_for(|n| *n >= WAITERS),
    )
    .await
    .expect("every waiter is back in line")
    .unwrap();
    let recovered = restarted.elapsed();
    stop.cancel();
    let mut answers: HashMap<u16, usize> = HashMap::new();
    while let Some(done) = waiters.join_next().await {
        let (mine, in_line) = done.unwrap();
        assert!(in_line, "a waiter ended out of line");
        for (status, n) in mine {
            *answers.entry(status).or_default() += n;
        }
    }
    assert!(
        answers.get(&503).is_some_and(|n| *n > 0),
        "the outage was seen: {answers:?}"
    );
    eprintln!(
        "redis restart: noticed {} ms after the kill; all {WAITERS} waiters back in line {} ms \
         after the restart began; answers {answers:?}",
        noticed.as_millis(),
        recovered.as_millis()
    );
    ctx.server.shutdown().await;
}
