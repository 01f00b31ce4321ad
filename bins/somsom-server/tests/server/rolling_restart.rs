//! A rolling restart behind a real load balancer: Debian's HAProxy running
//! `deploy/haproxy/haproxy.cfg` in front of two `somsom-server` processes on MariaDB, Redis and
//! Kafka. Chat flows from two senders to three subscribers and HTTP requests flow while each
//! node in turn gets SIGTERM, drains (unready, still serving), tells its chat clients to
//! reconnect, exits, and comes back. The clients reconnect through HAProxy and resume with
//! `resume-after`, as the web app does.
//!
//! Every message the server acknowledged (RECEIPT) reaches every subscriber exactly once; no
//! subscriber sees any message twice (one whose acknowledgement was cut off may arrive or not,
//! but once at most); no HTTP request fails.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_relay::client::Client;
use chat_relay::stomp::Command;
use reqwest::Method;
use serde_json::{Value, json};
use test_support::mysql::TestDatabase;
use test_support::{HAPROXY, KAFKA, MYSQL, REDIS, require_service, unique_name};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use common::{ServerProcess, eventually, start};

const SENDERS: usize = 2;
const RECEIVERS: usize = 3;
/// Acknowledged messages between one step of the restart and the next.
const BETWEEN_STEPS: usize = 60;

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// HAProxy on the repository's configuration.
struct Haproxy {
    child: std::process::Child,
    listen: String,
    stats: String,
}

impl Haproxy {
    fn start(binary: &str, nodes: [&str; 2]) -> Self {
        let config = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/haproxy/haproxy.cfg");
        let (listen, stats) = (free_addr(), free_addr());
        let child = std::process::Command::new(binary)
            .args(["-db", "-f"])
            .arg(&config)
            .env("SOMSOM_LB_LISTEN", &listen)
            .env("SOMSOM_LB_STATS", &stats)
            .env("SOMSOM_NODE1", nodes[0])
            .env("SOMSOM_NODE2", nodes[1])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("haproxy starts");
        Self {
            child,
            listen,
            stats,
        }
    }

    /// HAProxy's view of `server` (`UP`, `DOWN`, …) from its CSV status page.
    async fn status(&self, server: &str) -> String {
        let Ok(response) = reqwest::get(format!("http://{}/stats;csv", self.stats)).await else {
            return "unreachable".to_owned();
        };
        let csv = response.text().await.unwrap_or_default();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (Some(name), Some(status)) = (column("svname"), column("status")) else {
            return "no status".to_owned();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|row| row.first() == Some(&"nodes") && row.get(name) == Some(&server))
            .and_then(|row| row.get(status).map(|s| (*s).to_owned()))
            .unwrap_or_default()
    }

    async fn wait_until(&self, server: &str, wanted: &str) {
        eventually(&format!("HAProxy sees {server} {wanted}"), || async {
            self.status(server).await == wanted
        })
        .await;
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects through the load balancer, trying again while no node takes it (one is draining,
/// HAProxy has not noticed yet).
async fn connect(ws: &str, token: &str) -> Client {
    let auth = format!("Bearer {token}");
    loop {
        if let Ok((client, answer)) = Client::connect(ws, &[("Authorization", &auth)]).await
            && answer.command == Command::Connected
        {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one subscriber received, and how often it had to reconnect.
#[derive(Default)]
struct Inbox {
    contents: Vec<String>,
    reconnects: usize,
}

/// Subscribes to `room` through the load balancer and records every message; on an ERROR or a
/// closed socket reconnects and resumes after the last `sendTime` it saw. Reports its first
/// subscription on `ready`.
async fn subscriber(
    ws: String,
    token: String,
    room: i64,
    inbox: Arc<Mutex<Inbox>>,
    ready: watch::Sender<usize>,
) {
    let topic = format!("/topic/chat/chatRoomId{room}");
    let mut last_time: Option<String> = None;
    let mut first = true;
    loop {
        let mut client = connect(&ws, &token).await;
        let mut headers = vec![("receipt", "subscribed")];
        if let Some(after) = &last_time {
            headers.push(("resume-after", after.as_str()));
        }
        if client.subscribe("0", &topic, &headers).await.is_err() {
            inbox.lock().unwrap().reconnects += 1;
            continue;
        }
        loop {
            match client.next_frame().await {
                Ok(Some(frame)) if frame.command == Command::Message => {
                    let message: Value = serde_json::from_slice(&frame.body).unwrap();
                    last_time = Some(message["sendTime"].as_i64().unwrap().to_string());
                    let content = message["content"].as_str().unwrap().to_owned();
                    inbox.lock().unwrap().contents.push(content);
                }
                Ok(Some(frame)) if frame.command == Command::Receipt => {
                    if first {
                        first = false;
                        ready.send_modify(|n| *n += 1);
                    }
                }
                // An ERROR (the node is shutting down) or a closed socket: reconnect.
                _ => break,
            }
        }
        inbox.lock().unwrap().reconnects += 1;
    }
}

/// What the senders sent: acknowledged, or cut off before the acknowledgement came.
#[derive(Default)]
struct Sent {
    acknowledged: Vec<String>,
    unacknowledged: Vec<String>,
}

/// Sends `who-0`, `who-1`, … one at a time, each with a receipt, until `stop`.
async fn sender(
    ws: String,
    token: String,
    room: i64,
    who: usize,
    sent: Arc<Mutex<Sent>>,
    acknowledged: watch::Sender<usize>,
    stop: CancellationToken,
) {
    let mut client = connect(&ws, &token).await;
    for n in 0.. {
        if stop.is_cancelled() {
            return;
        }
        let content = format!("{who}-{n}");
        let receipt = n.to_string();
        let body = json!({"chatRoomId": room, "content": content});
        let mut acked = false;
        if client
            .send_json("/publish/chat.send", &body, &[("receipt", &receipt)])
            .await
            .is_ok()
        {
            acked = loop {
                match client.next_frame().await {
                    Ok(Some(frame)) if frame.command == Command::Receipt => {
                        break frame.header("receipt-id") == Some(receipt.as_str());
                    }
                    Ok(Some(frame)) if frame.command == Command::Message => continue,
                    _ => break false,
                }
            };
        }
        if acked {
            sent.lock().unwrap().acknowledged.push(content);
            acknowledged.send_modify(|n| *n += 1);
            tokio::time::sleep(Duration::from_millis(10)).await;
        } else {
            sent.lock().unwrap().unacknowledged.push(content);
            client = connect(&ws, &token).await;
        }
    }
}

/// GETs through the load balancer until `stop`; returns (requests, failures with what they got).
async fn http_traffic(url: String, stop: CancellationToken) -> (usize, Vec<String>) {
    let http = reqwest::Client::new();
    let (mut requests, mut failures) = (0, Vec::new());
    while !stop.is_cancelled() {
        requests += 1;
        match http.get(&url).send().await {
            Ok(response) if response.status() == 200 => {}
            Ok(response) => failures.push(format!("status {}", response.status())),
            Err(e) => failures.push(format!("{e}")),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (requests, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_behind_haproxy_loses_and_repeats_no_chat_message() {
    let mysql = require_service!(MYSQL);
    let redis = require_service!(REDIS);
    let brokers = require_service!(KAFKA);
    let haproxy = require_service!(HAPROXY);
    let db = TestDatabase::create(&mysql).await.unwrap();
    let redis_prefix = format!("{}:", unique_name("rolling"));
    let topic_prefix = format!("{}-", unique_name("rolling"));

    // Accounts and the room, made through an in-process node on the same database and Redis.
    let setup = start(|c| {
        c.database_url = db.url().to_owned();
        c.redis_url = Some(redis.clone());
        c.redis_key_prefix = redis_prefix.clone();
    })
    .await;
    let admin = setup.admin_token("admin@example.com").await;
    let (status, created) = setup
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(
                json!({"title": "재시작 축제", "startDate": "2099-03-01", "endDate": "2099-03-01"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let room = created["id"].as_i64().unwrap();
    let mut tokens = Vec::new();
    for i in 0..SENDERS + RECEIVERS {
        let token = setup.user_token(&format!("member{i}@example.com")).await;
        let path = format!("/festivals/chatting/{room}/join");
        let (status, body) = setup.send(Method::POST, &path, Some(&token), None).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(token);
    }

    let dir = tempfile::tempdir().unwrap();
    let addrs = [free_addr(), free_addr()];
    let node_envs = |listen: &str| {
        vec![
            ("SOMSOM_LISTEN".to_owned(), listen.to_owned()),
            ("SOMSOM_DATABASE_URL".to_owned(), db.url().to_owned()),
            ("SOMSOM_REDIS_URL".to_owned(), redis.clone()),
            ("SOMSOM_REDIS_KEY_PREFIX".to_owned(), redis_prefix.clone()),
            ("SOMSOM_KAFKA_BROKERS".to_owned(), brokers.clone()),
            (
                "SOMSOM_CHAT__KAFKA_TOPIC_PREFIX".to_owned(),
                topic_prefix.clone(),
            ),
            // Longer than HAProxy needs to take a node out (two checks 250 ms apart).
            ("SOMSOM_DRAIN_SECS".to_owned(), "2".to_owned()),
            // The senders here send as fast as their receipts come back.
            (
                "SOMSOM_CHAT__SEND_RATE_PER_SECOND".to_owned(),
                "0".to_owned(),
            ),
            (
                "SOMSOM_HTTP__TRUSTED_PROXIES".to_owned(),
                "127.0.0.1".to_owned(),
            ),
        ]
    };
    let spawn = |listen: &str| {
        let envs = node_envs(listen);
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ServerProcess::spawn(dir.path(), &envs)
    };
    let mut nodes = [Some(spawn(&addrs[0])), Some(spawn(&addrs[1]))];
    let lb = Haproxy::start(&haproxy, [&addrs[0], &addrs[1]]);
    lb.wait_until("node1", "UP").await;
    lb.wait_until("node2", "UP").await;
    let ws = format!("ws://{}/ws-chat", lb.listen);

    let (ready_tx, mut ready) = watch::channel(0);
    let mut inboxes = Vec::new();
    let mut tasks = Vec::new();
    for token in &tokens[SENDERS..] {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        inboxes.push(inbox.clone());
        tasks.push(tokio::spawn(subscriber(
            ws.clone(),
            token.clone(),
            room,
            inbox,
            ready_tx.clone(),
        )));
    }
    ready.wait_for(|n| *n == RECEIVERS).await.unwrap();

    let stop = CancellationToken::new();
    let sent = Arc::new(Mutex::new(Sent::default()));
    let (acked_tx, mut acked) = watch::channel(0);
    let mut senders = Vec::new();
    for (who, token) in tokens[..SENDERS].iter().enumerate() {
        senders.push(tokio::spawn(sender(
            ws.clone(),
            token.clone(),
            room,
            who,
            sent.clone(),
            acked_tx.clone(),
            stop.clone(),
        )));
    }
    let http = tokio::spawn(http_traffic(
        format!("http://{}/festivals?page=0&size=5", lb.listen),
        stop.clone(),
    ));

    // Node 1, then node 2: SIGTERM, drain, exit, start again on the same address, back in the
    // pool; chat keeps flowing in between.
    let mut goal = BETWEEN_STEPS;
    acked.wait_for(|n| *n >= goal).await.unwrap();
    for (i, name) in ["node1", "node2"].into_iter().enumerate() {
        let status = nodes[i].take().unwrap().terminate().await;
        assert!(
            status.success(),
            "{name} exits cleanly after its drain: {status:?}"
        );
        nodes[i] = Some(spawn(&addrs[i]));
        lb.wait_until(name, "UP").await;
        goal = *acked.borrow() + BETWEEN_STEPS;
        acked.wait_for(|n| *n >= goal).await.unwrap();
    }
    stop.cancel();
    for task in senders {
        task.await.unwrap();
    }
    let (requests, failures) = http.await.unwrap();

    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let everything: HashSet<&String> = sent
        .acknowledged
        .iter()
        .chain(&sent.unacknowledged)
        .collect();
    eventually(
        "every subscriber has every acknowledged message",
        || async {
            inboxes.iter().all(|inbox| {
                let got: HashSet<String> = inbox.lock().unwrap().contents.iter().cloned().collect();
                sent.acknowledged.iter().all(|c| got.contains(c))
            })
        },
    )
    .await;
    for task in &tasks {
        task.abort();
    }
    for (i, inbox) in inboxes.iter().enumerate() {
        let inbox = inbox.lock().unwrap();
        let mut times: HashMap<&String, usize> = HashMap::new();
        for content in &inbox.contents {
            assert!(
                everything.contains(content),
                "subscriber {i} got {content}, never sent"
            );
            *times.entry(content).or_default() += 1;
        }
        let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "subscriber {i} got messages twice: {twice:?}"
        );
        assert!(
            inbox.reconnects >= 1,
            "subscriber {i} was moved off a restarting node at least once"
        );
    }
    assert!(requests > 0);
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:?}",
        failures.len()
    );
    eprintln!(
        "rolling restart: {} messages acknowledged, {} cut off, {} HTTP requests, subscribers \
         reconnected {:?} times",
        sent.acknowledged.len(),
        sent.unacknowledged.len(),
        requests,
        inboxes
            .iter()
            .map(|i| i.lock().unwrap().reconnects)
            .collect::<Vec<_>>()
    );
}
