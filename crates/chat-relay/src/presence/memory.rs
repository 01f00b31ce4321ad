use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::Presence;
use crate::{Result, RoomId, UserId};

#[derive(Debug, Default)]
struct Room {
    members: HashSet<UserId>,
    present: HashMap<UserId, usize>,
}

/// Presence in memory (one process).
#[derive(Debug, Default)]
pub struct MemoryPresence {
    rooms: Mutex<HashMap<RoomId, Room>>,
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
    async fn join(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut rooms = self.rooms.lock().expect("poisoned");
        rooms.entry(room).or_default().members.insert(user);
        Ok(())
    }

    async fn leave(&self, room: RoomId, user: UserId) -> Result<()> {
        if let Some(state) = self.rooms.lock().expect("poisoned").get_mut(&room) {
            state.members.remove(&user);
        }
        self.unread.lock().expect("poisoned").remove(&(room, user));
        Ok(())
    }

    async fn enter(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut rooms = self.rooms.lock().expect("poisoned");
        *rooms
            .entry(room)
            .or_default()
            .present
            .entry(user)
            .or_default() += 1;
        self.unread
            .lock()
            .expect("poisoned")
            .insert((room, user), 0);
        Ok(())
    }

    async fn exit(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut rooms = self.rooms.lock().expect("poisoned");
        if let Some(state) = rooms.get_mut(&room)
            && let Some(count) = state.present.get_mut(&user)
        {
            *count -= 1;
            if *count == 0 {
                state.present.remove(&user);
            }
        }
        Ok(())
    }

    async fn is_present(&self, room: RoomId, user: UserId) -> Result<bool> {
        let rooms = self.rooms.lock().expect("poisoned");
        Ok(rooms
            .get(&room)
            .is_some_and(|state| state.present.contains_key(&user)))
    }

    async fn count_message(&self, room: RoomId) -> Result<Vec<(UserId, u64)>> {
        let rooms = self.rooms.lock().expect("poisoned");
        let Some(state) = rooms.get(&room) else {
            return Ok(Vec::new());
        };
        let mut unread = self.unread.lock().expect("poisoned");
        Ok(state
            .members
            .iter()
            .filter(|user| !state.present.contains_key(user))
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
