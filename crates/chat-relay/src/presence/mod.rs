//! Who belongs to a room, who is in it right now, and unread counts for the rest.
//!
//! Membership mirrors the application's own record of who joined a room (kept by the application in its
//! own database); presence counts open subscriptions per user, so a user with two
//! tabs stays present until both leave; a member who is not present gets one more unread message
//! per stored message, and their count resets when they enter.

mod memory;
#[cfg(feature = "redis")]
pub mod redis;

pub use memory::MemoryPresence;

use async_trait::async_trait;

use crate::{Result, RoomId, UserId};

/// Presence and unread counts.
///
/// Rooms and users are different types, so swapping them does not compile:
///
/// ```compile_fail
/// # use chat_relay::{Presence, RoomId, UserId};
/// async fn join(presence: &dyn Presence, room: RoomId, user: UserId) {
///     presence.join(user, room).await.unwrap();
/// }
/// ```
#[async_trait]
pub trait Presence: Send + Sync + std::fmt::Debug + 'static {
    /// Makes `user` a member of `room` (idempotent).
    async fn join(&self, room: RoomId, user: UserId) -> Result<()>;

    /// Ends a membership and forgets its unread count (idempotent).
    async fn leave(&self, room: RoomId, user: UserId) -> Result<()>;

    /// One more open subscription of `user` in `room`; their unread count becomes 0.
    async fn enter(&self, room: RoomId, user: UserId) -> Result<()>;

    /// One subscription fewer; the user is absent when none is left.
    async fn exit(&self, room: RoomId, user: UserId) -> Result<()>;

    /// Whether `user` has an open subscription in `room`.
    async fn is_present(&self, room: RoomId, user: UserId) -> Result<bool>;

    /// Counts one new message in `room`: every member who is not present gets one more unread.
    /// Returns those members with their new counts.
    async fn count_message(&self, room: RoomId) -> Result<Vec<(UserId, u64)>>;

    /// `user`'s unread count in each of `rooms` (`None`: never counted, as in the seed).
    async fn unread(&self, user: UserId, rooms: &[RoomId]) -> Result<Vec<Option<u64>>>;
}
