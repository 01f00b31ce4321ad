//! The `mail_outbox` table: enqueue once per (reservation, kind), lease, mark sent or retry.

use crate::db::{Database, on_db};

/// Which confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Tickets booked.
    Booked,
    /// A reservation cancelled.
    Cancelled,
}

impl Kind {
    /// Its name in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booked => "BOOKED",
            Self::Cancelled => "CANCELLED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "BOOKED" => Some(Self::Booked),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// A leased row.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The row.
    pub id: i64,
    /// Which mail.
    pub kind: Kind,
    /// The reservation it is about.
    pub reservation_id: i64,
    /// To whom (`users.id`).
    pub user_id: i64,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Proves the lease when marking the row.
    pub token: String,
}

/// Adds the mail unless it is queued (or sent) already; `true` if added.
pub async fn enqueue(
    db: &Database,
    kind: Kind,
    reservation: i64,
    user: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(enqueue_many(db, &[(kind, reservation, user)], now).await? > 0)
}

/// Adds many mails in one statement (a booking rush queues them in batches); returns how many
/// were new.
pub async fn enqueue_many(
    db: &Database,
    mails: &[(Kind, i64, i64)],
    now: i64,
) -> Result<u64, sqlx::Error> {
    if mails.is_empty() {
        return Ok(0);
    }
    let insert = match db {
        Database::Sqlite(_) => "INSERT OR IGNORE INTO mail_outbox",
        Database::MySql(_) => "INSERT IGNORE INTO mail_outbox",
    };
    let rows = vec!["(?, ?, ?, ?, ?)"; mails.len()].join(", ");
    let sql = format!(
        "{insert} (kind, reservation_id, user_id, created_at, next_attempt_at) VALUES {rows}"
    );
    let done = on_db!(db, pool => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        for (kind, reservation, user) in mails {
            query = query.bind(kind.as_str()).bind(*reservation).bind(*user).bind(now).bind(now);
        }
        query.execute(pool).await?.rows_affected()
    });
    Ok(done)
}

/// Leases up to `limit` due rows until `now + lease_ms`. Rows another node leased are skipped:
/// each row is taken by a conditional update, so two nodes never hold the same one.
pub async fn lease(
    db: &Database,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Leased>, sqlx::Error> {
    const DUE: &str = "SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= ? \
                       AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?";
    const TAKE: &str = "UPDATE mail_outbox SET lease_until = ?, lease_token = ?, attempts = attempts + 1 \
                        WHERE id = ? AND sent_at IS NULL AND (lease_until IS NULL OR lease_until < ?)";
    const READ: &str =
        "SELECT kind, reservation_id, user_id, attempts FROM mail_outbox WHERE id = ?";
    let ids: Vec<i64> = on_db!(db, pool => sqlx::query_scalar(DUE).bind(now).bind(now).bind(limit)
        .fetch_all(pool).await?);
    let mut leased = Vec::new();
    for id in ids {
        let token = uuid::Uuid::new_v4().to_string();
        let taken = on_db!(db, pool => sqlx::query(TAKE).bind(now + lease_ms).bind(&token).bind(id).bind(now)
            .execute(pool).await?.rows_affected());
        if taken == 0 {
            continue;
        }
        let (kind, reservation_id, user_id, attempts): (String, i64, i64, i32) =
            on_db!(db, pool => sqlx::query_as(READ).bind(id).fetch_one(pool).await?);
        if let Some(kind) = Kind::parse(&kind) {
            leased.push(Leased {
                id,
                kind,
                reservation_id,
                user_id,
                attempts,
                token,
            });
        }
    }
    Ok(leased)
}

/// Marks a leased row sent.
pub async fn sent(db: &Database, row: &Leased, now: i64) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE mail_outbox SET sent_at = ?, lease_until = NULL, last_error = NULL \
                       WHERE id = ? AND lease_token = ?";
    on_db!(db, pool => sqlx::query(SQL).bind(now).bind(row.id).bind(&row.token).execute(pool).await.map(drop))?;
    Ok(())
}

/// Hands a leased row back for another attempt at `retry_at`.
pub async fn failed(
    db: &Database,
    row: &Leased,
    retry_at: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE mail_outbox SET next_attempt_at = ?, lease_until = NULL, last_error = ? \
                       WHERE id = ? AND lease_token = ?";
    let error: String = error.chars().take(255).collect();
    on_db!(db, pool => sqlx::query(SQL).bind(retry_at).bind(error).bind(row.id).bind(&row.token).execute(pool).await.map(drop))?;
    Ok(())
}

/// Rows not yet sent (for tests and metrics).
pub async fn pending(db: &Database) -> Result<i64, sqlx::Error> {
    const SQL: &str = "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL";
    Ok(on_db!(db, pool => sqlx::query_scalar(SQL).fetch_one(pool).await?))
}
