//! The SQL backends on SQLite (a temporary file) and on a real MySQL/MariaDB (`TEST_MYSQL_URL`):
//! every conformance suite, and two "nodes" with their own pools claiming from one table.
#![cfg(feature = "sql")]

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use push_notify::conformance::{self, dispatch::Backends, schedule::Harness};
use push_notify::sql::{SqlPool, SqlPush};
use push_notify::{Clock, DueSource, Finish, ManualClock, Scheduler};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use test_support::mysql::TestDatabase;
use test_support::{MYSQL, require_service};

async fn sqlite(dir: &tempfile::TempDir) -> SqlPool {
    let path = dir
        .path()
        .join(format!("{}.db", test_support::unique_name("push")));
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    SqlPool::Sqlite(
        SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap(),
    )
}

async fn mysql(db: &TestDatabase) -> SqlPool {
    SqlPool::MySql(
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(8)
            .connect(db.url())
            .await
            .unwrap(),
    )
}

async fn push(pool: SqlPool, clock: &ManualClock) -> Arc<SqlPush> {
    let push = SqlPush::new(pool).with_clock(Arc::new(clock.clone()));
    push.migrate().await.unwrap();
    push.migrate().await.unwrap(); // idempotent
    Arc::new(push)
}

fn harness(push: Arc<SqlPush>, clock: ManualClock) -> Harness {
    Harness::manual(push.clone(), push, clock)
}

fn backends(push: Arc<SqlPush>, clock: ManualClock) -> Backends {
    Backends {
        clock,
        registry: push.clone(),
        scheduler: push.clone(),
        source: push.clone(),
        ledger: push,
    }
}

/// Runs every suite; `pool` makes a pool on a fresh database.
async fn suites<F, Fut>(pool: F)
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = SqlPool> + Send + 'static,
{
    let clock = ManualClock::starting_now();
    let shared = push(pool().await, &clock).await;
    conformance::registry::run_all(&*shared).await;
    conformance::ledger::run_all(&*shared, clock.now()).await;
    let make = pool.clone();
    conformance::schedule::run_all(&move || {
        let make = make.clone();
        async move {
            let clock = ManualClock::starting_now();
            harness(push(make().await, &clock).await, clock)
        }
        .boxed()
    })
    .await;
    conformance::dispatch::run_all(&move || {
        let make = pool.clone();
        async move {
            let clock = ManualClock::starting_now();
            backends(push(make().await, &clock).await, clock)
        }
        .boxed()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_every_suite() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    suites(move || {
        let dir = dir.clone();
        async move { sqlite(&dir).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_passes_every_suite() {
    let url = require_service!(MYSQL);
    let databases = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = databases.clone();
    suites(move || {
        let url = url.clone();
        let databases = databases.clone();
        async move {
            let db = TestDatabase::create(&url).await.unwrap();
            let pool = mysql(&db).await;
            databases.lock().unwrap().push(db);
            pool
        }
    })
    .await;
    let made: Vec<_> = keep.lock().unwrap().drain(..).collect();
    for db in made {
        db.drop_database().await.unwrap();
    }
}

/// Two nodes with their own pools claim 2,000 due reminders from one MySQL table at once: each
/// reminder goes to exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_nodes_claim_disjoint_reminders() {
    let url = require_service!(MYSQL);
    let db = TestDatabase::create(&url).await.unwrap();
    let clock = ManualClock::starting_now();
    let a = push(mysql(&db).await, &clock).await;
    let b = push(mysql(&db).await, &clock).await;
    let user = conformance::fresh_user();
    for festival in 0..2_000 {
        a.schedule(&conformance::reminder(user, festival, clock.now()))
            .await
            .unwrap();
    }
    let claimers: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|node| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = node.claim(50, Duration::from_secs(600)).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    node.finish(
                        &got.iter()
                            .map(|c| (c.clone(), Finish::Delivered))
                            .collect::<Vec<_>>(),
                    )
                    .await
                    .unwrap();
                    mine.extend(got.into_iter().map(|c| c.reminder.key));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut per_node = Vec::new();
    for c in claimers {
        let keys = c.await.unwrap();
        per_node.push(keys.len());
        for k in keys {
            assert!(seen.insert(k), "claimed twice: {k}");
        }
    }
    assert_eq!(
        seen.len(),
        2_000,
        "every reminder claimed once; per claimer {per_node:?}"
    );
    assert_eq!(
        a.counts().await.unwrap(),
        vec![("delivered".to_owned(), 2_000)]
    );
    db.drop_database().await.unwrap();
}
