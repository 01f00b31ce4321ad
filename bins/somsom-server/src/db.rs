//! The relational database: SQLite (embedded default) or MySQL/MariaDB (scaled out), chosen by
//! the URL scheme, with the server's own migrations applied at start.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// A pool for whichever database the URL names. Engines take the inner pool they support.
#[derive(Debug, Clone)]
pub enum Database {
    /// `sqlite://…`
    Sqlite(SqlitePool),
    /// `mysql://…` (MariaDB too)
    MySql(MySqlPool),
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `mysql:`.
    #[error(
        "unsupported database URL scheme in {0:?}: use sqlite://PATH or mysql://USER:PASS@HOST/DB"
    )]
    UnsupportedScheme(String),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the directory for the SQLite file: {0}")]
    Directory(#[source] std::io::Error),
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// The URL of a database that lives in this process's memory and ends with it (tests, demos).
pub const MEMORY: &str = "sqlite::memory:";

impl Database {
    /// Opens a pool for `url` ([`MEMORY`]: in this process, kept nowhere). A SQLite file (and its directory) is created when missing.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(url, Duration::from_secs(10)).await
    }

    /// [`connect`](Self::connect), waiting at most `acquire_timeout` for a MySQL/MariaDB
    /// connection (past it a request answers 503).
    pub async fn connect_with(url: &str, acquire_timeout: Duration) -> Result<Self, DbError> {
        if url == MEMORY {
            // One connection, kept for the pool's life: an in-memory SQLite database is private
            // to its connection and gone when it closes.
            let options = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let file = options.get_filename();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(DbError::Directory)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // sqlx pings a connection before every checkout by default; a SQLite connection
                // is a file handle in this process and cannot have gone away, and the ping is one
                // more round trip to its worker thread on every query.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = url.replacen("mariadb:", "mysql:", 1);
            let options = MySqlConnectOptions::from_str(&url).map_err(DbError::Connect)?;
            let pool = MySqlPoolOptions::new()
                .max_connections(32)
                .acquire_timeout(acquire_timeout)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::MySql(pool))
        } else {
            Err(DbError::UnsupportedScheme(
                crate::config::mask_url_password(url),
            ))
        }
    }

    /// Applies the server's migrations (engines apply their own, in tables of their own).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => {
                shared(sqlx::migrate!("./migrations/sqlite"))
                    .run(pool)
                    .await
            }
            Self::MySql(pool) => migrate_mysql(pool).await,
        }
        .map_err(DbError::Migrate)
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Self::MySql(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
    }

    /// The same pool, for the festival catalog.
    pub fn catalog_pool(&self) -> festival_catalog::sql::SqlPool {
        match self {
            Self::Sqlite(pool) => festival_catalog::sql::SqlPool::Sqlite(pool.clone()),
            Self::MySql(pool) => festival_catalog::sql::SqlPool::MySql(pool.clone()),
        }
    }

    /// The same pool, for the ticket engine.
    pub fn ticket_pool(&self) -> ticket_lock::sql::SqlPool {
        match self {
            Self::Sqlite(pool) => ticket_lock::sql::SqlPool::Sqlite(pool.clone()),
            Self::MySql(pool) => ticket_lock::sql::SqlPool::MySql(pool.clone()),
        }
    }

    /// The same pool, for devices, reminders and notifications.
    pub fn push_pool(&self) -> push_notify::sql::SqlPool {
        match self {
            Self::Sqlite(pool) => push_notify::sql::SqlPool::Sqlite(pool.clone()),
            Self::MySql(pool) => push_notify::sql::SqlPool::MySql(pool.clone()),
        }
    }

    /// The same pool, for chat messages.
    pub fn chat_pool(&self) -> chat_relay::store::sql::SqlPool {
        match self {
            Self::Sqlite(pool) => chat_relay::store::sql::SqlPool::Sqlite(pool.clone()),
            Self::MySql(pool) => chat_relay::store::sql::SqlPool::MySql(pool.clone()),
        }
    }

    /// `sqlite` or `mysql`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::MySql(_) => "mysql",
        }
    }

    /// The deployment-wide secret `name`: the first node to ask stores `fresh`, every node then
    /// reads the same value back.
    pub async fn shared_secret(&self, name: &str, fresh: &str) -> Result<String, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(fresh)
                    .execute(pool)
                    .await?;
                sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = ?")
                    .bind(name)
                    .fetch_one(pool)
                    .await
            }
            Self::MySql(pool) => {
                sqlx::query("INSERT IGNORE INTO server_secrets (name, value) VALUES (?, ?)")
                    .bind(name)
                    .bind(fresh)
                    .execute(pool)
                    .await?;
                sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = ?")
                    .bind(name)
                    .fetch_one(pool)
                    .await
            }
        }
    }

    /// `configured` if there is one, else the shared secret `name`, which the first node to ask
    /// makes from 32 random bytes (hex).
    pub async fn configured_or_shared(
        &self,
        configured: Option<String>,
        name: &str,
    ) -> Result<String, sqlx::Error> {
        if let Some(secret) = configured {
            return Ok(secret);
        }
        let fresh: String = {
            use rand::Rng;
            let bytes: [u8; 32] = rand::thread_rng().r#gen();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        self.shared_secret(name, &fresh).await
    }

    /// Closes every connection (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::MySql(pool) => pool.close().await,
        }
    }
}

/// The server's migrator, in sqlx's own table. The engines keep theirs in tables of their own
/// (`owned_migrations`); versions they recorded here before are moved out when they migrate, and
/// a node of an older release must still start beside them, so unknown versions are ignored.
fn shared(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// The server's MySQL migrations, one node at a time (sqlx's own lock excludes nobody on
/// MariaDB; `owned_migrations::mysql_exclusive` holds one that does).
async fn migrate_mysql(pool: &MySqlPool) -> Result<(), sqlx::migrate::MigrateError> {
    owned_migrations::mysql_exclusive(
        pool,
        shared(sqlx::migrate!("./migrations/mysql")),
        "somsom-server",
    )
    .await
}

/// Runs the same sqlx expression on whichever pool `db` holds.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::MySql($pool) => $body,
        }
    };
}
pub(crate) use on_db;
