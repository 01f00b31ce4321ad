//! Shared helpers for the server's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use std::sync::Arc;

use cognito_auth::sender::MemorySender;
use serde_json::{Value, json};
use somsom_server::{Application, Config, Overrides, build_with};

/// A configuration for tests: loopback port 0 and a SQLite file in `dir`.
pub fn config_in(dir: &std::path::Path) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: format!("sqlite://{}/data/somsom.db", dir.display()),
        shutdown_grace_secs: 10,
        ..Config::default()
    }
}

/// A running server and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for the server to finish.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        self.done.await.expect("server task").expect("server ran");
    }
}

/// Serves `app` on its bound port in a task.
pub fn spawn(app: Application) -> Running {
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
}

/// A server on a SQLite file in a temporary directory, with codes captured in memory.
pub struct Ctx {
    pub server: Running,
    pub codes: Arc<MemorySender>,
    /// Every push notification the server sent.
    pub pushes: push_notify::send::RecordingSender,
    pub http: reqwest::Client,
    pub db: somsom_server::db::Database,
    pub state: somsom_server::AppState,
    pub _dir: tempfile::TempDir,
}

pub async fn start(tweak: impl FnOnce(&mut Config)) -> Ctx {
    start_with_clock(tweak, cognito_auth::ManualClock::starting_now()).await
}

pub async fn start_with_clock(
    tweak: impl FnOnce(&mut Config),
    clock: cognito_auth::ManualClock,
) -> Ctx {
    start_on(tweak, Some(Arc::new(clock))).await
}

/// A server on `clock` (`None`: the system clock, for tests whose background tasks must see
/// time pass on their own).
pub async fn start_on(
    tweak: impl FnOnce(&mut Config),
    clock: Option<Arc<dyn cognito_auth::Clock>>,
) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    tweak(&mut config);
    let codes = Arc::new(MemorySender::new());
    let pushes = push_notify::send::RecordingSender::new();
    let app = build_with(
        config,
        Overrides {
            code_sender: Some(codes.clone()),
            clock,
            push_sender: Some(Arc::new(pushes.clone())),
        },
    )
    .await
    .unwrap();
    let db = app.state().db.clone();
    let state = app.state().clone();
    Ctx {
        server: spawn(app),
        codes,
        pushes,
        http: reqwest::Client::new(),
        db,
        state,
        _dir: dir,
    }
}

impl Ctx {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.server.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn signed_up(&self, email: &str) {
        let (status, body) = self
            .post(
                "/signup",
                json!({"email": email, "password": "Festival1!", "name": "솜솜"}),
            )
            .await;
        assert_eq!(
            (status, &body["message"]),
            (200, &json!("이메일 인증을 완료해주세요.")),
            "{body}"
        );
    }

    pub async fn confirmed(&self, email: &str) {
        self.signed_up(email).await;
        let code = self.codes.last_code(email).unwrap();
        let (status, body) = self
            .post(
                "/api/confirm-signup",
                json!({"email": email, "name": "솜솜", "code": code}),
            )
            .await;
        assert_eq!(
            (status, &body["message"]),
            (200, &json!("회원가입되었습니다.")),
            "{body}"
        );
    }

    pub async fn login(&self, email: &str) -> Value {
        let (status, body) = self
            .post("/login", json!({"email": email, "password": "Festival1!"}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Ctx {
    /// Any request; the body is JSON when given. Returns the status and the JSON answer (or
    /// `Null` when the body is not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.server.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A confirmed, logged-in user's access token.
    pub async fn user_token(&self, email: &str) -> String {
        self.confirmed(email).await;
        self.login(email).await["accessToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An admin's access token (granted through the same path as the `grant-admin` command).
    pub async fn admin_token(&self, email: &str) -> String {
        self.confirmed(email).await;
        let state = self.state.clone();
        somsom_server::workflows::accounts::grant_admin(state.auth.as_ref(), &state.db, email)
            .await
            .unwrap();
        self.login(email).await["accessToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Ctx {
    /// Joins festival `festival`'s waiting room as `email`: the status, the answer and the
    /// admission token, if admitted.
    pub async fn join(
        &self,
        token: &str,
        festival: i64,
        email: &str,
    ) -> (u16, Value, Option<String>) {
        let path = format!("/queues/festival{festival}/waiting-room/users/{email}");
        self.get_admission(&path, token).await
    }

    /// A STOMP client connected to `/ws-chat` with `token` (CONNECTED checked).
    pub async fn stomp(&self, token: &str) -> chat_relay::client::Client {
        stomp_at(&self.server.url("/ws-chat"), token).await
    }

    /// A GET that also returns the `Admission-Token` header.
    pub async fn get_admission(&self, path: &str, token: &str) -> (u16, Value, Option<String>) {
        let res = self
            .http
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let admission = res
            .headers()
            .get("admission-token")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, res.json().await.unwrap_or(Value::Null), admission)
    }

    /// Books `quantity` tickets for `date`, with the admission token when given.
    pub async fn book(
        &self,
        token: &str,
        festival: i64,
        date: &str,
        quantity: u32,
        admission: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.server.url("/reservations"))
            .bearer_auth(token)
            .json(&json!({"festivalId": festival, "festivalDate": date, "quantity": quantity}));
        if let Some(admission) = admission {
            req = req.header("Admission-Token", admission);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Tickets left per day, read back from the festival's detail.
    pub async fn left(&self, festival: i64) -> Vec<(String, i64)> {
        let (status, detail) = self
            .send(
                reqwest::Method::GET,
                &format!("/festivals/{festival}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{detail}");
        detail["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["date"].as_str().unwrap().to_owned(),
                    d["leftTickets"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

/// The server binary running as its own OS process.
pub struct ServerProcess {
    pub child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// Its JSON log events, as they come.
    pub events: std::sync::mpsc::Receiver<Value>,
    /// The events logged before it said "listening".
    pub startup: Vec<Value>,
}

impl ServerProcess {
    /// Starts `somsom-server` in `dir` on a free loopback port with JSON logs and `envs`, and
    /// waits until it logs its address. Service variables of the test environment are removed;
    /// pass them in `envs` to use them.
    pub fn spawn(dir: &std::path::Path, envs: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_somsom-server"));
        command
            .current_dir(dir)
            .env("SOMSOM_LISTEN", "127.0.0.1:0")
            .env("SOMSOM_LOG__FORMAT", "json")
            .env_remove("SOMSOM_DATABASE_URL")
            .env_remove("SOMSOM_REDIS_URL")
            .env_remove("SOMSOM_KAFKA_BROKERS")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let stdout = child.stdout.take().unwrap();
        // Killed if it never says where it listens (the panic below must not leak it).
        struct KillOnDrop(Option<std::process::Child>);
        impl Drop for KillOnDrop {
            fn drop(&mut self) {
                if let Some(child) = &mut self.0 {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        let mut guard = KillOnDrop(Some(child));
        let (tx, events) = std::sync::mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(event);
                }
            }
        });
        let mut startup = Vec::new();
        let addr = loop {
            let event = events
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the server logs its address");
            if event["message"] == "listening" {
                break event["addr"].as_str().unwrap().to_owned();
            }
            startup.push(event);
        };
        Self {
            child: guard.0.take().expect("still ours"),
            addr,
            events,
            startup,
        }
    }

    /// `http://{addr}{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(self) -> std::process::ExitStatus {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        tokio::task::spawn_blocking(move || {
            let mut me = self;
            me.child.wait()
        })
        .await
        .unwrap()
        .unwrap()
    }
}

impl Drop for ServerProcess {
    /// A failing test must not leave its servers running (and holding its output open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A STOMP client connected to a server process's `/ws-chat` with `token` (CONNECTED checked).
pub async fn stomp_to(node: &ServerProcess, token: &str) -> chat_relay::client::Client {
    stomp_at(&node.url("/ws-chat"), token).await
}

/// A STOMP client connected to `chat` (the `http://…/ws-chat` address) with `token`.
async fn stomp_at(chat: &str, token: &str) -> chat_relay::client::Client {
    let url = chat.replacen("http://", "ws://", 1);
    let (client, connected) =
        chat_relay::client::Client::connect(&url, &[("Authorization", &format!("Bearer {token}"))])
            .await
            .unwrap();
    assert_eq!(
        connected.command,
        chat_relay::stomp::Command::Connected,
        "{connected:?}"
    );
    client
}

/// Every buyer (token) tries to book three times at once, each attempt through the next of
/// `urls` (one per node) in turn, `1 + (buyer + attempt) % max_quantity` tickets each. Every
/// answer must be a booking, `TICKET_SOLD_OUT` or `TICKET_LIMIT_EXCEEDED`; returns the tickets
/// sold.
pub async fn buy_concurrently(
    urls: &[String],
    tokens: &[String],
    festival: i64,
    date: &str,
    max_quantity: usize,
) -> i64 {
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        for attempt in 0..3 {
            let url = format!("{}/reservations", urls[(i + attempt) % urls.len()]);
            let (http, token) = (http.clone(), token.clone());
            let quantity = 1 + (i + attempt) % max_quantity;
            let body = json!({"festivalId": festival, "festivalDate": date, "quantity": quantity});
            tasks.spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (
                    res.status().as_u16(),
                    res.json::<Value>().await.unwrap(),
                    quantity as i64,
                )
            });
        }
    }
    let mut sold = 0;
    while let Some(done) = tasks.join_next().await {
        let (status, body, quantity) = done.unwrap();
        match (status, body["code"].as_str()) {
            (200, _) => sold += quantity,
            (400, Some("TICKET_SOLD_OUT")) | (409, Some("TICKET_LIMIT_EXCEEDED")) => {}
            // An overloaded database answers honestly and books nothing; the stock read back
            // afterwards still has to match.
            (503, Some("SERVICE_UNAVAILABLE")) => {}
            other => panic!("unexpected {other:?}: {body}"),
        }
    }
    sold
}

/// The value of the `/metrics` sample whose line starts with `sample` (name and labels) at
/// `base` (a server's URL without a path).
pub async fn metric(base: &str, sample: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(sample))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{sample} missing in\n{text}"))
}

/// The ids of a festival page (`{"festivals": [...]}`), in order.
pub fn festival_ids(body: &Value) -> Vec<i64> {
    body["festivals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect()
}

/// Waits until `check` holds, for state that lives where nothing can notify the test: a child
/// server process, a database another process writes, a background task seen only through
/// HTTP. In-process events are awaited on a channel instead (`push_crash`, `chat_multi_node`).
/// It asks again after 5 ms, doubling up to 200 ms; the two-minute bound only turns a hang into
/// a failure and is not a measurement.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut pause = std::time::Duration::from_millis(5);
    while !check().await {
        assert!(
            std::time::Instant::now() < bound,
            "{what} did not happen within two minutes"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    }
}
