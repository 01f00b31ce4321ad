//! Joining and leaving a festival's chat room. The `chat_room_members` row is the one record of
//! "joined" (the chat engine reads it to count unread messages); a leave also forgets the
//! member's unread count and closes their sockets in that room on this node (the others follow
//! the recorded leaves).

use chat_relay::{RoomId, UserId};
use festival_catalog::CatalogError;

use crate::chat::{Chat, members};
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
    chat: &Chat,
    user: UserId,
    room: RoomId,
) -> Result<(), MembershipError> {
    room_title(festivals, room).await?;
    let now = festivals.clock.now().timestamp_millis();
    members::join(db, room, user, now)
        .await
        .map_err(MembershipError::Database)?;
    chat.members.changed(room).await;
    Ok(())
}

/// Ends `user`'s membership of `room`, closing their sockets in it on this node.
pub async fn leave(
    festivals: &Festivals,
    db: &Database,
    chat: &Chat,
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
    chat.members.changed(room).await;
    chat.server.leave_room(user, room, &left_message(room));
    chat.server.presence().forget(room, user).await?;
    Ok(())
}

/// What a socket closed by a leave is told.
pub fn left_message(room: RoomId) -> String {
    format!("you left chat room {room}")
}
