//! SQLite and MySQL/MariaDB (feature `sql`): the registry (`push_devices`), the plan and its
//! due source (`push_reminders`), and the ledger (`push_deliveries`, `push_inbox`).
//!
//! A claim is one transaction: select due rows (`FOR UPDATE SKIP LOCKED` on MySQL, so nodes
//! claiming at once take different rows; SQLite has one writer), then stamp them with a fresh
//! lease id and the lease's end as their next available time. Finishing or retrying names the
//! lease, so a claim that ran out and was taken over cannot be finished by its first holder.
//! Tokens are keyed by their SHA-256 (they run to 4 KiB, longer than an index key may be).

mod statements;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine_clock::{Clock, SystemClock};
#[cfg(feature = "mysql")]
use sqlx::MySqlPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::{
    Begin, Claimed, DeliveryId, Device, DeviceRegistry, DueSource, Finish, Ledger, Notification,
    PushError, Reminder, ReminderKey, Result, Scheduler, UserId,
};

/// Where this crate records its applied migrations: a table of its own, so a host application's
/// migrations (and other libraries') on the same database never meet its versions.
pub const MIGRATIONS_TABLE: &str = "_push_notify_migrations";

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

/// Registry, schedule, due source and ledger over one database. Call
/// [`migrate`](Self::migrate) once at start.
#[derive(Debug, Clone)]
pub struct SqlPush {
    pool: SqlPool,
    clock: Arc<dyn Clock>,
    max_devices: usize,
}

fn unavailable(e: sqlx::Error) -> PushError {
    PushError::unavailable("sql", e)
}

/// A deadlock victim (MySQL): run the transaction again.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"))
}

const ATTEMPTS: usize = 5;

pub(crate) fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_lease() -> String {
    use rand::Rng;
    format!("{:032x}", rand::thread_rng().r#gen::<u128>())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

macro_rules! on_pool {
    ($self:ident, |$m:ident, $p:ident| $body:expr) => {
        match &$self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite($p) => {
                use statements::sqlite as $m;
                $body
            }
            #[cfg(feature = "mysql")]
            SqlPool::MySql($p) => {
                use statements::mysql as $m;
                $body
            }
        }
    };
}

/// Runs a transaction again when MySQL picks it as a deadlock victim.
macro_rules! retrying {
    ($body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            match $body {
                Err(e) if attempt < ATTEMPTS && is_retryable(&e) => continue,
                other => break other.map_err(unavailable),
            }
        }
    }};
}

impl SqlPush {
    /// Over `pool`, on the system clock.
    pub fn new(pool: SqlPool) -> Self {
        Self {
            pool,
            clock: Arc::new(SystemClock),
            max_devices: crate::MAX_DEVICES_PER_USER,
        }
    }

    /// Reads due times from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps at most `max` devices per user (the newest); see [`crate::MAX_DEVICES_PER_USER`].
    #[must_use]
    pub fn with_max_devices(mut self, max: usize) -> Self {
        self.max_devices = max.max(1);
        self
    }

    /// Creates or updates the tables, recording the versions in [`MIGRATIONS_TABLE`].
    pub async fn migrate(&self) -> Result<()> {
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
        result.map_err(|e| PushError::unavailable("sql", format!("migration failed: {e}")))
    }

    /// How many reminders are in each state (`pending`, `delivered`, `dropped`, `failed`).
    pub async fn counts(&self) -> Result<Vec<(String, i64)>> {
        on_pool!(self, |m, pool| m::counts(pool).await.map_err(unavailable))
    }

    /// The earliest due time among pending reminders.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let ms = on_pool!(self, |m, pool| m::next_due(pool).await.map_err(unavailable))?;
        Ok(ms.and_then(DateTime::from_timestamp_millis))
    }
}

#[async_trait]
impl DeviceRegistry for SqlPush {
    async fn activate(&self, device: Device) -> Result<()> {
        crate::validate_token(&device.token)?;
        let now = self.clock.now().timestamp_millis();
        on_pool!(self, |m, pool| retrying!(
            m::activate(pool, &device, now).await
        ))?;
        let max = self.max_devices;
        on_pool!(self, |m, pool| retrying!(
            m::prune_devices(pool, device.user, &device.token, max).await
        ))
        .map(drop)
    }

    async fn deactivate(&self, user: UserId, token: &str) -> Result<bool> {
        let now = self.clock.now().timestamp_millis();
        on_pool!(self, |m, pool| retrying!(
            m::deactivate(pool, Some(user), token, now).await
        ))
    }

    async fn forget(&self, token: &str) -> Result<()> {
        let now = self.clock.now().timestamp_millis();
        on_pool!(self, |m, pool| retrying!(
            m::deactivate(pool, None, token, now).await
        ))
        .map(|_| ())
    }

    async fn devices(&self, users: &[UserId]) -> Result<Vec<Device>> {
        on_pool!(self, |m, pool| m::devices(pool, users)
            .await
            .map_err(unavailable))
    }
}

#[async_trait]
impl Scheduler for SqlPush {
    async fn schedule(&self, reminder: &Reminder) -> Result<bool> {
        on_pool!(self, |m, pool| retrying!(m::schedule(pool, reminder).await))
    }

    async fn cancel(&self, key: &ReminderKey) -> Result<bool> {
        on_pool!(self, |m, pool| retrying!(m::cancel(pool, key).await))
    }

    async fn pending(&self, key: &ReminderKey) -> Result<Option<Reminder>> {
        on_pool!(self, |m, pool| m::pending(pool, key)
            .await
            .map_err(unavailable))
    }

    async fn pending_keys(&self, keys: &[ReminderKey]) -> Result<HashSet<ReminderKey>> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        on_pool!(self, |m, pool| m::pending_keys(pool, keys)
            .await
            .map(|found| found.into_iter().collect())
            .map_err(unavailable))
    }
}

#[async_trait]
impl DueSource for SqlPush {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now().timestamp_millis();
        let until = now.saturating_add(millis(lease));
        let id = new_lease();
        on_pool!(self, |m, pool| retrying!(
            m::claim(pool, max, now, until, &id).await
        ))
    }

    async fn finish(&self, done: &[(Claimed, Finish)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        on_pool!(self, |m, pool| retrying!(m::finish(pool, done).await))
    }

    async fn retry(&self, claimed: &Claimed, after: Duration) -> Result<()> {
        let at = self
            .clock
            .now()
            .timestamp_millis()
            .saturating_add(millis(after));
        on_pool!(self, |m, pool| retrying!(m::retry(pool, claimed, at).await))
    }
}

#[async_trait]
impl Ledger for SqlPush {
    async fn begin(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<Begin>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (now, stale) = (now.timestamp_millis(), stale_before.timestamp_millis());
        on_pool!(self, |m, pool| retrying!(
            m::begin(pool, ids, now, stale).await
        ))
    }

    async fn sent(&self, ids: &[DeliveryId], now: DateTime<Utc>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now.timestamp_millis();
        on_pool!(self, |m, pool| retrying!(m::sent(pool, ids, now).await))
    }

    async fn abandon(&self, ids: &[DeliveryId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        on_pool!(self, |m, pool| retrying!(m::abandon(pool, ids).await))
    }

    async fn notified(&self, reminders: &[Reminder], now: DateTime<Utc>) -> Result<()> {
        if reminders.is_empty() {
            return Ok(());
        }
        let now = now.timestamp_millis();
        on_pool!(self, |m, pool| retrying!(
            m::notified(pool, reminders, now).await
        ))
    }

    async fn recent(&self, user: UserId, limit: usize) -> Result<Vec<Notification>> {
        on_pool!(self, |m, pool| m::recent(pool, user, limit)
            .await
            .map_err(unavailable))
    }
}
