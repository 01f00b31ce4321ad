//! `somsom-push-load`: plans `--reminders` reminders in a SQL schedule, lets `--dispatchers`
//! dispatchers (as on that many nodes) deliver them to a local sink, and prints one JSON line:
//! planning rate, delivery rate, lateness after the due time (p50, p99, max), and how many were
//! lost or repeated.
//!
//! * `--spread-secs 0`: everything is due at once (the delivery rate is the capacity);
//! * `--spread-secs S`: due times spread evenly over S seconds starting `--lead-secs` after
//!   planning began (the lateness is what users would see at that rate).
//!
//! `--sink memory` records in the process; `--sink fcm` runs an FCM HTTP v1 stand-in on
//! loopback (token and send endpoints) and sends through the real FCM sender.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clap::Parser;
use push_notify::sql::{SqlPool, SqlPush};
use push_notify::{
    Device, DeviceRegistry, DeviceType, Dispatcher, DispatcherConfig, Message, Reminder,
    ReminderKey, Scheduler, SendOutcome, Sender,
};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Reminders to plan and deliver.
    #[arg(long, default_value_t = 100_000)]
    reminders: usize,
    /// Users they belong to (one device each).
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// `sqlite://PATH` or `mysql://…/DB` (default: a SQLite file in a temporary directory).
    #[arg(long)]
    database: Option<String>,
    /// Seconds over which due times are spread (0: all due at once).
    #[arg(long, default_value_t = 0.0)]
    spread_secs: f64,
    /// Dispatchers working at once (as on that many nodes).
    #[arg(long, default_value_t = 1)]
    dispatchers: usize,
    /// Reminders claimed per round.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Sends in flight per dispatcher.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// With a spread, seconds between the start of planning and the first due time (planning
    /// must be done by then).
    #[arg(long, default_value_t = 30)]
    lead_secs: i64,
    /// Idle poll, milliseconds.
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    /// `memory` or `fcm` (an FCM stand-in over loopback HTTP).
    #[arg(long, default_value = "memory")]
    sink: String,
}

/// Collapse ids and when they arrived.
type Arrivals = Arc<Mutex<Vec<(String, DateTime<Utc>)>>>;

/// Records when each message arrived.
#[derive(Debug, Clone, Default)]
struct Timed {
    inner: Option<Arc<dyn Sender>>,
    arrivals: Arrivals,
}

#[async_trait]
impl Sender for Timed {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        let outcome = match &self.inner {
            Some(inner) => inner.send(device, message).await,
            None => SendOutcome::Delivered,
        };
        if outcome == SendOutcome::Delivered {
            self.arrivals
                .lock()
                .expect("not poisoned")
                .push((message.collapse_id.clone(), Utc::now()));
        }
        outcome
    }
}

async fn fcm_stand_in() -> Arc<dyn Sender> {
    use axum::routing::post;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/token",
            post(|| async { axum::Json(json!({"access_token": "load", "expires_in": 3600})) }),
        )
        .route(
            "/v1/projects/load/messages:send",
            post(|| async { axum::Json(json!({"name": "projects/load/messages/1"})) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa key");
    let account = push_notify::send::fcm::ServiceAccount {
        project_id: "load".into(),
        client_email: "load@load.iam.gserviceaccount.com".into(),
        private_key: key.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string(),
        private_key_id: None,
        token_uri: format!("{base}/token"),
    };
    Arc::new(push_notify::send::fcm::FcmSender::new(account, &base).expect("fcm sender"))
}

async fn pool(url: &str) -> SqlPool {
    if url.starts_with("mysql:") {
        SqlPool::MySql(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(16)
                .connect(url)
                .await
                .expect("mysql"),
        )
    } else {
        use std::str::FromStr;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .expect("sqlite url")
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        SqlPool::Sqlite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .expect("sqlite"),
        )
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let scratch = std::env::temp_dir().join(format!("somsom-push-load-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let url = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/push.db", scratch.display()));
    let store = Arc::new(SqlPush::new(pool(&url).await));
    store.migrate().await.expect("migrate");

    for user in 0..args.users {
        store
            .activate(Device {
                user: user as i64,
                token: format!("device-{user}"),
                device_type: DeviceType::Mobile,
            })
            .await
            .expect("activate");
    }

    // Plan: due times from `first_due` on, spread over the window.
    let date = (Utc::now() + chrono::Duration::days(30)).date_naive();
    let planning_started = Instant::now();
    let first_due = Utc::now()
        + chrono::Duration::seconds(if args.spread_secs > 0.0 {
            args.lead_secs
        } else {
            0
        });
    let mut due_of: HashMap<String, DateTime<Utc>> = HashMap::with_capacity(args.reminders);
    let reminders: Vec<Reminder> = (0..args.reminders)
        .map(|i| {
            let offset = args.spread_secs * i as f64 / args.reminders as f64;
            let key = ReminderKey {
                user: (i % args.users) as i64,
                festival: (i / args.users) as i64,
                date,
            };
            Reminder {
                key,
                due: first_due + chrono::Duration::microseconds((offset * 1e6) as i64),
                title: "Load".into(),
                body: "load test".into(),
            }
        })
        .collect();
    futures::future::join_all(
        reminders
            .chunks(args.reminders.div_ceil(8).max(1))
            .map(|chunk| {
                let store = store.clone();
                async move {
                    for r in chunk {
                        store.schedule(r).await.expect("schedule");
                    }
                }
            }),
    )
    .await;
    let planning = planning_started.elapsed();
    for r in &reminders {
        due_of.insert(r.key.id(), r.due);
    }

    let sink = Timed {
        inner: match args.sink.as_str() {
            "memory" => None,
            "fcm" => Some(fcm_stand_in().await),
            other => {
                eprintln!("unknown sink {other}");
                return ExitCode::FAILURE;
            }
        },
        arrivals: Arc::default(),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let workers: Vec<_> = (0..args.dispatchers)
        .map(|_| {
            let d = Dispatcher::new(
                store.clone(),
                store.clone(),
                store.clone(),
                Arc::new(sink.clone()),
            )
            .with_config({
                let mut config = DispatcherConfig::default();
                config.batch = args.batch;
                config.concurrency = args.concurrency;
                config.poll = Duration::from_millis(args.poll_ms);
                config
            });
            let cancel = cancel.clone();
            tokio::spawn(async move { d.run(cancel).await })
        })
        .collect();
    let deadline =
        Instant::now() + Duration::from_secs(600) + Duration::from_secs_f64(args.spread_secs);
    // Watch the sink, not the database: a counting query every few milliseconds would compete
    // with the dispatchers for the database.
    while sink.arrivals.lock().expect("not poisoned").len() < args.reminders
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    cancel.cancel();
    for w in workers {
        let _ = w.await;
    }

    let arrivals = sink.arrivals.lock().expect("not poisoned").clone();
    let states = store.counts().await.expect("counts");
    let mut seen: HashMap<&str, u32> = HashMap::new();
    let mut late: Vec<f64> = Vec::with_capacity(arrivals.len());
    for (id, at) in &arrivals {
        *seen.entry(id.as_str()).or_default() += 1;
        if let Some(due) = due_of.get(id) {
            late.push((*at - *due).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    late.sort_by(f64::total_cmp);
    let first = arrivals.iter().map(|(_, t)| *t).min();
    let last = arrivals.iter().map(|(_, t)| *t).max();
    let span = match (first, last) {
        (Some(a), Some(b)) => (b - a).num_milliseconds().max(1) as f64 / 1000.0,
        _ => elapsed.as_secs_f64(),
    };
    let lost = args.reminders.saturating_sub(seen.len());
    let repeated: u32 = seen.values().map(|n| n - 1).sum();
    let report = json!({
        "reminders": args.reminders,
        "database": if url.starts_with("mysql:") { "mysql" } else { "sqlite" },
        "sink": args.sink,
        "dispatchers": args.dispatchers,
        "spread_secs": args.spread_secs,
        "planned_per_sec": (args.reminders as f64 / planning.as_secs_f64()).round(),
        "delivered": arrivals.len(),
        "deliveries_per_sec": (arrivals.len() as f64 / span).round(),
        "late_ms_p50": percentile(&late, 0.5).round(),
        "late_ms_p99": percentile(&late, 0.99).round(),
        "late_ms_max": late.last().copied().unwrap_or(0.0).round(),
        "lost": lost,
        "repeated": repeated,
        "states": states.iter().map(|(s, n)| format!("{s}={n}")).collect::<Vec<_>>().join(","),
    });
    // The report is the tool's output.
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if lost == 0 && repeated == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
