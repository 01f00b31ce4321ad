//! Joining and leaving a festival's chat room. The `chat_room_members` row is the source of
//! truth for "joined"; the chat engine's presence (whom unread counts count) follows it, and a
//! leave also closes the member's sockets in that room on this node (the others follow the
//! recorded leaves).

use chat_relay::{ChatServer, RoomId, UserId};
use festival_catalog::CatalogError;

use crate::chat::members;
use crate::db::Database;
use crate::festivals::Festivals;

/// Why a membership could not change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// No festival has that room's id.
    #[error("chat room {0} does not exist")]
    RoomNotFound(RoomId),
    /// Leaving a room the user is not in.
    #[error("not a member of chat room {0}")]
    NotJoined(RoomId),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(CatalogError),
    /// The membership table could not be read or written.
    #[error("database unavailable")]
    Database(#[source] sqlx::Error),
    /// The chat engine's presence failed.
    #[error(transparent)]
    Chat(#[from] chat_relay::ChatError),
}

/// The room's title (its festival's name).
pub async fn room_title(festivals: &Festivals, room: RoomId) -> Result<String, MembershipError> {
    match festivals.catalog.get(room.0).await {
        Ok(festival) => Ok(festival.name),
        Err(CatalogError::NotFound(_)) => Err(MembershipError::RoomNotFound(room)),
        Err(e) => Err(MembershipError::Catalog(e)),
    }
}

/// Makes `user` a member of `room` (doing it again changes nothing).
pub async fn join(
    festivals: &Festivals,
    db: &Database,
    chat: &ChatServer,
    user: UserId,
    room: RoomId,
) -> Result<(), MembershipError> {
    room_title(festivals, room).await?;
    let now = festivals.clock.now().timestamp_millis();
    members::join(db, room, user, now)
        .await
        .map_err(MembershipError::Database)?;
    chat.presence().join(room, user).await?;
    Ok(())
}

/// Ends `user`'s membership of `room`, closing their sockets in it on this node.
pub async fn leave(
    festivals: &Festivals,
    db: &Database,
    chat: &ChatServer,
    user: UserId,
    room: RoomId,
) -> Result<(), MembershipError> {
    room_title(festivals, room).await?;
    let now = festivals.clock.now().timestamp_millis();
    if !members::leave(db, room, user, now)
        .await
        .map_err(MembershipError::Database)?
    {
        return Err(MembershipError::NotJoined(room));
    }
    chat.leave_room(user, room, &left_message(room));
    chat.presence().leave(room, user).await?;
    Ok(())
}

/// What a socket closed by a leave is told.
pub fn left_message(room: RoomId) -> String {
    format!("you left chat room {room}")
}
