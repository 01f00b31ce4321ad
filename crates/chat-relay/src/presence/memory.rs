use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Presence;
use crate::{Result, RoomId, UserId};

/// Presence in memory (one process).
#[derive(Debug, Default)]
pub struct MemoryPresence {
    /// Room → user → open subscriptions.
    rooms: Mutex<HashMap<RoomId, HashMap<UserId, usize>>>,
    unread: Mutex<HashMap<(RoomId, UserId), u64>>,
}

impl MemoryPresence {
    /// Nobody anywhere.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn forget(&self, room: RoomId, user: UserId) -> Result<()> {
        self.unread.lock().expect("poisoned").remove(&(room, user));
        Ok(())
    }

    async fn enter(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut rooms = self.rooms.lock().expect("poisoned");
        *rooms.entry(room).or_default().entry(user).or_default() += 1;
        self.unread
            .lock()
            .expect("poisoned")
            .insert((room, user), 0);
        Ok(())
    }

    async fn exit(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut rooms = self.rooms.lock().expect("poisoned");
        if let Some(present) = rooms.get_mut(&room)
            && let Some(count) = present.get_mut(&user)
        {
            *count -= 1;
            if *count == 0 {
                present.remove(&user);
                if present.is_empty() {
                    rooms.remove(&room);
                }
            }
        }
        Ok(())
    }

    async fn is_present(&self, room: RoomId, user: UserId) -> Result<bool> {
        let rooms = self.rooms.lock().expect("poisoned");
        Ok(rooms
            .get(&room)
            .is_some_and(|present| present.contains_key(&user)))
    }

    async fn count_message(&self, room: RoomId, members: &[UserId]) -> Result<Vec<(UserId, u64)>> {
        let rooms = self.rooms.lock().expect("poisoned");
        let present = rooms.get(&room);
        let mut unread = self.unread.lock().expect("poisoned");
        Ok(members
            .iter()
            .filter(|user| !present.is_some_and(|p| p.contains_key(user)))
            .map(|&user| {
                let count = unread.entry((room, user)).or_default();
                *count += 1;
                (user, *count)
            })
            .collect())
    }

    async fn unread(&self, user: UserId, rooms: &[RoomId]) -> Result<Vec<Option<u64>>> {
        let unread = self.unread.lock().expect("poisoned");
        Ok(rooms
            .iter()
            .map(|room| unread.get(&(*room, user)).copied())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::conformance::presence::run_all(&MemoryPresence::new()).await;
    }
}
