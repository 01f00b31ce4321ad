#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

#[cfg(any(feature = "sqlite", feature = "mysql"))]
use sqlx::migrate::{Migrate, MigrateError, Migrator};

/// sqlx's record table, which the host application's own migrations use.
pub const SHARED_TABLE: &str = "_sqlx_migrations";

/// A record table name must be a plain identifier: it is written into SQL.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn check_table(table: &str) -> Result<(), MigrateError> {
    let plain = !table.is_empty()
        && table != SHARED_TABLE
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(MigrateError::Execute(sqlx::Error::Protocol(format!(
            "migration table name {table:?}: use letters, digits and underscores, not {SHARED_TABLE}"
        ))))
    }
}

/// `SELECT`/`DELETE` condition matching the migrator's versions (integers, so written inline).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn versions(migrator: &Migrator) -> String {
    let list: Vec<String> = migrator.iter().map(|m| m.version.to_string()).collect();
    if list.is_empty() {
        "1 = 0".to_owned()
    } else {
        format!("version IN ({})", list.join(", "))
    }
}

/// One backend's `run`: the adoption of earlier records, then the migrations, on one connection.
macro_rules! backend {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $pool:ty, $exists:literal) => {
        $(#[$doc])*
        #[cfg(feature = $feature)]
        #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
        pub async fn $name(
            pool: &$pool,
            mut migrator: Migrator,
            table: &'static str,
        ) -> Result<(), MigrateError> {
            check_table(table)?;
            let mut conn = pool.acquire().await?;
            conn.lock().await?;
            let adopted = async {
                conn.ensure_migrations_table(table).await?;
                let shared: i64 = sqlx::query_scalar($exists)
                    .bind(SHARED_TABLE)
                    .fetch_one(&mut *conn)
                    .await?;
                if shared > 0 {
                    let ours = versions(&migrator);
                    // `table` passed `check_table`; `ours` is a list of integers.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO {table} SELECT * FROM {SHARED_TABLE} WHERE {ours} \
                         AND version NOT IN (SELECT version FROM {table})"
                    )))
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {SHARED_TABLE} WHERE {ours}"
                    )))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok::<(), MigrateError>(())
            }
            .await;
            conn.unlock().await?;
            // Back to the pool before the migrator takes one (a pool may hold a single one).
            drop(conn);
            adopted?;
            migrator.dangerous_set_table_name(table);
            // A node of an older release (rolling back) must still start beside a newer one.
            migrator.set_ignore_missing(true);
            migrator.run(pool).await
        }
    };
}

backend!(
    /// Runs `migrator` on a SQLite database, recording what it applied in `table`.
    sqlite,
    "sqlite",
    sqlx::SqlitePool,
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
);

backend!(
    /// Runs `migrator` on a MySQL or MariaDB database, recording what it applied in `table`.
    mysql,
    "mysql",
    sqlx::MySqlPool,
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
);
