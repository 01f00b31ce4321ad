//! SQLite and MySQL/MariaDB (feature `sql`): table `chat_messages`, primary key
//! `(chat_room_id, send_time)`.
//!
//! An append is one `INSERT … SELECT … WHERE NOT EXISTS (a message at or after that time)` at the
//! time [`Draft::send_time_after`] gives for the latest `sendTime` this store wrote in the room
//! (cached, so the common case is one statement). If a later message exists (another writer, a
//! restart with an empty cache) nothing is inserted, and it reads the room's maximum and tries
//! again; a taken `seq` (unique per room) means the draft was stored before.

use async_trait::async_trait;
#[cfg(feature = "mysql")]
use sqlx::MySqlPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::{LatestCache, MessageStore, check_limit};
use crate::{Appended, ChatError, ChatMessage, Draft, HistoryPage, Result, RoomId};

/// Where this crate records its applied migrations: a table of its own, so a host application's
/// migrations (and other libraries') on the same database never meet its versions.
pub const MIGRATIONS_TABLE: &str = "_chat_relay_migrations";

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

/// Messages in a SQL database. Call [`migrate`](Self::migrate) once at start.
#[derive(Debug)]
pub struct SqlStore {
    pool: SqlPool,
    latest: LatestCache,
}

const ATTEMPTS: usize = 16;

/// What one insert attempt found.
enum Insert {
    Stored,
    /// A message at or after this time exists: the cached latest was stale.
    Later,
    /// The time or the `seq` is taken.
    Taken,
    /// A deadlock or serialisation failure: try again.
    Retry,
}

fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ChatError {
    ChatError::unavailable("sql", e)
}

fn message(row: &impl SqlRow) -> Result<ChatMessage> {
    row.message().map_err(unavailable)
}

trait SqlRow {
    fn message(&self) -> Result<ChatMessage, sqlx::Error>;
}

macro_rules! impl_row {
    ($row:ty) => {
        impl SqlRow for $row {
            fn message(&self) -> Result<ChatMessage, sqlx::Error> {
                Ok(ChatMessage {
                    chat_room_id: self.try_get("chat_room_id")?,
                    send_time: self.try_get("send_time")?,
                    sender_id: self.try_get("sender_id")?,
                    sender_name: self.try_get("sender_name")?,
                    content: self.try_get("content")?,
                })
            }
        }
    };
}
#[cfg(feature = "sqlite")]
impl_row!(sqlx::sqlite::SqliteRow);
#[cfg(feature = "mysql")]
impl_row!(sqlx::mysql::MySqlRow);

const INSERT: &str = "INSERT INTO chat_messages (chat_room_id, send_time, seq, sender_id, sender_name, content) \
    SELECT ?, ?, ?, ?, ?, ? FROM (SELECT 1) AS one \
    WHERE NOT EXISTS (SELECT 1 FROM chat_messages WHERE chat_room_id = ? AND send_time >= ?)";
const BY_SEQ: &str = "SELECT chat_room_id, send_time, sender_id, sender_name, content FROM chat_messages WHERE chat_room_id = ? AND seq = ?";
const LATEST: &str = "SELECT MAX(send_time) FROM chat_messages WHERE chat_room_id = ?";
const HISTORY: &str = "SELECT chat_room_id, send_time, sender_id, sender_name, content FROM chat_messages WHERE chat_room_id = ? AND send_time < ? ORDER BY send_time DESC LIMIT ?";
const AFTER: &str = "SELECT chat_room_id, send_time, sender_id, sender_name, content FROM chat_messages WHERE chat_room_id = ? AND send_time > ? ORDER BY send_time LIMIT ?";

/// Runs the same query text on either pool and maps rows with `message`.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite($p) => $body,
            #[cfg(feature = "mysql")]
            SqlPool::MySql($p) => $body,
        }
    };
}

impl SqlStore {
    /// A store over `pool`.
    pub fn new(pool: SqlPool) -> Self {
        Self {
            pool,
            latest: LatestCache::default(),
        }
    }

    /// Creates the table if needed, recording the versions in [`MIGRATIONS_TABLE`].
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
        result.map_err(unavailable)
    }

    async fn latest_in(&self, room: RoomId) -> Result<Option<i64>> {
        on_pool!(&self.pool, |pool| sqlx::query_scalar::<_, Option<i64>>(
            LATEST
        )
        .bind(room)
        .fetch_one(pool)
        .await
        .map_err(unavailable))
    }

    async fn insert(&self, message: &ChatMessage, seq: Option<i64>) -> Result<Insert> {
        let result = on_pool!(&self.pool, |pool| sqlx::query(INSERT)
            .bind(message.chat_room_id)
            .bind(message.send_time)
            .bind(seq)
            .bind(message.sender_id)
            .bind(&message.sender_name)
            .bind(&message.content)
            .bind(message.chat_room_id)
            .bind(message.send_time)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()));
        match result {
            Ok(1) => Ok(Insert::Stored),
            Ok(_) => Ok(Insert::Later),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(Insert::Taken),
            Err(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("40001" | "1213" | "40P01")) =>
            {
                Ok(Insert::Retry)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn by_seq(&self, room: RoomId, seq: i64) -> Result<Option<ChatMessage>> {
        on_pool!(&self.pool, |pool| {
            let row = sqlx::query(BY_SEQ)
                .bind(room)
                .bind(seq)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?;
            row.as_ref().map(message).transpose()
        })
    }
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn append(&self, draft: &Draft) -> Result<Appended> {
        let room = draft.chat_room_id;
        let mut latest = self.latest.get(room);
        for _ in 0..ATTEMPTS {
            let message = draft.stored_at(draft.send_time_after(latest));
            match self.insert(&message, draft.seq).await? {
                Insert::Stored => {
                    self.latest.set(room, message.send_time);
                    return Ok(Appended::Stored(message));
                }
                Insert::Taken => {
                    if let Some(seq) = draft.seq
                        && let Some(earlier) = self.by_seq(room, seq).await?
                    {
                        return Ok(Appended::Duplicate(Some(earlier)));
                    }
                }
                Insert::Later | Insert::Retry => {}
            }
            self.latest.forget(room);
            latest = self.latest_in(room).await?;
        }
        Err(unavailable(format!(
            "room {room}: no free sendTime after {ATTEMPTS} attempts"
        )))
    }

    async fn history(
        &self,
        room: RoomId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<HistoryPage> {
        check_limit(limit)?;
        let before = before.unwrap_or(i64::MAX);
        let messages = on_pool!(&self.pool, |pool| {
            let rows = sqlx::query(HISTORY)
                .bind(room)
                .bind(before)
                .bind(limit as i64)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            rows.iter().map(message).collect::<Result<Vec<_>>>()?
        });
        Ok(HistoryPage::from_newest_first(messages, limit))
    }

    async fn after(&self, room: RoomId, after: i64, limit: usize) -> Result<Vec<ChatMessage>> {
        check_limit(limit)?;
        on_pool!(&self.pool, |pool| {
            let rows = sqlx::query(AFTER)
                .bind(room)
                .bind(after)
                .bind(limit as i64)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            rows.iter().map(message).collect()
        })
    }
}
