//! Accounts in SQLite or MySQL/MariaDB (feature `sql`): they survive restarts and are shared by
//! every node using the same database.

use async_trait::async_trait;
#[cfg(feature = "mysql")]
use sqlx::MySqlPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::store::{
    Account, AccountStore, RefreshLookup, RefreshRecord, RevokedSession, StoreError,
};
use crate::Role;

/// Where this crate records its applied migrations: a table of its own, so a host application's
/// migrations (and other libraries') on the same database never meet its versions.
pub(crate) const MIGRATIONS_TABLE: &str = "_cognito_auth_migrations";

/// An account store over a SQL pool. Create it, then [`migrate`](Self::migrate) once at start.
#[derive(Debug, Clone)]
pub enum SqlStore {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    MySql(MySqlPool),
}

/// Runs the same statement on whichever pool this is: the SQL is portable (`?` placeholders,
/// integer timestamps and flags), only the driver differs.
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            SqlStore::Sqlite($pool) => $body,
            #[cfg(feature = "mysql")]
            SqlStore::MySql($pool) => $body,
        }
    };
}

fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict;
    }
    StoreError::Backend(e.to_string())
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    username: String,
    email: String,
    name: String,
    password_hash: String,
    role: String,
    confirmed: bool,
    code_hash: Option<String>,
    code_expires_at: Option<i64>,
    code_attempts: i32,
    window_attempts: i32,
    window_started_at: i64,
    sign_ups: i32,
    created_at: i64,
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            username: r.username,
            email: r.email,
            name: r.name,
            password_hash: r.password_hash,
            role: r.role.parse().unwrap_or(Role::User),
            confirmed: r.confirmed,
            code_hash: r.code_hash,
            code_expires_at: r.code_expires_at,
            code_attempts: u32::try_from(r.code_attempts).unwrap_or(0),
            window_attempts: u32::try_from(r.window_attempts).unwrap_or(0),
            window_started_at: r.window_started_at,
            sign_ups: u32::try_from(r.sign_ups).unwrap_or(1),
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    token_hash: String,
    family: String,
    username: String,
    expires_at: i64,
    used: bool,
    revoked: Option<bool>,
}

const ACCOUNT_COLUMNS: &str = "username, email, name, password_hash, role, confirmed, code_hash, \
     code_expires_at, code_attempts, window_attempts, window_started_at, sign_ups, created_at";

/// Every mutable column of an account, in the order [`bind_mutable`] binds them.
const SET_MUTABLE: &str = "name = ?, password_hash = ?, role = ?, confirmed = ?, code_hash = ?, \
     code_expires_at = ?, code_attempts = ?, window_attempts = ?, window_started_at = ?, \
     sign_ups = ?, created_at = ?";

/// Binds an account's mutable columns (see [`SET_MUTABLE`]).
macro_rules! bind_mutable {
    ($query:expr, $a:expr) => {
        $query
            .bind(&$a.name)
            .bind(&$a.password_hash)
            .bind($a.role.as_str())
            .bind($a.confirmed)
            .bind(&$a.code_hash)
            .bind($a.code_expires_at)
            .bind(i64::from($a.code_attempts))
            .bind(i64::from($a.window_attempts))
            .bind($a.window_started_at)
            .bind(i64::from($a.sign_ups))
            .bind($a.created_at)
    };
}

impl SqlStore {
    /// Creates the tables if they are missing, recording the versions in its own table
    /// (`_cognito_auth_migrations`).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let run = match self {
            #[cfg(feature = "sqlite")]
            SqlStore::Sqlite(pool) => {
                owned_migrations::sqlite(
                    pool,
                    sqlx::migrate!("./migrations/sqlite"),
                    MIGRATIONS_TABLE,
                )
                .await
            }
            #[cfg(feature = "mysql")]
            SqlStore::MySql(pool) => {
                owned_migrations::mysql(
                    pool,
                    sqlx::migrate!("./migrations/mysql"),
                    MIGRATIONS_TABLE,
                )
                .await
            }
        };
        run.map_err(|e| StoreError::Backend(e.to_string()))
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn insert_account(&self, a: &Account) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO auth_accounts (name, password_hash, role, confirmed, \
             code_hash, code_expires_at, code_attempts, window_attempts, window_started_at, \
             sign_ups, created_at, username, email) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        on_pool!(self, pool => bind_mutable!(sqlx::query(SQL), a)
            .bind(&a.username).bind(&a.email)
            .execute(pool).await.map(drop).map_err(backend))
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE email = ?");
        let row: Option<AccountRow> = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email).fetch_optional(pool).await.map_err(backend))?;
        Ok(row.map(Account::from))
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE username = ?");
        let row: Option<AccountRow> = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(username).fetch_optional(pool).await.map_err(backend))?;
        Ok(row.map(Account::from))
    }

    async fn update_account(&self, a: &Account) -> Result<(), StoreError> {
        let sql = format!("UPDATE auth_accounts SET {SET_MUTABLE} WHERE email = ?");
        on_pool!(self, pool => bind_mutable!(sqlx::query(sqlx::AssertSqlSafe(sql)), a)
            .bind(&a.email)
            .execute(pool).await.map(drop).map_err(backend))
    }

    async fn update_if_code(
        &self,
        a: &Account,
        expected_code_hash: &str,
    ) -> Result<bool, StoreError> {
        let sql =
            format!("UPDATE auth_accounts SET {SET_MUTABLE} WHERE email = ? AND code_hash = ?");
        let affected = on_pool!(self, pool => bind_mutable!(sqlx::query(sqlx::AssertSqlSafe(sql)), a)
            .bind(&a.email).bind(expected_code_hash)
            .execute(pool).await.map(|r| r.rows_affected()).map_err(backend))?;
        Ok(affected == 1)
    }

    async fn take_code_attempt(
        &self,
        email: &str,
        per_code: u32,
        per_window: u32,
    ) -> Result<bool, StoreError> {
        // One conditional statement: of concurrent guesses, only as many as the caps allow count.
        const SQL: &str = "UPDATE auth_accounts SET code_attempts = code_attempts + 1, \
             window_attempts = window_attempts + 1 \
             WHERE email = ? AND code_attempts < ? AND window_attempts < ?";
        let affected = on_pool!(self, pool => sqlx::query(SQL)
            .bind(email).bind(i64::from(per_code)).bind(i64::from(per_window))
            .execute(pool).await.map(|r| r.rows_affected()).map_err(backend))?;
        Ok(affected == 1)
    }

    async fn purge_pending(&self, before: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => sqlx::query(
            "DELETE FROM auth_accounts WHERE confirmed = 0 AND created_at < ?")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()).map_err(backend))
    }

    async fn insert_refresh(&self, r: &RefreshRecord) -> Result<(), StoreError> {
        let family_sql = match self {
            #[cfg(feature = "sqlite")]
            SqlStore::Sqlite(_) => {
                "INSERT OR IGNORE INTO auth_sessions (family, username) VALUES (?, ?)"
            }
            #[cfg(feature = "mysql")]
            SqlStore::MySql(_) => {
                "INSERT IGNORE INTO auth_sessions (family, username) VALUES (?, ?)"
            }
        };
        on_pool!(self, pool => sqlx::query(family_sql)
            .bind(&r.family).bind(&r.username).execute(pool).await.map(drop).map_err(backend))?;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO auth_refresh_tokens (token_hash, family, username, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&r.token_hash).bind(&r.family).bind(&r.username).bind(r.expires_at)
            .execute(pool).await.map(drop).map_err(backend))
    }

    async fn refresh_by_hash(&self, token_hash: &str) -> Result<Option<RefreshLookup>, StoreError> {
        const SQL: &str = "SELECT t.token_hash, t.family, t.username, t.expires_at, t.used, s.revoked \
             FROM auth_refresh_tokens t LEFT JOIN auth_sessions s ON s.family = t.family \
             WHERE t.token_hash = ?";
        let row: Option<RefreshRow> = on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(token_hash).fetch_optional(pool).await.map_err(backend))?;
        Ok(row.map(|r| RefreshLookup {
            record: RefreshRecord {
                token_hash: r.token_hash,
                family: r.family,
                username: r.username,
                expires_at: r.expires_at,
            },
            used: r.used,
            family_revoked: r.revoked.unwrap_or(true),
        }))
    }

    async fn mark_refresh_used(&self, token_hash: &str) -> Result<bool, StoreError> {
        // Conditional update: of two concurrent refreshes with one token, exactly one wins.
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE auth_refresh_tokens SET used = 1 WHERE token_hash = ? AND used = 0")
            .bind(token_hash).execute(pool).await.map(|r| r.rows_affected()).map_err(backend))?;
        Ok(affected == 1)
    }

    async fn revoke_family(&self, family: &str, at: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE auth_sessions SET revoked = 1, revoked_at = ? WHERE family = ? AND revoked = 0")
            .bind(at).bind(family).execute(pool).await.map(drop).map_err(backend))
    }

    async fn revoke_user(&self, username: &str, at: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE auth_sessions SET revoked = 1, revoked_at = ? WHERE username = ? AND revoked = 0")
            .bind(at).bind(username).execute(pool).await.map(drop).map_err(backend))
    }

    async fn revoked_since(&self, since: i64) -> Result<Vec<RevokedSession>, StoreError> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT family, username, revoked_at FROM auth_sessions WHERE revoked_at >= ?")
            .bind(since).fetch_all(pool).await.map_err(backend))?;
        Ok(rows
            .into_iter()
            .map(|(family, username, revoked_at)| RevokedSession {
                family,
                username,
                revoked_at,
            })
            .collect())
    }

    async fn family_active(&self, family: &str) -> Result<bool, StoreError> {
        let revoked: Option<bool> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT revoked FROM auth_sessions WHERE family = ?")
            .bind(family).fetch_optional(pool).await.map_err(backend))?;
        Ok(revoked == Some(false))
    }

    async fn signing_key(&self) -> Result<Option<(String, String)>, StoreError> {
        on_pool!(self, pool => sqlx::query_as("SELECT kid, pem FROM auth_signing_keys WHERE id = 1")
            .fetch_optional(pool).await.map_err(backend))
    }

    async fn store_signing_key(
        &self,
        kid: &str,
        pem: &str,
    ) -> Result<(String, String), StoreError> {
        // Two nodes starting together may both generate a key; the first insert wins and both
        // read it back.
        let sql = match self {
            #[cfg(feature = "sqlite")]
            SqlStore::Sqlite(_) => {
                "INSERT OR IGNORE INTO auth_signing_keys (id, kid, pem) VALUES (1, ?, ?)"
            }
            #[cfg(feature = "mysql")]
            SqlStore::MySql(_) => {
                "INSERT IGNORE INTO auth_signing_keys (id, kid, pem) VALUES (1, ?, ?)"
            }
        };
        on_pool!(self, pool => sqlx::query(sql).bind(kid).bind(pem).execute(pool).await.map(drop).map_err(backend))?;
        self.signing_key()
            .await?
            .ok_or_else(|| StoreError::Backend("signing key vanished".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance::run_all;

    #[tokio::test]
    async fn sqlite_store_passes_the_conformance_suite() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let store = SqlStore::Sqlite(pool);
        store.migrate().await.unwrap();
        store.migrate().await.expect("idempotent");
        run_all(&crate::local::tests::harness(Arc::new(store))).await;
    }

    #[tokio::test]
    async fn mysql_store_passes_the_conformance_suite() {
        let server = test_support::require_service!(test_support::MYSQL);
        let db = test_support::mysql::TestDatabase::create(&server)
            .await
            .unwrap();
        let store = SqlStore::MySql(MySqlPool::connect(db.url()).await.unwrap());
        store.migrate().await.unwrap();
        run_all(&crate::local::tests::harness(Arc::new(store.clone()))).await;
        if let SqlStore::MySql(pool) = store {
            pool.close().await;
        }
        db.drop_database().await.unwrap();
    }

    #[tokio::test]
    async fn accounts_and_the_key_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("auth-{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}?mode=rwc", dir.display());
        let open = || async {
            let store = SqlStore::Sqlite(SqlitePool::connect(&url).await.unwrap());
            store.migrate().await.unwrap();
            store
        };
        let first = open().await;
        let sender = Arc::new(crate::sender::MemorySender::new());
        let provider = crate::local::LocalIdentity::new(
            Arc::new(first.clone()),
            sender.clone(),
            Arc::new(crate::SystemClock),
            Default::default(),
        )
        .await
        .unwrap();
        use crate::IdentityProvider;
        provider
            .sign_up(crate::SignUp {
                email: "r@example.com".into(),
                password: "Festival1!".into(),
                name: "r".into(),
            })
            .await
            .unwrap();
        provider
            .confirm_sign_up(
                "r@example.com",
                &sender.last_code("r@example.com").unwrap(),
                None,
            )
            .await
            .unwrap();
        let token = provider
            .sign_in("r@example.com", "Festival1!")
            .await
            .unwrap()
            .tokens
            .access_token;
        if let SqlStore::Sqlite(pool) = first {
            pool.close().await;
        }

        let second = open().await;
        let restarted = crate::local::LocalIdentity::new(
            Arc::new(second),
            sender,
            Arc::new(crate::SystemClock),
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(restarted.jwks(), provider.jwks());
        assert!(
            restarted.verify(&token).await.is_ok(),
            "tokens outlive a restart"
        );
        assert!(
            restarted
                .sign_in("r@example.com", "Festival1!")
                .await
                .is_ok()
        );
        let _ = std::fs::remove_file(dir);
    }
}
