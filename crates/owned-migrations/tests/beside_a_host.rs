//! A library's migrations and a host application's own, on one database: each side's migrator
//! runs with sqlx's defaults on its side and never trips over the other's versions. The same
//! cases on SQLite and on MariaDB.

use sqlx::migrate::Migrator;

const TABLE: &str = "_library_migrations";

fn library() -> Migrator {
    sqlx::migrate!("./tests/migrations")
}

/// The host's migrator exactly as `sqlx::migrate!()` makes it: it refuses a database that
/// records versions it does not know.
fn host() -> Migrator {
    sqlx::migrate!("./tests/host_migrations")
}

/// What a library did before it had a table of its own: its versions in the shared table.
fn library_the_old_way() -> Migrator {
    let mut m = library();
    m.set_ignore_missing(true);
    m
}

macro_rules! cases {
    ($backend:ident, $pool:ty, $connect:expr) => {
        mod $backend {
            use super::*;

            async fn versions(pool: &$pool, table: &str) -> Vec<i64> {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT version FROM {table} ORDER BY version"
                )))
                .fetch_all(pool)
                .await
                .unwrap()
            }

            #[tokio::test]
            async fn host_and_library_migrate_in_any_order_and_again() {
                let connected = $connect;
                let Some((pool, _keep)) = connected else {
                    return;
                };
                host().run(&pool).await.unwrap();
                owned_migrations::$backend(&pool, library(), TABLE)
                    .await
                    .unwrap();
                // Without a table of its own, this is where the host fails: VersionMissing.
                host().run(&pool).await.unwrap();
                owned_migrations::$backend(&pool, library(), TABLE)
                    .await
                    .unwrap();
                assert_eq!(versions(&pool, "_sqlx_migrations").await, vec![1, 2]);
                assert_eq!(
                    versions(&pool, TABLE).await,
                    vec![20260101000000, 20260102000000]
                );
                sqlx::query("INSERT INTO library_things (id, name, size) VALUES (1, 'a', 2)")
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO host_things (id, label) VALUES (1, 'b')")
                    .execute(&pool)
                    .await
                    .unwrap();
            }

            #[tokio::test]
            async fn versions_recorded_the_old_way_move_without_migrating_twice() {
                let connected = $connect;
                let Some((pool, _keep)) = connected else {
                    return;
                };
                library_the_old_way().run(&pool).await.unwrap();
                // The second migration is an ALTER TABLE: running it again would fail.
                owned_migrations::$backend(&pool, library(), TABLE)
                    .await
                    .unwrap();
                assert!(versions(&pool, "_sqlx_migrations").await.is_empty());
                assert_eq!(versions(&pool, TABLE).await.len(), 2);
                host().run(&pool).await.unwrap();
                assert_eq!(versions(&pool, "_sqlx_migrations").await, vec![1, 2]);
            }

            #[tokio::test]
            async fn nodes_starting_together_migrate_once() {
                let connected = $connect;
                let Some((pool, _keep)) = connected else {
                    return;
                };
                library_the_old_way().run(&pool).await.unwrap();
                let runs = (0..8).map(|_| owned_migrations::$backend(&pool, library(), TABLE));
                for result in futures::future::join_all(runs).await {
                    result.unwrap();
                }
                assert_eq!(versions(&pool, TABLE).await.len(), 2);
            }

            #[tokio::test]
            async fn a_table_name_that_is_not_an_identifier_is_refused() {
                let connected = $connect;
                let Some((pool, _keep)) = connected else {
                    return;
                };
                for bad in ["", "_sqlx_migrations", "x; DROP TABLE y", "a-b"] {
                    assert!(
                        owned_migrations::$backend(&pool, library(), bad)
                            .await
                            .is_err()
                    );
                }
            }
        }
    };
}

#[cfg(feature = "sqlite")]
cases!(sqlite, sqlx::SqlitePool, {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite?mode=rwc", dir.path().display());
    Some((sqlx::SqlitePool::connect(&url).await.unwrap(), dir))
});

#[cfg(feature = "mysql")]
cases!(mysql, sqlx::MySqlPool, {
    match test_support::service_url(test_support::MYSQL, module_path!()) {
        Some(server) => {
            let db = test_support::mysql::TestDatabase::create(&server)
                .await
                .unwrap();
            Some((sqlx::MySqlPool::connect(db.url()).await.unwrap(), db))
        }
        None => None,
    }
});
