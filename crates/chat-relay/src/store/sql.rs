//! SQLite and MySQL/MariaDB (feature `sql`): table `chat_messages`, primary key
//! `(chat_room_id, send_time)`.
//!
//! An append is one `INSERT … SELECT … WHERE NOT EXISTS (a message at or after that time)` at the
//! time [`Draft::send_time_after`] gives for the latest `sendTime` this store wrote in the room
//! (cached, so the common case is one statement). If a later message exists (another writer, a
//! restart with an empty cache) nothing is inserted, and it reads the room's maximum and tries
//! again; a taken `seq` (unique per room) means the draft was stored before.
//!
//! [`append_all`](MessageStore::append_all) writes up to [`BATCH_MAX`] drafts of one room in one
//! such statement, its `NOT EXISTS` guarding the whole batch; if anything stops it (a later
//! message, a taken `seq`), nothing was written and the drafts go one by one as above.

use async_trait::async_trait;
use sqlx::{MySqlPool, Row, SqlitePool};

use super::{LatestCache, MessageStore, check_limit};
use crate::{Appended, ChatError, ChatMessage, Draft, HistoryPage, Result, RoomId};

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

const ATTEMPTS: usize = 16;

/// Most drafts one batch statement writes. Each size is its own prepared statement, so this
/// also bounds how many of them a connection keeps.
pub const BATCH_MAX: usize = 32;

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
impl_row!(sqlx::sqlite::SqliteRow);
impl_row!(sqlx::mysql::MySqlRow);

const INSERT: &str = "INSERT INTO chat_messages (chat_room_id, send_time, seq, sender_id, sender_name, content) \
    SELECT ?, ?, ?, ?, ?, ? FROM (SELECT 1) AS one \
    WHERE NOT EXISTS (SELECT 1 FROM chat_messages WHERE chat_room_id = ? AND send_time >= ?)";
/// [`INSERT`] for 1..=[`BATCH_MAX`] rows.
fn insert_sql(rows: usize) -> &'static str {
    static BATCHES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    if rows == 1 {
        return INSERT;
    }
    let batches = BATCHES.get_or_init(|| (2..=BATCH_MAX).map(insert_batch).collect());
    &batches[rows - 2]
}

/// [`INSERT`] for `rows` drafts: a derived table of their values, all inserted or none.
fn insert_batch(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO chat_messages (chat_room_id, send_time, seq, sender_id, sender_name, content) \
         SELECT * FROM (SELECT ? AS chat_room_id, ? AS send_time, ? AS seq, ? AS sender_id, \
         ? AS sender_name, ? AS content",
    );
    for _ in 1..rows {
        sql.push_str(" UNION ALL SELECT ?, ?, ?, ?, ?, ?");
    }
    sql.push_str(
        ") AS batch WHERE NOT EXISTS \
         (SELECT 1 FROM chat_messages WHERE chat_room_id = ? AND send_time >= ?)",
    );
    sql
}

const BY_SEQ: &str = "SELECT chat_room_id, send_time, sender_id, sender_name, content FROM chat_messages WHERE chat_room_id = ? AND seq = ?";
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

    /// Inserts `messages` (with their drafts' `seq`s), all of one room, in one statement.
    async fn insert(&self, messages: &[(ChatMessage, Option<i64>)]) -> Result<Insert> {
        let sql = insert_sql(messages.len());
        let (first, _) = &messages[0];
        let result = on_pool!(&self.pool, |pool| {
            let mut query = sqlx::query(sql);
            for (message, seq) in messages {
                query = query
                    .bind(message.chat_room_id)
                    .bind(message.send_time)
                    .bind(*seq)
                    .bind(message.sender_id)
                    .bind(&message.sender_name)
                    .bind(&message.content);
            }
            query
                .bind(first.chat_room_id)
                .bind(first.send_time)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        match result {
            Ok(n) if n == messages.len() as u64 => Ok(Insert::Stored),
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

    /// One batch of drafts of one room in one statement: `None` if it wrote nothing and the
    /// drafts should go one by one.
    async fn append_batch(&self, drafts: &[Draft]) -> Result<Option<Vec<Appended>>> {
        let room = drafts[0].chat_room_id;
        let mut latest = match self.latest.get(room) {
            Some(latest) => Some(latest),
            None => self.latest_in(room).await?,
        };
        let messages: Vec<_> = drafts
            .iter()
            .map(|draft| {
                let message = draft.stored_at(draft.send_time_after(latest));
                latest = Some(message.send_time);
                (message, draft.seq)
            })
            .collect();
        match self.insert(&messages).await? {
            Insert::Stored => {
                if let Some(latest) = latest {
                    self.latest.set(room, latest);
                }
                Ok(Some(
                    messages
                        .into_iter()
                        .map(|(message, _)| Appended::Stored(message))
                        .collect(),
                ))
            }
            Insert::Later | Insert::Taken | Insert::Retry => {
                self.latest.forget(room);
                Ok(None)
            }
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
            let row = [(draft.stored_at(draft.send_time_after(latest)), draft.seq)];
            match self.insert(&row).await? {
                Insert::Stored => {
                    let [(message, _)] = row;
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

    async fn append_all(&self, drafts: &[Draft]) -> Vec<Result<Appended>> {
        let mut results = Vec::with_capacity(drafts.len());
        for room in drafts.chunk_by(|a, b| a.chat_room_id == b.chat_room_id) {
            for batch in room.chunks(BATCH_MAX) {
                if batch.len() > 1 {
                    match self.append_batch(batch).await {
                        Ok(Some(appended)) => {
                            results.extend(appended.into_iter().map(Ok));
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            results.push(Err(e));
                            return results;
                        }
                    }
                }
                for draft in batch {
                    let result = self.append(draft).await;
                    let failed = result.is_err();
                    results.push(result);
                    if failed {
                        return results;
                    }
                }
            }
        }
        results
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

#[cfg(test)]
mod tests {
    use test_support::mysql::TestDatabase;
    use test_support::{MYSQL, require_service};

    use super::*;
    use crate::conformance::{draft, fresh_rooms};

    /// The batch statement itself, not its one-by-one fallback: it writes every row at once,
    /// and nothing when a later message is in the way.
    async fn a_batch_is_one_statement(store: &SqlStore) {
        store.migrate().await.unwrap();
        let room = fresh_rooms();
        let drafts: Vec<_> = (0..BATCH_MAX)
            .map(|i| draft(room, 1, &format!("m{i}"), 100))
            .collect();
        let written = store.append_batch(&drafts).await.unwrap();
        let times: Vec<_> = written
            .expect("written by the batch statement")
            .into_iter()
            .map(|appended| appended.message().unwrap().send_time)
            .collect();
        assert_eq!(times, (100..100 + BATCH_MAX as i64).collect::<Vec<_>>());

        // Another node writes far ahead; this handle's cache does not know.
        let other = SqlStore::new(store.pool.clone());
        let ahead = other.append(&draft(room, 2, "ahead", 5_000)).await.unwrap();
        let late = [draft(room, 1, "x", 200), draft(room, 1, "y", 200)];
        assert_eq!(
            store.append_batch(&late).await.unwrap(),
            None,
            "nothing written"
        );
        let page = store.history(room, None, 2).await.unwrap();
        assert_eq!(page.messages[0], ahead.message().unwrap());
        assert_eq!(page.messages[1].send_time, 100 + BATCH_MAX as i64 - 1);
        // Knowing the latest again, the next batch goes through after it.
        let again = store.append_batch(&late).await.unwrap().expect("written");
        let times: Vec<_> = again
            .into_iter()
            .map(|a| a.message().unwrap().send_time)
            .collect();
        assert_eq!(times, [5_001, 5_002]);
    }

    #[tokio::test]
    async fn sqlite_writes_a_batch_in_one_statement() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        a_batch_is_one_statement(&SqlStore::new(SqlPool::Sqlite(pool))).await;
    }

    #[tokio::test]
    async fn mysql_writes_a_batch_in_one_statement() {
        let url = require_service!(MYSQL);
        let db = TestDatabase::create(&url).await.unwrap();
        let pool = sqlx::MySqlPool::connect(db.url()).await.unwrap();
        a_batch_is_one_statement(&SqlStore::new(SqlPool::MySql(pool))).await;
        db.drop_database().await.unwrap();
    }
}
