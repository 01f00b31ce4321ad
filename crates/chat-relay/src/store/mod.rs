//! Where messages are kept: history newest first with a keyset cursor, and the messages after a
//! given one for a reconnecting client.
//!
//! A store assigns `sendTime` when it appends ([`Draft::send_time_after`]): unique within a room,
//! never overwriting (a client's clock as the sort key would let two messages
//! in the same millisecond replace each other). Appends to one room are expected from one
//! writer at a time (the [`Sequencer`](crate::Sequencer)); backends still refuse to overwrite
//! and retry with a later time if two writers meet; and a draft with a `seq` (its position in
//! the relay's log) is stored at most once, so a draft handled by two sequencers (during a
//! consumer-group rebalance) or twice by one (after a crash) is one message.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
mod memory;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub mod sql;

pub use memory::MemoryStore;

use async_trait::async_trait;

use crate::{Appended, ChatMessage, Draft, HistoryPage, Result, RoomId};

/// Most messages one history or replay read returns.
pub const PAGE_MAX: usize = 100;

/// A room's messages.
#[async_trait]
pub trait MessageStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a draft with a `sendTime` later than every message already in its room, unless
    /// its `seq` is stored already.
    async fn append(&self, draft: &Draft) -> Result<Appended>;

    /// Up to `limit` messages older than `before` (all if `None`), newest first.
    async fn history(&self, room: RoomId, before: Option<i64>, limit: usize)
    -> Result<HistoryPage>;

    /// Up to `limit` messages newer than `after`, oldest first (a reconnecting client's replay).
    async fn after(&self, room: RoomId, after: i64, limit: usize) -> Result<Vec<ChatMessage>>;
}

pub(crate) fn check_limit(limit: usize) -> Result<()> {
    if (1..=PAGE_MAX).contains(&limit) {
        Ok(())
    } else {
        Err(crate::ChatError::Invalid {
            field: "limit",
            reason: format!("must be 1..={PAGE_MAX}"),
        })
    }
}

/// The latest `sendTime` a store wrote per room, so that an append usually needs no read.
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "dynamodb"))]
#[derive(Debug, Default)]
pub(crate) struct LatestCache(std::sync::Mutex<std::collections::HashMap<RoomId, i64>>);

#[cfg(any(feature = "sqlite", feature = "mysql", feature = "dynamodb"))]
impl LatestCache {
    pub(crate) fn get(&self, room: RoomId) -> Option<i64> {
        self.0.lock().expect("poisoned").get(&room).copied()
    }

    pub(crate) fn forget(&self, room: RoomId) {
        self.0.lock().expect("poisoned").remove(&room);
    }

    pub(crate) fn set(&self, room: RoomId, send_time: i64) {
        let mut map = self.0.lock().expect("poisoned");
        let entry = map.entry(room).or_insert(send_time);
        *entry = (*entry).max(send_time);
    }
}
