//! Who is in a room right now, and unread counts for the members who are not.
//!
//! Membership itself is the application's record ([`Members`](crate::Members)), passed in when a
//! message is counted. Presence counts open subscriptions per user, so a user with two tabs
//! stays present until both leave; a member who is not present gets one more unread message per
//! stored message, and their count resets when they enter. All of it can be lost (a Redis
//! restart without persistence) at the price of unread counts starting again from nothing.

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
/// async fn enter(presence: &dyn Presence, room: RoomId, user: UserId) {
///     presence.enter(user, room).await.unwrap();
/// }
/// ```
#[async_trait]
pub trait Presence: Send + Sync + std::fmt::Debug + 'static {
    /// Forgets `user`'s unread count in `room`, after they left it (idempotent).
    async fn forget(&self, room: RoomId, user: UserId) -> Result<()>;

    /// One more open subscription of `user` in `room`; their unread count becomes 0.
    async fn enter(&self, room: RoomId, user: UserId) -> Result<()>;

    /// One subscription fewer; the user is absent when none is left.
    async fn exit(&self, room: RoomId, user: UserId) -> Result<()>;

    /// Whether `user` has an open subscription in `room`.
    async fn is_present(&self, room: RoomId, user: UserId) -> Result<bool>;

    /// Counts one new message in `room`: each of `members` who is not present gets one more
    /// unread. Returns those members with their new counts.
    async fn count_message(&self, room: RoomId, members: &[UserId]) -> Result<Vec<(UserId, u64)>>;

    /// `user`'s unread count in each of `rooms` (`None`: never counted, as in the seed).
    async fn unread(&self, user: UserId, rooms: &[RoomId]) -> Result<Vec<Option<u64>>>;
}
