//! The chat vocabulary shared by stores, relays and connections.

use serde::{Deserialize, Serialize};

/// An id that is an `i64` in storage but cannot be passed where the other kind is expected
/// (`presence.join(user, room)` with the two swapped does not compile).
macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        #[cfg_attr(any(feature = "sqlite", feature = "mysql"), derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id!(
    /// A chat room, named by the application (e.g. the id of the event it belongs to).
    RoomId
);
id!(
    /// A user (the application's id).
    UserId
);

/// Longest message content, in characters.
pub const CONTENT_MAX: usize = 1000;

/// Who is speaking: set by the server from the authenticated connection, never by the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The user's id.
    pub id: UserId,
    /// The name shown next to their messages.
    pub name: String,
}

/// A message on its way to the store: everything but its final `sendTime`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    /// The room.
    pub chat_room_id: RoomId,
    /// The sender.
    pub sender_id: UserId,
    /// The sender's name.
    pub sender_name: String,
    /// The text.
    pub content: String,
    /// When the sending node accepted it (epoch milliseconds): the earliest `sendTime` it gets.
    pub accepted_at: i64,
    /// Its position in the relay's log for its room (the Kafka offset), when it has one. A store
    /// keeps each position once and in order, so a draft handled twice (a consumer-group
    /// rebalance, a crash before a commit) is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl Draft {
    /// A draft from `sender`, checked: 1..=[`CONTENT_MAX`] characters, not only whitespace.
    pub fn new(
        room: RoomId,
        sender: &Member,
        content: impl Into<String>,
        accepted_at: i64,
    ) -> crate::Result<Self> {
        let content = content.into();
        if content.trim().is_empty() {
            return Err(crate::ChatError::Invalid {
                field: "content",
                reason: "must not be empty".into(),
            });
        }
        if content.chars().count() > CONTENT_MAX {
            return Err(crate::ChatError::Invalid {
                field: "content",
                reason: format!("at most {CONTENT_MAX} characters"),
            });
        }
        Ok(Self {
            chat_room_id: room,
            sender_id: sender.id,
            sender_name: sender.name.clone(),
            content,
            accepted_at,
            seq: None,
        })
    }

    /// The stored message this draft becomes at `send_time`.
    pub fn stored_at(&self, send_time: i64) -> ChatMessage {
        ChatMessage {
            content: self.content.clone(),
            sender_id: self.sender_id,
            sender_name: self.sender_name.clone(),
            chat_room_id: self.chat_room_id,
            send_time,
        }
    }

    /// The `sendTime` this draft gets after a room's latest: its acceptance time, or one
    /// millisecond after the latest when that is not earlier. So `sendTime`s are unique and
    /// increase within a room in the order messages are stored.
    pub fn send_time_after(&self, latest: Option<i64>) -> i64 {
        latest.map_or(self.accepted_at, |latest| {
            self.accepted_at.max(latest.saturating_add(1))
        })
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now.
    Stored(ChatMessage),
    /// The draft's `seq` was stored before (as this message, if the store could find it).
    Duplicate(Option<ChatMessage>),
}

impl Appended {
    /// The message, stored now or before.
    pub fn message(self) -> Option<ChatMessage> {
        match self {
            Appended::Stored(message) => Some(message),
            Appended::Duplicate(message) => message,
        }
    }
}

/// A stored message, in its JSON shape (camelCase names). `sendTime` (epoch milliseconds, assigned by the
/// server) is unique within its room and is the message's identity there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// The text.
    pub content: String,
    /// The sender's user id.
    pub sender_id: UserId,
    /// The sender's name when it was sent.
    pub sender_name: String,
    /// The room.
    pub chat_room_id: RoomId,
    /// When it was stored (epoch milliseconds); unique within the room.
    pub send_time: i64,
}

/// One page of a room's history, newest first, with a keyset cursor: `last_evaluated_send_time`
/// is set when the page is full (pass it back as `before` for older messages) and `None` when
/// the page came back short.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// Newest first.
    pub messages: Vec<ChatMessage>,
    /// The cursor for the next (older) page.
    pub last_evaluated_send_time: Option<i64>,
}

impl HistoryPage {
    /// A page from up to `limit` messages, newest first.
    pub fn from_newest_first(messages: Vec<ChatMessage>, limit: usize) -> Self {
        let cursor = (messages.len() >= limit && limit > 0)
            .then(|| messages.last().map(|m| m.send_time))
            .flatten();
        Self {
            messages,
            last_evaluated_send_time: cursor,
        }
    }
}
