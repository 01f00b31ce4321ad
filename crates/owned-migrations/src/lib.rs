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

/// How long a node waits for another one's migrations before it gives up.
#[cfg(feature = "mysql")]
const LOCK_WAIT_SECS: u32 = 600;

/// The adoption of earlier records, then the migrations, on one connection: `$lock` and
/// `$unlock` bracket both.
macro_rules! backend {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $pool:ty, $exists:literal,
     |$c:ident, $t:ident| $lock:expr, $unlock:expr) => {
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
            {
                let ($c, $t) = (&mut *conn, table);
                $lock
            }
            let migrated = async {
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
                migrator.dangerous_set_table_name(table);
                // A node of an older release (rolling back) must still start beside a newer one.
                migrator.set_ignore_missing(true);
                // The lock above is held; sqlx's own is not taken (see `mysql`).
                migrator.set_locking(false);
                // On the same connection, so a pool of one connection works. `run_direct` is what
                // `Migrator::run` calls; taking `&mut Connection` directly spares callers the
                // "Acquire is not general enough" error of `run(&mut conn)`.
                migrator.run_direct(None, &mut *conn, false).await
            }
            .await;
            {
                let ($c, $t) = (&mut *conn, table);
                $unlock
            }
            migrated
        }
    };
}

backend!(
    /// Runs `migrator` on a SQLite database, recording what it applied in `table`. SQLite lets
    /// one writer in at a time; nodes do not share a SQLite file.
    sqlite,
    "sqlite",
    sqlx::SqlitePool,
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
    |conn, table| {
        // Nothing to take: the connection is this process's own file handle.
        let _ = (conn, table);
    },
    {
        let _ = (conn, table);
    }
);

backend!(
    /// Runs `migrator` on a MySQL or MariaDB database, recording what it applied in `table`.
    ///
    /// Nodes starting together take turns through a named lock (`GET_LOCK`) held for the whole
    /// run. sqlx's own migration lock asks with a timeout of -1, which MySQL reads as "wait for
    /// ever" but MariaDB answers at once with NULL, so on MariaDB it excludes nobody.
    mysql,
    "mysql",
    sqlx::MySqlPool,
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
    |conn, table| lock_mysql(conn, table).await?,
    unlock_mysql(conn, table).await?
);

/// Takes the named lock `name` of the current database on `conn`, waiting up to ten minutes.
#[cfg(feature = "mysql")]
async fn lock_mysql(conn: &mut sqlx::MySqlConnection, name: &str) -> Result<(), MigrateError> {
    let got: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(SHA1(CONCAT(DATABASE(), '/', ?)), ?)")
            .bind(name)
            .bind(LOCK_WAIT_SECS)
            .fetch_one(&mut *conn)
            .await?;
    if got == Some(1) {
        Ok(())
    } else {
        Err(MigrateError::Execute(sqlx::Error::Protocol(format!(
            "another node held the migration lock of {name} for {LOCK_WAIT_SECS} s"
        ))))
    }
}

#[cfg(feature = "mysql")]
async fn unlock_mysql(conn: &mut sqlx::MySqlConnection, name: &str) -> Result<(), MigrateError> {
    sqlx::query("SELECT RELEASE_LOCK(SHA1(CONCAT(DATABASE(), '/', ?)))")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Runs `migrator` as it is (in the table it names, sqlx's own by default) on a MySQL or MariaDB
/// database, one node at a time under the named lock `name`: what `Migrator::run` would do if its
/// lock worked on MariaDB (see [`mysql`]). For a host application's own migrations.
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub async fn mysql_exclusive(
    pool: &sqlx::MySqlPool,
    mut migrator: Migrator,
    name: &str,
) -> Result<(), MigrateError> {
    let mut conn = pool.acquire().await?;
    lock_mysql(&mut conn, name).await?;
    migrator.set_locking(false);
    let migrated = migrator.run_direct(None, &mut *conn, false).await;
    unlock_mysql(&mut conn, name).await?;
    migrated
}
