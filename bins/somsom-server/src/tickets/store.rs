//! The `checkins` and `staff` tables.

use chrono::NaiveDate;

use crate::db::{Database, on_db};

/// A ticket's check-in.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CheckIn {
    /// The reservation.
    pub reservation_id: i64,
    /// The ticket's number.
    pub ticket_no: i32,
    /// The festival.
    pub festival_id: i64,
    /// The day.
    pub festival_date: NaiveDate,
    /// The staff member (a `users.id`).
    pub staff_user_id: i64,
    /// The gate they named.
    pub gate: String,
    /// When the scanner read it (epoch ms; earlier than `recorded_at` for offline scans).
    pub scanned_at: i64,
    /// When the server recorded it (epoch ms).
    pub recorded_at: i64,
}

const COLUMNS: &str = "reservation_id, ticket_no, festival_id, festival_date, staff_user_id, gate, \
                       scanned_at, recorded_at";

/// Records `check_in` unless its ticket checked in before: `Ok(None)` when this one is the
/// first, `Ok(Some(first))` with the first otherwise. The primary key decides between racing
/// gates and nodes.
pub async fn record(db: &Database, check_in: &CheckIn) -> Result<Option<CheckIn>, sqlx::Error> {
    let insert = match db {
        Database::Sqlite(_) => "INSERT OR IGNORE INTO checkins",
        Database::MySql(_) => "INSERT IGNORE INTO checkins",
    };
    let sql = format!("{insert} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    let inserted = on_db!(db, pool => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(check_in.reservation_id)
        .bind(check_in.ticket_no)
        .bind(check_in.festival_id)
        .bind(check_in.festival_date)
        .bind(check_in.staff_user_id)
        .bind(&check_in.gate)
        .bind(check_in.scanned_at)
        .bind(check_in.recorded_at)
        .execute(pool)
        .await?
        .rows_affected());
    if inserted > 0 {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM checkins WHERE reservation_id = ? AND ticket_no = ?");
    let first: CheckIn = on_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(check_in.reservation_id)
        .bind(check_in.ticket_no)
        .fetch_one(pool)
        .await?);
    Ok(Some(first))
}

/// Every check-in of a festival day.
pub async fn of_day(
    db: &Database,
    festival: i64,
    date: NaiveDate,
) -> Result<Vec<CheckIn>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkins WHERE festival_id = ? AND festival_date = ? \
         ORDER BY reservation_id, ticket_no"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(festival)
        .bind(date)
        .fetch_all(pool)
        .await?),
    )
}

/// Checked-in tickets per day of a festival.
pub async fn counts(db: &Database, festival: i64) -> Result<Vec<(NaiveDate, i64)>, sqlx::Error> {
    const SQL: &str = "SELECT festival_date, COUNT(*) FROM checkins WHERE festival_id = ? \
                       GROUP BY festival_date";
    Ok(on_db!(db, pool => sqlx::query_as(SQL).bind(festival).fetch_all(pool).await?))
}

/// The festival every grant covers.
pub const EVERY_FESTIVAL: i64 = 0;

/// Grants `user` check-in at `festival` ([`EVERY_FESTIVAL`]: all); `false` if it was granted.
pub async fn grant(db: &Database, user: i64, festival: i64, now: i64) -> Result<bool, sqlx::Error> {
    let sql = match db {
        Database::Sqlite(_) => {
            "INSERT OR IGNORE INTO staff (user_id, festival_id, granted_at) VALUES (?, ?, ?)"
        }
        Database::MySql(_) => {
            "INSERT IGNORE INTO staff (user_id, festival_id, granted_at) VALUES (?, ?, ?)"
        }
    };
    let done = on_db!(db, pool => sqlx::query(sql).bind(user).bind(festival).bind(now)
        .execute(pool).await?.rows_affected());
    Ok(done > 0)
}

/// Takes a grant back; `false` if there was none.
pub async fn revoke(db: &Database, user: i64, festival: i64) -> Result<bool, sqlx::Error> {
    const SQL: &str = "DELETE FROM staff WHERE user_id = ? AND festival_id = ?";
    let done = on_db!(db, pool => sqlx::query(SQL).bind(user).bind(festival)
        .execute(pool).await?.rows_affected());
    Ok(done > 0)
}

/// Whether `user` may check tickets in at `festival`.
pub async fn may_check_in(db: &Database, user: i64, festival: i64) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT COUNT(*) FROM staff WHERE user_id = ? AND festival_id IN (?, 0)";
    let n: i64 = on_db!(db, pool => sqlx::query_scalar(SQL).bind(user).bind(festival)
        .fetch_one(pool).await?);
    Ok(n > 0)
}
