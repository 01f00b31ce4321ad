use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{MessageStore, check_limit};
use crate::{Appended, ChatMessage, Draft, HistoryPage, Result, RoomId};

#[derive(Debug, Default)]
struct Room {
    messages: BTreeMap<i64, ChatMessage>,
    /// `seq` → `sendTime` of drafts stored with a position.
    seqs: HashMap<i64, i64>,
}

/// Messages in memory: one ordered map per room.
#[derive(Debug, Default)]
pub struct MemoryStore {
    rooms: Mutex<HashMap<RoomId, Room>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn append(&self, draft: &Draft) -> Result<Appended> {
        let mut rooms = self.rooms.lock().expect("poisoned");
        let room = rooms.entry(draft.chat_room_id).or_default();
        if let Some(seq) = draft.seq
            && let Some(send_time) = room.seqs.get(&seq)
        {
            return Ok(Appended::Duplicate(room.messages.get(send_time).cloned()));
        }
        let send_time = draft.send_time_after(room.messages.keys().next_back().copied());
        let message = draft.stored_at(send_time);
        room.messages.insert(send_time, message.clone());
        if let Some(seq) = draft.seq {
            room.seqs.insert(seq, send_time);
        }
        Ok(Appended::Stored(message))
    }

    async fn history(
        &self,
        room: RoomId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<HistoryPage> {
        check_limit(limit)?;
        let rooms = self.rooms.lock().expect("poisoned");
        let messages = rooms.get(&room).map_or_else(Vec::new, |room| {
            room.messages
                .range(..before.unwrap_or(i64::MAX))
                .rev()
                .take(limit)
                .map(|(_, m)| m.clone())
                .collect()
        });
        Ok(HistoryPage::from_newest_first(messages, limit))
    }

    async fn after(&self, room: RoomId, after: i64, limit: usize) -> Result<Vec<ChatMessage>> {
        check_limit(limit)?;
        let rooms = self.rooms.lock().expect("poisoned");
        Ok(rooms.get(&room).map_or_else(Vec::new, |room| {
            room.messages
                .range(after.saturating_add(1)..)
                .take(limit)
                .map(|(_, m)| m.clone())
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::conformance::store::run_all(&MemoryStore::new()).await;
    }
}
