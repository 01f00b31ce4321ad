//! The seed's `users` table: the numeric id every other table refers to, plus name, e-mail and
//! role. Rows are written when an account is confirmed; the identity provider holds credentials.

use cognito_auth::{Profile, Role};
use sqlx::Row;

use crate::db::{Database, on_db};

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `users.id`, the `userId` of the API.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The identity provider's stable handle.
    pub username: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: Role,
}

/// Inserts or refreshes the row for `profile` and returns it. Idempotent: confirming twice,
/// or logging in with an account confirmed before this table existed, both end with one row.
pub async fn upsert(db: &Database, profile: &Profile) -> Result<User, sqlx::Error> {
    let insert = match db {
        Database::Sqlite(_) => {
            "INSERT INTO users (name, username, email, role) VALUES (?, ?, ?, ?) \
             ON CONFLICT(username) DO UPDATE SET name = excluded.name, email = excluded.email, \
             role = excluded.role, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        }
        Database::MySql(_) => {
            "INSERT INTO users (name, username, email, role) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE name = VALUES(name), email = VALUES(email), role = VALUES(role)"
        }
    };
    on_db!(db, pool => sqlx::query(insert)
        .bind(&profile.name).bind(&profile.username).bind(&profile.email).bind(profile.role.as_str())
        .execute(pool).await.map(drop))?;
    by_username(db, &profile.username)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// The row for a provider handle.
pub async fn by_username(db: &Database, username: &str) -> Result<Option<User>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, username, email, role FROM users WHERE username = ?";
    let row = on_db!(db, pool => sqlx::query(SQL).bind(username).fetch_optional(pool).await.map(|r| r.map(|r| {
        (r.get::<i64, _>("id"), r.get::<String, _>("name"), r.get::<String, _>("username"),
         r.get::<String, _>("email"), r.get::<String, _>("role"))
    })))?;
    Ok(row.map(|(id, name, username, email, role)| User {
        id,
        name,
        username,
        email,
        role: role.parse().unwrap_or(Role::User),
    }))
}
