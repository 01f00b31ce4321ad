//! Who belongs to a room. The application keeps that record (in its own database, beside the
//! rest of its data); the engine reads it to know whom a message counts unread for, and never
//! writes it, so there is one source of truth and nothing to replay after a restart.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{Result, RoomId, UserId};

/// The application's record of room membership.
#[async_trait]
pub trait Members: Send + Sync + std::fmt::Debug + 'static {
    /// The members of `room`, in any order (none for a room nobody joined). Shared, so an
    /// implementation that caches a room's list hands it out without copying it per message.
    async fn of(&self, room: RoomId) -> Result<Arc<[UserId]>>;
}

/// Membership in memory, for tests and single-process applications.
#[derive(Debug, Default)]
pub struct MemoryMembers {
    rooms: Mutex<HashMap<RoomId, BTreeSet<UserId>>>,
}

impl MemoryMembers {
    /// Nobody in any room.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `user` a member of `room`; false if they were already.
    pub fn join(&self, room: RoomId, user: UserId) -> bool {
        self.rooms
            .lock()
            .expect("poisoned")
            .entry(room)
            .or_default()
            .insert(user)
    }

    /// Ends `user`'s membership of `room`; false if they were not a member.
    pub fn leave(&self, room: RoomId, user: UserId) -> bool {
        let mut rooms = self.rooms.lock().expect("poisoned");
        let Some(members) = rooms.get_mut(&room) else {
            return false;
        };
        let left = members.remove(&user);
        if members.is_empty() {
            rooms.remove(&room);
        }
        left
    }
}

#[async_trait]
impl Members for MemoryMembers {
    async fn of(&self, room: RoomId) -> Result<Arc<[UserId]>> {
        Ok(self
            .rooms
            .lock()
            .expect("poisoned")
            .get(&room)
            .map(|members| members.iter().copied().collect())
            .unwrap_or_else(|| Arc::from([])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn joining_twice_is_one_membership_and_leaving_empties_the_room() {
        let members = MemoryMembers::new();
        assert!(members.join(RoomId(1), UserId(7)));
        assert!(!members.join(RoomId(1), UserId(7)));
        assert!(members.join(RoomId(1), UserId(8)));
        assert_eq!(
            *members.of(RoomId(1)).await.unwrap(),
            [UserId(7), UserId(8)]
        );
        assert!(members.leave(RoomId(1), UserId(7)));
        assert!(!members.leave(RoomId(1), UserId(7)));
        assert!(members.leave(RoomId(1), UserId(8)));
        assert!(members.of(RoomId(1)).await.unwrap().is_empty());
        assert!(
            members.rooms.lock().unwrap().is_empty(),
            "no empty rooms kept"
        );
    }
}
