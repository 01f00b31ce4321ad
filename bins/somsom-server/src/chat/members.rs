//! The `chat_room_members` table: who joined which room (room id = festival id). It is the one
//! record of membership: the chat engine reads it through [`TableMembers`] when it counts a
//! message unread, and nothing else keeps a copy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use chat_relay::{RoomId, UserId};

use crate::db::{Database, on_db};

/// Adds a membership; `false` if it existed.
pub async fn join(
    db: &Database,
    room: RoomId,
    user: UserId,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = match db {
        Database::Sqlite(_) => {
            "INSERT OR IGNORE INTO chat_room_members (chat_room_id, user_id, joined_at) VALUES (?, ?, ?)"
        }
        Database::MySql(_) => {
            "INSERT IGNORE INTO chat_room_members (chat_room_id, user_id, joined_at) VALUES (?, ?, ?)"
        }
    };
    let done = on_db!(db, pool => sqlx::query(sql).bind(room).bind(user).bind(now).execute(pool).await?.rows_affected());
    Ok(done > 0)
}

/// Ends a membership and records the leave for every node (see [`leaves_since`]); `false` if
/// there was no membership.
pub async fn leave(
    db: &Database,
    room: RoomId,
    user: UserId,
    now: i64,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "DELETE FROM chat_room_members WHERE chat_room_id = ? AND user_id = ?";
    const LOG: &str =
        "INSERT INTO chat_member_leaves (chat_room_id, user_id, left_at) VALUES (?, ?, ?)";
    let done = on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let done = sqlx::query(SQL).bind(room).bind(user).execute(&mut *tx).await?.rows_affected();
        if done > 0 {
            sqlx::query(LOG).bind(room).bind(user).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        done
    });
    Ok(done > 0)
}

/// One recorded leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Leave {
    /// Its number.
    pub id: i64,
    /// The room.
    pub chat_room_id: RoomId,
    /// Who left.
    pub user_id: UserId,
    /// When (epoch ms).
    pub left_at: i64,
}

/// Leaves recorded at or after `since` (epoch ms), oldest first, and forgets those older than
/// `forget_before`.
pub async fn leaves_since(
    db: &Database,
    since: i64,
    forget_before: i64,
) -> Result<Vec<Leave>, sqlx::Error> {
    const FORGET: &str = "DELETE FROM chat_member_leaves WHERE left_at < ?";
    const SQL: &str = "SELECT id, chat_room_id, user_id, left_at FROM chat_member_leaves \
                       WHERE left_at >= ? ORDER BY left_at, id LIMIT 10000";
    on_db!(db, pool => sqlx::query(FORGET).bind(forget_before).execute(pool).await.map(drop))?;
    on_db!(db, pool => sqlx::query_as(SQL).bind(since).fetch_all(pool).await)
}

/// Whether `user` joined `room`.
pub async fn is_member(db: &Database, room: RoomId, user: UserId) -> Result<bool, sqlx::Error> {
    const SQL: &str =
        "SELECT COUNT(*) FROM chat_room_members WHERE chat_room_id = ? AND user_id = ?";
    let count: i64 =
        on_db!(db, pool => sqlx::query_scalar(SQL).bind(room).bind(user).fetch_one(pool).await?);
    Ok(count > 0)
}

/// The rooms `user` joined, most recently joined first.
pub async fn rooms_of(db: &Database, user: UserId) -> Result<Vec<RoomId>, sqlx::Error> {
    const SQL: &str = "SELECT chat_room_id FROM chat_room_members WHERE user_id = ? ORDER BY joined_at DESC, chat_room_id DESC";
    on_db!(db, pool => sqlx::query_scalar(SQL).bind(user).fetch_all(pool).await)
}

/// Members per room, for `rooms`.
pub async fn counts(db: &Database, rooms: &[RoomId]) -> Result<HashMap<RoomId, i64>, sqlx::Error> {
    let mut counts = HashMap::new();
    for room in rooms {
        const SQL: &str = "SELECT COUNT(*) FROM chat_room_members WHERE chat_room_id = ?";
        let count: i64 =
            on_db!(db, pool => sqlx::query_scalar(SQL).bind(room).fetch_one(pool).await?);
        counts.insert(*room, count);
    }
    Ok(counts)
}

/// The members of `room`.
pub async fn of(db: &Database, room: RoomId) -> Result<Vec<UserId>, sqlx::Error> {
    const SQL: &str = "SELECT user_id FROM chat_room_members WHERE chat_room_id = ?";
    on_db!(db, pool => sqlx::query_scalar(SQL).bind(room).fetch_all(pool).await)
}

/// How long a room's member list is reused for counting unread messages. A join or leave on
/// this node is seen at once; one on another node within this long (until then a new member's
/// unread count misses those messages, and a member who left may get one counted and then
/// forgotten).
const MEMBERS_FOR: Duration = Duration::from_secs(1);

/// The table, read by the chat engine: one query per room and second at most, however many
/// messages the room gets.
#[derive(Debug, Clone)]
pub struct TableMembers {
    db: Database,
    recent: moka::future::Cache<RoomId, Arc<[UserId]>>,
}

impl TableMembers {
    /// Members read from `db`.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            recent: moka::future::Cache::builder()
                .time_to_live(MEMBERS_FOR)
                .max_capacity(10_000)
                .build(),
        }
    }

    /// Forgets what was read about `room` (its membership changed here).
    pub async fn changed(&self, room: RoomId) {
        self.recent.invalidate(&room).await;
    }
}

#[async_trait]
impl chat_relay::Members for TableMembers {
    async fn of(&self, room: RoomId) -> chat_relay::Result<Arc<[UserId]>> {
        self.recent
            .try_get_with(room, async {
                of(&self.db, room).await.map(Arc::<[UserId]>::from)
            })
            .await
            .map_err(|e| chat_relay::ChatError::unavailable("database", e))
    }
}
