//! Throwaway MySQL/MariaDB databases, one per test.

use sqlx::{Connection, MySqlConnection};

/// Prefix of every database made by [`TestDatabase`]; `.ci/run` drops leftovers by it.
pub const PREFIX: &str = "somsom_t";

/// A database created for one test. Its [`url`](Self::url) points at it.
///
/// Call [`drop_database`](Self::drop_database) at the end of the test; databases left by a test that
/// panicked are removed by `.ci/run` before the next run (they all start with [`PREFIX`]).
#[derive(Debug)]
pub struct TestDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database on the server at `server_url` (a `mysql://` URL with or
    /// without a database path).
    pub async fn create(server_url: &str) -> Result<Self, sqlx::Error> {
        let name = crate::unique_name(PREFIX);
        let mut conn = MySqlConnection::connect(server_url).await?;
        // The name comes from unique_name: only [a-z0-9_].
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        let mut url =
            url::Url::parse(server_url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        url.set_path(&name);
        Ok(Self {
            server_url: server_url.to_owned(),
            url: url.to_string(),
            name,
        })
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database.
    pub async fn drop_database(self) -> Result<(), sqlx::Error> {
        let mut conn = MySqlConnection::connect(&self.server_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{}`",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await
    }
}
