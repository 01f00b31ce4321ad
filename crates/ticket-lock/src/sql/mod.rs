//! SQLite and MySQL/MariaDB (feature `sql`).
//!
//! Every booking runs in one transaction that first takes the lock on the day's `ticket_days`
//! row, then checks the idempotency key, the user's holdings and the stock, and writes. All
//! writers of a day's reservations hold that row lock, so the per-user cap is as atomic as the
//! stock. Two ways to take it ([`Strategy`]):
//!
//! - `RowLock`: the seed's `SELECT … FOR UPDATE`, then `UPDATE`;
//! - `ConditionalUpdate`: `UPDATE … SET remaining = remaining - q WHERE remaining >= q` first (no
//!   separate read), undone by the rollback when a later check refuses.
//!
//! On SQLite both run in a `BEGIN IMMEDIATE` transaction (SQLite has one writer at a time).

mod statements;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::FixedOffset;
use engine_clock::{Clock, SystemClock};
use sqlx::{MySqlPool, SqlitePool};

use crate::model::{kst, millis, today};
use crate::{
    Booked, Booking, Inventory, NewInventory, Reservation, ReservationId, ReservationPage,
    TicketEngine, TicketError, UserId, Window,
};

/// Which database.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// MySQL or MariaDB.
    MySql(MySqlPool),
}

/// How a booking takes the day's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `SELECT … FOR UPDATE`, check, `UPDATE` (the seed's way).
    #[default]
    RowLock,
    /// One conditional `UPDATE` that checks and takes the stock.
    ConditionalUpdate,
}

/// Tickets in a SQL database. Create it, then [`migrate`](Self::migrate) once at start.
#[derive(Debug, Clone)]
pub struct SqlTickets {
    pool: SqlPool,
    strategy: Strategy,
    clock: Arc<dyn Clock>,
    offset: FixedOffset,
}

/// What a booking transaction concluded, before mapping to the public result.
pub(crate) enum Outcome {
    Booked(Reservation),
    Replayed(Reservation),
    Refused(TicketError),
}

fn unavailable(e: sqlx::Error) -> TicketError {
    TicketError::Unavailable {
        backend: "sql",
        message: e.to_string(),
    }
}

/// A deadlock victim (MySQL) or a lost race on the idempotency key: run the transaction again.
fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("40001") || db.is_unique_violation()
        }
        _ => false,
    }
}

const ATTEMPTS: usize = 5;

impl SqlTickets {
    /// Tickets over `pool` with the given strategy; days end at midnight KST.
    pub fn new(pool: SqlPool, strategy: Strategy) -> Self {
        Self::with_clock(pool, strategy, Arc::new(SystemClock), kst())
    }

    /// [`new`](Self::new) with the time from `clock` and days ending at midnight in `offset`.
    pub fn with_clock(
        pool: SqlPool,
        strategy: Strategy,
        clock: Arc<dyn Clock>,
        offset: FixedOffset,
    ) -> Self {
        Self {
            pool,
            strategy,
            clock,
            offset,
        }
    }

    /// Creates or updates the tables (other crates' migration versions are left alone).
    pub async fn migrate(&self) -> Result<(), TicketError> {
        let result = match &self.pool {
            SqlPool::Sqlite(pool) => {
                let mut m = sqlx::migrate!("./migrations/sqlite");
                m.set_ignore_missing(true);
                m.run(pool).await
            }
            SqlPool::MySql(pool) => {
                let mut m = sqlx::migrate!("./migrations/mysql");
                m.set_ignore_missing(true);
                m.run(pool).await
            }
        };
        result.map_err(|e| TicketError::Unavailable {
            backend: "sql",
            message: format!("migration failed: {e}"),
        })
    }
}

#[async_trait]
impl TicketEngine for SqlTickets {
    async fn create_inventory(&self, new: NewInventory) -> Result<Inventory, TicketError> {
        new.validate()?;
        match &self.pool {
            SqlPool::Sqlite(pool) => statements::sqlite::create_inventory(pool, &new).await,
            SqlPool::MySql(pool) => statements::mysql::create_inventory(pool, &new).await,
        }
        .map_err(unavailable)?;
        self.inventory(new.festival).await
    }

    async fn inventory(&self, festival: i64) -> Result<Inventory, TicketError> {
        match &self.pool {
            SqlPool::Sqlite(pool) => statements::sqlite::inventory(pool, festival).await,
            SqlPool::MySql(pool) => statements::mysql::inventory(pool, festival).await,
        }
        .map_err(unavailable)?
        .ok_or(TicketError::NotFound)
    }

    async fn reserve(&self, booking: Booking) -> Result<Booked, TicketError> {
        booking.validate()?;
        let now = millis(self.clock.now());
        let today = today(self.clock.now(), self.offset);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match &self.pool {
                SqlPool::Sqlite(pool) => {
                    statements::sqlite::reserve(pool, self.strategy, &booking, now, today).await
                }
                SqlPool::MySql(pool) => {
                    statements::mysql::reserve(pool, self.strategy, &booking, now, today).await
                }
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => continue,
                Err(e) => return Err(unavailable(e)),
                Ok(Outcome::Booked(reservation)) => {
                    return Ok(Booked {
                        reservation,
                        replayed: false,
                    });
                }
                Ok(Outcome::Replayed(reservation)) => {
                    return Ok(Booked {
                        reservation,
                        replayed: true,
                    });
                }
                Ok(Outcome::Refused(e)) => return Err(e),
            }
        }
    }

    async fn cancel(&self, user: UserId, id: ReservationId) -> Result<Reservation, TicketError> {
        let now = millis(self.clock.now());
        let today = today(self.clock.now(), self.offset);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match &self.pool {
                SqlPool::Sqlite(pool) => {
                    statements::sqlite::cancel(pool, user, id, now, today).await
                }
                SqlPool::MySql(pool) => statements::mysql::cancel(pool, user, id, now, today).await,
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => continue,
                Err(e) => return Err(unavailable(e)),
                Ok(result) => return result,
            }
        }
    }

    async fn reservation(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<Reservation, TicketError> {
        match &self.pool {
            SqlPool::Sqlite(pool) => statements::sqlite::reservation(pool, user, id).await,
            SqlPool::MySql(pool) => statements::mysql::reservation(pool, user, id).await,
        }
        .map_err(unavailable)?
        .ok_or(TicketError::ReservationNotFound)
    }

    async fn reservations(
        &self,
        user: UserId,
        window: Window,
    ) -> Result<ReservationPage, TicketError> {
        let limit = i64::from(window.limit) + 1;
        let rows = match &self.pool {
            SqlPool::Sqlite(pool) => {
                statements::sqlite::reservations(pool, user, window.bound(), limit).await
            }
            SqlPool::MySql(pool) => {
                statements::mysql::reservations(pool, user, window.bound(), limit).await
            }
        }
        .map_err(unavailable)?;
        Ok(window.page(rows))
    }
}
