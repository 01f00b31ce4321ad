//! Redis (feature `redis`), in this key layout under a per-deployment prefix:
//!
//! - `{prefix}chatRoom:activeUsers:{room}`: HASH member id → open subscriptions (a plain SET would lose a
//!   second tab's presence when the first closed); expires an hour after the
//!   last entry, so a crashed node's users do not stay present for ever;
//! - `{prefix}chatRoom:unreadCount`: HASH `"{room}:{user}"` → count.
//!
//! Counting a message is one Lua script (the members are its arguments), so members entering
//! meanwhile are either counted or reset, never both.

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use super::Presence;
use crate::{ChatError, Result, RoomId, UserId};

const PRESENCE_TTL_SECS: u64 = 3600;

const COUNT: &str = r"
local out = {}
for i = 2, #ARGV do
  local m = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], m) == 0 then
    out[#out + 1] = m
    out[#out + 1] = redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':' .. m, 1)
  end
end
return out
";

const ENTER: &str = r"
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2] .. ':' .. ARGV[1], 0)
return 1
";

const EXIT: &str = r"
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
";

/// Presence shared by every node through Redis.
#[derive(Clone)]
pub struct RedisPresence {
    redis: ConnectionManager,
    prefix: String,
    count: redis::Script,
    enter: redis::Script,
    exit: redis::Script,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> ChatError {
    ChatError::unavailable("redis", e)
}

impl RedisPresence {
    /// Presence under `prefix` (may be empty).
    pub fn new(redis: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            count: redis::Script::new(COUNT),
            enter: redis::Script::new(ENTER),
            exit: redis::Script::new(EXIT),
        }
    }

    fn active(&self, room: RoomId) -> String {
        format!("{}chatRoom:activeUsers:{room}", self.prefix)
    }

    fn unread_key(&self) -> String {
        format!("{}chatRoom:unreadCount", self.prefix)
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn forget(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut redis = self.redis.clone();
        redis::cmd("HDEL")
            .arg(self.unread_key())
            .arg(format!("{room}:{user}"))
            .query_async::<()>(&mut redis)
            .await
            .map_err(unavailable)
    }

    async fn enter(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut redis = self.redis.clone();
        self.enter
            .key(self.active(room))
            .key(self.unread_key())
            .arg(user.0)
            .arg(room.0)
            .arg(PRESENCE_TTL_SECS)
            .invoke_async::<i64>(&mut redis)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn exit(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut redis = self.redis.clone();
        self.exit
            .key(self.active(room))
            .arg(user.0)
            .invoke_async::<i64>(&mut redis)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn is_present(&self, room: RoomId, user: UserId) -> Result<bool> {
        let mut redis = self.redis.clone();
        redis::cmd("HEXISTS")
            .arg(self.active(room))
            .arg(user.0)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)
    }

    async fn count_message(&self, room: RoomId, members: &[UserId]) -> Result<Vec<(UserId, u64)>> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut redis = self.redis.clone();
        let mut count = self.count.key(self.active(room));
        count.key(self.unread_key()).arg(room.0);
        for member in members {
            count.arg(member.0);
        }
        let flat: Vec<i64> = count.invoke_async(&mut redis).await.map_err(unavailable)?;
        Ok(flat
            .chunks_exact(2)
            .map(|pair| (UserId(pair[0]), pair[1].max(0) as u64))
            .collect())
    }

    async fn unread(&self, user: UserId, rooms: &[RoomId]) -> Result<Vec<Option<u64>>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut redis = self.redis.clone();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.unread_key());
        for room in rooms {
            cmd.arg(format!("{room}:{user}"));
        }
        let counts: Vec<Option<u64>> = cmd.query_async(&mut redis).await.map_err(unavailable)?;
        Ok(counts)
    }
}
