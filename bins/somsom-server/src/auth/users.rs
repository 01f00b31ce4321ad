//! The seed's `users` table: the numeric id every other table refers to, plus name, e-mail and
//! role. Rows are written when an account is confirmed; the identity provider holds credentials.

use cognito_auth::{Profile, Role};

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
    let row = on_db!(db, pool => sqlx::query_as::<_, Columns>(SQL).bind(username).fetch_optional(pool).await)?;
    Ok(row.map(user))
}

/// The row with this (normalised) e-mail.
pub async fn by_email(db: &Database, email: &str) -> Result<Option<User>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, username, email, role FROM users WHERE email = ? LIMIT 1";
    let row = on_db!(db, pool => sqlx::query_as::<_, Columns>(SQL).bind(email).fetch_optional(pool).await)?;
    Ok(row.map(user))
}

/// The row with this id.
pub async fn by_id(db: &Database, id: i64) -> Result<Option<User>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, username, email, role FROM users WHERE id = ?";
    let row =
        on_db!(db, pool => sqlx::query_as::<_, Columns>(SQL).bind(id).fetch_optional(pool).await)?;
    Ok(row.map(user))
}

/// `id, name, username, email, role`.
type Columns = (i64, String, String, String, String);

fn user((id, name, username, email, role): Columns) -> User {
    User {
        id,
        name,
        username,
        email,
        role: role.parse().unwrap_or(Role::User),
    }
}

/// How long a node serves a `users` row it read without reading it again.
pub const ROW_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// `users` rows by provider handle, with the rows read lately kept in memory: the signed-in
/// user's row is needed on every authenticated request, and it changes only when its owner
/// logs in again (name, e-mail and role are copied from the provider then; the id never
/// changes). A change made through this handle is seen at once on this node; one made on
/// another node within [`ROW_TTL`].
#[derive(Debug, Clone)]
pub struct UserRows {
    db: Database,
    cache: moka::sync::Cache<String, User>,
}

impl UserRows {
    /// Rows in `db`.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ROW_TTL)
                .build(),
        }
    }

    /// The row for a provider handle.
    pub async fn by_username(&self, username: &str) -> Result<Option<User>, sqlx::Error> {
        if let Some(user) = self.cache.get(username) {
            return Ok(Some(user));
        }
        let user = by_username(&self.db, username).await?;
        if let Some(user) = &user {
            self.cache.insert(user.username.clone(), user.clone());
        }
        Ok(user)
    }

    /// [`upsert`], keeping the new row.
    pub async fn upsert(&self, profile: &Profile) -> Result<User, sqlx::Error> {
        let user = upsert(&self.db, profile).await?;
        self.cache.insert(user.username.clone(), user.clone());
        Ok(user)
    }
}
