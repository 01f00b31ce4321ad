//! The SQL backend, both strategies, on SQLite (a temporary file) and on a real MySQL/MariaDB
//! (`TEST_MYSQL_URL`), including two engines ("nodes") with their own pools on one database.
#![cfg(feature = "sql")]

use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use test_support::mysql::TestDatabase;
use test_support::{MYSQL, require_service};
use ticket_lock::conformance::{self, run_all};
use ticket_lock::sql::{SqlPool, SqlTickets, Strategy};
use ticket_lock::{Clock, TicketEngine, kst};

async fn sqlite_pool(dir: &tempfile::TempDir) -> SqlPool {
    let path = dir
        .path()
        .join(format!("{}.db", test_support::unique_name("tickets")));
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(30));
    SqlPool::Sqlite(
        SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .unwrap(),
    )
}

async fn engine(pool: SqlPool, strategy: Strategy, clock: Arc<dyn Clock>) -> Arc<dyn TicketEngine> {
    let engine = SqlTickets::new(pool, strategy)
        .with_clock(clock)
        .with_day_offset(kst());
    engine.migrate().await.unwrap();
    engine.migrate().await.unwrap(); // idempotent
    Arc::new(engine)
}

async fn sqlite_suite(strategy: Strategy) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    run_all(&move |clock| {
        let dir = dir.clone();
        Box::pin(async move { engine(sqlite_pool(&dir).await, strategy, clock).await })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_row_lock_passes_the_conformance_suite() {
    sqlite_suite(Strategy::RowLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conditional_update_passes_the_conformance_suite() {
    sqlite_suite(Strategy::ConditionalUpdate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_group_commit_passes_the_conformance_suite() {
    sqlite_suite(Strategy::GroupCommit).await;
}

async fn mysql_pool(db: &TestDatabase) -> SqlPool {
    SqlPool::MySql(
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(16)
            .connect(db.url())
            .await
            .unwrap(),
    )
}

async fn mysql_suite(strategy: Strategy) {
    let url = require_service!(MYSQL);
    let db = TestDatabase::create(&url).await.unwrap();
    let pool = mysql_pool(&db).await;
    // Engines on one database share stock; the suite's festivals and users do not overlap.
    run_all(&move |clock| {
        let pool = pool.clone();
        Box::pin(async move { engine(pool, strategy, clock).await })
    })
    .await;

    db.drop_database().await.unwrap();

    // Two nodes: separate pools (separate connections) on one fresh database.
    let db = TestDatabase::create(&url).await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(conformance::clock());
    let nodes = [
        engine(mysql_pool(&db).await, strategy, clock.clone()).await,
        engine(mysql_pool(&db).await, strategy, clock).await,
    ];
    conformance::no_oversell_under_contention(&nodes, 101).await;
    conformance::user_cap_holds_under_contention(&nodes, 102).await;
    conformance::retry_storm_books_once(&nodes, 103).await;
    conformance::cancel_and_rebuy_race(&nodes, 104).await;
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_row_lock_passes_the_conformance_suite_on_two_nodes() {
    mysql_suite(Strategy::RowLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_conditional_update_passes_the_conformance_suite_on_two_nodes() {
    mysql_suite(Strategy::ConditionalUpdate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_group_commit_passes_the_conformance_suite_on_two_nodes() {
    mysql_suite(Strategy::GroupCommit).await;
}
