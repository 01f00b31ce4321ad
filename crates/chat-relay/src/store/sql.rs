//! SQLite and MySQL/MariaDB (feature `sql`): table `chat_messages`, primary key
//! `(chat_room_id, send_time)`.
//!
//! An append inserts at the time [`Draft::send_time_after`] gives for the latest `sendTime` this
//! store wrote in the room (cached, so the common case is one `INSERT`); if the key is taken
//! (another writer, or a restart with an empty cache) it reads the room's maximum and tries again.

use async_trait::async_trait;
use sqlx::{MySqlPool, Row, SqlitePool};

use super::{LatestCache, MessageStore, check_limit};
use crate::{ChatError, ChatMessage, Draft, HistoryPage, Result, RoomId};

/// Which database.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// MySQL or MariaDB.
    MySql(MySqlPool),
}

/// Messages in a SQL database. Call [`migrate`](Self::migrate) once at start.
#[derive(Debug)]
pub struct SqlStore {
    pool: SqlPool,
    latest: LatestCache,
}

const ATTEMPTS: usize = 8;

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
impl_row!(sqlx::sqlite::SqliteRow);
impl_row!(sqlx::mysql::MySqlRow);

const INSERT: &str = "INSERT INTO chat_messages (chat_room_id, send_time, sender_id, sender_name, content) VALUES (?, ?, ?, ?, ?)";
const LATEST: &str = "SELECT MAX(send_time) FROM chat_messages WHERE chat_room_id = ?";
const HISTORY: &str = "SELECT chat_room_id, send_time, sender_id, sender_name, content FROM chat_messages WHERE chat_room_id = ? AND send_time < ? ORDER BY send_time DESC LIMIT ?";
const AFTER: &str = "SELECT chat_room_id, send_time, sender_id, sender_name, content FROM chat_messages WHERE chat_room_id = ? AND send_time > ? ORDER BY send_time LIMIT ?";

/// Runs the same query text on either pool and maps rows with `message`.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            SqlPool::Sqlite($p) => $body,
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

    /// Creates the table if needed (other crates' migration versions are left alone).
    pub async fn migrate(&self) -> Result<()> {
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

    async fn insert(&self, message: &ChatMessage) -> Result<bool, sqlx::Error> {
        let result = on_pool!(&self.pool, |pool| sqlx::query(INSERT)
            .bind(message.chat_room_id)
            .bind(message.send_time)
            .bind(message.sender_id)
            .bind(&message.sender_name)
            .bind(&message.content)
            .execute(pool)
            .await
            .map(|_| ()));
        match result {
            Ok(()) => Ok(true),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn append(&self, draft: &Draft) -> Result<ChatMessage> {
        let room = draft.chat_room_id;
        let mut latest = self.latest.get(room);
        for _ in 0..ATTEMPTS {
            let message = draft.stored_at(draft.send_time_after(latest));
            if self.insert(&message).await.map_err(unavailable)? {
                self.latest.set(room, message.send_time);
                return Ok(message);
            }
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
