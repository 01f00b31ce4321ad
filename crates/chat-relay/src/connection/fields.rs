//! The JSON names clients see: in the body of a SEND, of a MESSAGE, of an unread count.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::{ChatMessage, RoomId};

/// The names of the JSON fields on the wire. The defaults are neutral; an application speaking
/// an existing protocol sets its own with [`MessageFields::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageFields {
    /// The room (SEND, MESSAGE, unread count).
    pub room: String,
    /// The text (SEND, MESSAGE).
    pub content: String,
    /// The sender's id (MESSAGE).
    pub sender_id: String,
    /// The sender's name (MESSAGE).
    pub sender_name: String,
    /// When it was stored, epoch milliseconds (MESSAGE).
    pub send_time: String,
    /// The count (unread count).
    pub unread_count: String,
}

impl MessageFields {
    /// Names chosen by the application, in the order of the fields.
    pub fn new(
        room: impl Into<String>,
        content: impl Into<String>,
        sender_id: impl Into<String>,
        sender_name: impl Into<String>,
        send_time: impl Into<String>,
        unread_count: impl Into<String>,
    ) -> Self {
        Self {
            room: room.into(),
            content: content.into(),
            sender_id: sender_id.into(),
            sender_name: sender_name.into(),
            send_time: send_time.into(),
            unread_count: unread_count.into(),
        }
    }

    /// A stored message as the body of a MESSAGE frame.
    pub fn message(&self, message: &ChatMessage) -> Bytes {
        let mut body = Map::with_capacity(5);
        body.insert(self.content.clone(), message.content.clone().into());
        body.insert(self.sender_id.clone(), message.sender_id.0.into());
        body.insert(self.sender_name.clone(), message.sender_name.clone().into());
        body.insert(self.room.clone(), message.chat_room_id.0.into());
        body.insert(self.send_time.clone(), message.send_time.into());
        Bytes::from(serde_json::to_vec(&body).expect("a map of plain values serialises"))
    }

    /// A room's unread count as the body of a MESSAGE frame.
    pub fn unread(&self, room: RoomId, count: u64) -> Bytes {
        let mut body = Map::with_capacity(2);
        body.insert(self.room.clone(), room.0.into());
        body.insert(self.unread_count.clone(), count.into());
        Bytes::from(serde_json::to_vec(&body).expect("a map of plain values serialises"))
    }

    /// The room and the text of a SEND body, or why it is not one.
    pub fn send(&self, body: &[u8]) -> Result<(RoomId, String), String> {
        let expected = || {
            format!(
                "expected {{\"{}\": N, \"{}\": \"…\"}}",
                self.room, self.content
            )
        };
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("{}: {e}", expected()))?;
        let room = value.get(&self.room).and_then(Value::as_i64).map(RoomId);
        let content = value.get(&self.content).and_then(Value::as_str);
        match (room, content) {
            (Some(room), Some(content)) => Ok((room, content.to_owned())),
            _ => Err(expected()),
        }
    }
}

impl Default for MessageFields {
    /// `roomId`, `content`, `senderId`, `senderName`, `sentAt`, `unreadCount`.
    fn default() -> Self {
        Self::new(
            "roomId",
            "content",
            "senderId",
            "senderName",
            "sentAt",
            "unreadCount",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserId;

    #[test]
    fn names_are_the_applications() {
        let fields = MessageFields::new(
            "chatRoomId",
            "content",
            "senderId",
            "senderName",
            "sendTime",
            "unReadCount",
        );
        let message = ChatMessage {
            content: "hi".into(),
            sender_id: UserId(2),
            sender_name: "bob".into(),
            chat_room_id: RoomId(7),
            send_time: 1_000,
        };
        let body: Value = serde_json::from_slice(&fields.message(&message)).unwrap();
        assert_eq!(body["chatRoomId"], 7);
        assert_eq!(body["sendTime"], 1_000);
        let unread: Value = serde_json::from_slice(&fields.unread(RoomId(7), 3)).unwrap();
        assert_eq!(
            unread,
            serde_json::json!({"chatRoomId": 7, "unReadCount": 3})
        );
        assert_eq!(
            fields.send(br#"{"chatRoomId": 7, "content": "hi"}"#),
            Ok((RoomId(7), "hi".to_owned()))
        );
        let neutral = MessageFields::default();
        let refused = neutral
            .send(br#"{"chatRoomId": 7, "content": "hi"}"#)
            .unwrap_err();
        assert!(refused.contains("\"roomId\""), "{refused}");
        assert!(neutral.send(b"not json").is_err());
    }
}
