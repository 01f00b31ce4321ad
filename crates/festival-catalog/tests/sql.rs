//! The SQL backend on SQLite (a temporary file) and on a real MySQL/MariaDB (`TEST_MYSQL_URL`).
#![cfg(feature = "sql")]

use std::str::FromStr;
use std::sync::Arc;

use festival_catalog::conformance::run_all;
use festival_catalog::sql::{SqlCatalog, SqlPool};
use festival_catalog::{Catalog, Clock};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use test_support::mysql::TestDatabase;
use test_support::{MYSQL, require_service};

async fn sqlite(dir: &tempfile::TempDir, clock: Arc<dyn Clock>) -> Arc<dyn Catalog> {
    let path = dir
        .path()
        .join(format!("{}.db", test_support::unique_name("catalog")));
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let catalog = SqlCatalog::new(SqlPool::Sqlite(pool)).with_clock(clock);
    catalog.migrate().await.unwrap();
    catalog.migrate().await.unwrap(); // idempotent
    Arc::new(catalog)
}

#[tokio::test]
async fn sqlite_catalog_passes_the_conformance_suite() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    run_all(&move |clock| {
        let dir = dir.clone();
        Box::pin(async move { sqlite(&dir, clock).await })
    })
    .await;
}

#[tokio::test]
async fn mysql_catalog_passes_the_conformance_suite() {
    let url = require_service!(MYSQL);
    let databases = Arc::new(std::sync::Mutex::new(Vec::new()));
    let made = databases.clone();
    run_all(&move |clock| {
        let (url, made) = (url.clone(), made.clone());
        Box::pin(async move {
            let db = TestDatabase::create(&url).await.unwrap();
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(8)
                .connect(db.url())
                .await
                .unwrap();
            made.lock().unwrap().push(db);
            let catalog = SqlCatalog::new(SqlPool::MySql(pool)).with_clock(clock);
            catalog.migrate().await.unwrap();
            Arc::new(catalog) as Arc<dyn Catalog>
        })
    })
    .await;
    let made: Vec<TestDatabase> = std::mem::take(&mut *databases.lock().unwrap());
    for db in made {
        db.drop_database().await.unwrap();
    }
}
