//! SQLite and MySQL/MariaDB (feature `sql`).
//!
//! Every booking runs in one transaction that first takes the lock on the day's `ticket_days`
//! row, then checks the idempotency key, the user's holdings and the stock, and writes. All
//! writers of a day's reservations hold that row lock, so the per-user cap is as atomic as the
//! stock. Two ways to take it ([`Strategy`]):
//!
//! - `RowLock`: `SELECT … FOR UPDATE`, then `UPDATE`;
//! - `ConditionalUpdate`: `UPDATE … SET remaining = remaining - q WHERE remaining >= q` first (no
//!   separate read), undone by the rollback when a later check refuses.
//!
//! - `GroupCommit`: the row lock, but concurrent bookings of one day on this node are queued and
//!   booked together, one transaction and one commit for up to [`GROUP_MAX`] of them (each still
//!   checked on its own, seeing the ones before it). On one hot day every booking waits for the
//!   previous commit's log flush anyway; sharing the flush is what lifts the ceiling.
//!
//! On SQLite all run in a `BEGIN IMMEDIATE` transaction (SQLite has one writer at a time).

mod statements;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::FixedOffset;
use engine_clock::{Clock, SystemClock};
#[cfg(feature = "mysql")]
use sqlx::MySqlPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::model::{millis, today};
use chrono::NaiveDate;

use crate::{
    Booked, Booking, FestivalId, Inventory, NewInventory, Reservation, ReservationId,
    ReservationPage, TicketEngine, TicketError, UserId, Window,
};

/// Where this crate records its applied migrations: a table of its own, so a host application's
/// migrations (and other libraries') on the same database never meet its versions.
pub const MIGRATIONS_TABLE: &str = "_ticket_lock_migrations";

/// Which database.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    MySql(MySqlPool),
}

/// How a booking takes the day's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `SELECT … FOR UPDATE`, check, `UPDATE`.
    #[default]
    RowLock,
    /// One conditional `UPDATE` that checks and takes the stock.
    ConditionalUpdate,
    /// The row lock, with a day's concurrent bookings on this node booked in one transaction.
    GroupCommit,
}

/// Most bookings in one group-commit transaction.
pub const GROUP_MAX: usize = 64;

type Reply = tokio::sync::oneshot::Sender<Result<Option<Outcome>, TicketError>>;

/// A festival day's queue of bookings waiting for the next group transaction.
#[derive(Debug, Default)]
struct DayQueue {
    waiting: Vec<(Booking, Reply)>,
    /// A worker is booking this day's queue right now.
    busy: bool,
}

type Queues = Arc<std::sync::Mutex<HashMap<(FestivalId, NaiveDate), DayQueue>>>;

/// Tickets in a SQL database. Create it, then [`migrate`](Self::migrate) once at start.
#[derive(Debug, Clone)]
pub struct SqlTickets {
    pool: SqlPool,
    strategy: Strategy,
    clock: Arc<dyn Clock>,
    offset: FixedOffset,
    queues: Queues,
}

/// What a booking transaction concluded, before mapping to the public result.
#[derive(Debug)]
pub(crate) enum Outcome {
    Booked(Reservation),
    Replayed(Reservation),
    Refused(TicketError),
}

fn unavailable(e: sqlx::Error) -> TicketError {
    TicketError::unavailable("sql", e)
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
    /// Tickets over `pool` with the given strategy, on the system clock; days end at midnight
    /// UTC unless [`with_day_offset`](Self::with_day_offset) says otherwise.
    pub fn new(pool: SqlPool, strategy: Strategy) -> Self {
        Self {
            pool,
            strategy,
            clock: Arc::new(SystemClock),
            offset: FixedOffset::east_opt(0).expect("UTC"),
            queues: Queues::default(),
        }
    }

    /// Reads the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Days (the "today" before which a day is past) end at midnight in `offset`, e.g.
    /// [`crate::kst`].
    #[must_use]
    pub fn with_day_offset(mut self, offset: FixedOffset) -> Self {
        self.offset = offset;
        self
    }

    /// Creates or updates the tables, recording the versions in [`MIGRATIONS_TABLE`].
    pub async fn migrate(&self) -> Result<(), TicketError> {
        let result = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => {
                owned_migrations::sqlite(
                    pool,
                    sqlx::migrate!("./migrations/sqlite"),
                    MIGRATIONS_TABLE,
                )
                .await
            }
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => {
                owned_migrations::mysql(
                    pool,
                    sqlx::migrate!("./migrations/mysql"),
                    MIGRATIONS_TABLE,
                )
                .await
            }
        };
        result.map_err(|e| TicketError::unavailable("sql migrations", e))
    }
}

fn booked(outcome: Outcome) -> Result<Booked, TicketError> {
    match outcome {
        Outcome::Booked(reservation) => Ok(Booked {
            reservation,
            replayed: false,
        }),
        Outcome::Replayed(reservation) => Ok(Booked {
            reservation,
            replayed: true,
        }),
        Outcome::Refused(e) => Err(e),
    }
}

impl SqlTickets {
    /// Queues `booking` for its day's next group transaction, starting a worker for the day if
    /// none runs. The worker is a task of its own, so a caller that gives up waiting (a client
    /// that disconnects) never strands the queue; it ends when the queue is empty.
    fn enqueue(
        &self,
        booking: Booking,
    ) -> tokio::sync::oneshot::Receiver<Result<Option<Outcome>, TicketError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let day = (booking.festival, booking.date);
        let start = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let queue = queues.entry(day).or_default();
            queue.waiting.push((booking, reply));
            !std::mem::replace(&mut queue.busy, true)
        };
        if start {
            let engine = self.clone();
            tokio::spawn(async move { engine.work(day).await });
        }
        answer
    }

    async fn work(&self, day: (FestivalId, NaiveDate)) {
        loop {
            let group: Vec<(Booking, Reply)> = {
                let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                let Some(queue) = queues.get_mut(&day) else {
                    return;
                };
                if queue.waiting.is_empty() {
                    queues.remove(&day);
                    return;
                }
                let n = queue.waiting.len().min(GROUP_MAX);
                queue.waiting.drain(..n).collect()
            };
            let bookings: Vec<Booking> = group.iter().map(|(b, _)| b.clone()).collect();
            let now = millis(self.clock.now());
            let today = today(self.clock.now(), self.offset);
            let mut attempt = 0;
            let result = loop {
                attempt += 1;
                let result = match &self.pool {
                    #[cfg(feature = "sqlite")]
                    SqlPool::Sqlite(pool) => {
                        statements::sqlite::reserve_batch(pool, &bookings, now, today).await
                    }
                    #[cfg(feature = "mysql")]
                    SqlPool::MySql(pool) => {
                        statements::mysql::reserve_batch(pool, &bookings, now, today).await
                    }
                };
                match result {
                    Err(e) if is_retryable(&e) && attempt < ATTEMPTS => continue,
                    other => break other,
                }
            };
            match result {
                Ok(outcomes) => {
                    for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (_, reply) in group {
                        let _ = reply.send(Err(TicketError::unavailable("sql", message.clone())));
                    }
                }
            }
        }
    }
}

#[async_trait]
impl TicketEngine for SqlTickets {
    async fn create_inventory(&self, new: NewInventory) -> Result<Inventory, TicketError> {
        new.validate()?;
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::create_inventory(pool, &new).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::create_inventory(pool, &new).await,
        }
        .map_err(unavailable)?;
        self.inventory(new.festival).await
    }

    async fn inventory(&self, festival: FestivalId) -> Result<Inventory, TicketError> {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::inventory(pool, festival).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::inventory(pool, festival).await,
        }
        .map_err(unavailable)?
        .ok_or(TicketError::NotFound)
    }

    async fn reserve(&self, booking: Booking) -> Result<Booked, TicketError> {
        booking.validate()?;
        if self.strategy == Strategy::GroupCommit {
            let reply = self.enqueue(booking.clone());
            match reply.await {
                Ok(Ok(Some(outcome))) => return booked(outcome),
                Ok(Err(e)) => return Err(e),
                // Lost an idempotency race, or the worker went away: book it on its own.
                Ok(Ok(None)) | Err(_) => {}
            }
        }
        let now = millis(self.clock.now());
        let today = today(self.clock.now(), self.offset);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match (&self.pool, self.strategy) {
                #[cfg(feature = "sqlite")]
                (SqlPool::Sqlite(pool), Strategy::ConditionalUpdate) => {
                    statements::sqlite::reserve_conditional(pool, &booking, now, today)
                        .await
                        .map(Some)
                }
                #[cfg(feature = "mysql")]
                (SqlPool::MySql(pool), Strategy::ConditionalUpdate) => {
                    statements::mysql::reserve_conditional(pool, &booking, now, today)
                        .await
                        .map(Some)
                }
                #[cfg(feature = "sqlite")]
                (SqlPool::Sqlite(pool), _) => statements::sqlite::reserve_batch(
                    pool,
                    std::slice::from_ref(&booking),
                    now,
                    today,
                )
                .await
                .map(|mut outcomes| outcomes.pop().flatten()),
                #[cfg(feature = "mysql")]
                (SqlPool::MySql(pool), _) => statements::mysql::reserve_batch(
                    pool,
                    std::slice::from_ref(&booking),
                    now,
                    today,
                )
                .await
                .map(|mut outcomes| outcomes.pop().flatten()),
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => continue,
                Err(e) => return Err(unavailable(e)),
                // Lost an idempotency-key race: the next attempt finds the winner's booking.
                Ok(None) if attempt < ATTEMPTS => continue,
                Ok(None) => {
                    return Err(TicketError::unavailable(
                        "sql",
                        "idempotency key kept conflicting",
                    ));
                }
                Ok(Some(outcome)) => return booked(outcome),
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
                #[cfg(feature = "sqlite")]
                SqlPool::Sqlite(pool) => {
                    statements::sqlite::cancel(pool, user, id, now, today).await
                }
                #[cfg(feature = "mysql")]
                SqlPool::MySql(pool) => statements::mysql::cancel(pool, user, id, now, today).await,
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => continue,
                Err(e) => return Err(unavailable(e)),
                Ok(result) => return result,
            }
        }
    }

    async fn reservation_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<Reservation>, TicketError> {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::reservation_by_key(pool, user, key).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::reservation_by_key(pool, user, key).await,
        }
        .map_err(unavailable)
    }

    async fn reservation(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<Reservation, TicketError> {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::reservation(pool, user, id).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::reservation(pool, user, id).await,
        }
        .map_err(unavailable)?
        .ok_or(TicketError::ReservationNotFound)
    }

    async fn held(
        &self,
        user: UserId,
        festival: FestivalId,
        date: NaiveDate,
    ) -> Result<u32, TicketError> {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::held(pool, user, festival, date).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::held(pool, user, festival, date).await,
        }
        .map_err(unavailable)
    }

    async fn reservation_by_id(&self, id: ReservationId) -> Result<Reservation, TicketError> {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::reservation_by_id(pool, id).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::reservation_by_id(pool, id).await,
        }
        .map_err(unavailable)?
        .ok_or(TicketError::ReservationNotFound)
    }

    async fn day_reservations(
        &self,
        festival: FestivalId,
        date: NaiveDate,
        after: ReservationId,
        limit: u32,
    ) -> Result<Vec<Reservation>, TicketError> {
        let limit = i64::from(limit);
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => {
                statements::sqlite::day_reservations(pool, festival, date, after, limit).await
            }
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => {
                statements::mysql::day_reservations(pool, festival, date, after, limit).await
            }
        }
        .map_err(unavailable)
    }

    async fn active_from(
        &self,
        from: NaiveDate,
        after: ReservationId,
        limit: u32,
    ) -> Result<Vec<Reservation>, TicketError> {
        let limit = i64::from(limit);
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => {
                statements::sqlite::active_from(pool, from, after, limit).await
            }
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::active_from(pool, from, after, limit).await,
        }
        .map_err(unavailable)
    }

    async fn reservations(
        &self,
        user: UserId,
        window: Window,
    ) -> Result<ReservationPage, TicketError> {
        let limit = i64::from(window.limit) + 1;
        let rows = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => {
                statements::sqlite::reservations(pool, user, window.bound(), limit).await
            }
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => {
                statements::mysql::reservations(pool, user, window.bound(), limit).await
            }
        }
        .map_err(unavailable)?;
        Ok(window.page(rows))
    }
}
