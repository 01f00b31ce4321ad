//! The JSON names clients see: in the body of a SEND, of a MESSAGE, of an unread count.

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

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
        object(&[
            (&self.content, Scalar::Text(&message.content)),
            (&self.sender_id, Scalar::Signed(message.sender_id.0)),
            (&self.sender_name, Scalar::Text(&message.sender_name)),
            (&self.room, Scalar::Signed(message.chat_room_id.0)),
            (&self.send_time, Scalar::Signed(message.send_time)),
        ])
    }

    /// A room's unread count as the body of a MESSAGE frame.
    pub fn unread(&self, room: RoomId, count: u64) -> Bytes {
        object(&[
            (&self.room, Scalar::Signed(room.0)),
            (&self.unread_count, Scalar::Unsigned(count)),
        ])
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

/// One value of a body.
enum Scalar<'a> {
    Text(&'a str),
    Signed(i64),
    Unsigned(u64),
}

impl Serialize for Scalar<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Scalar::Text(text) => serializer.serialize_str(text),
            Scalar::Signed(n) => serializer.serialize_i64(*n),
            Scalar::Unsigned(n) => serializer.serialize_u64(*n),
        }
    }
}

/// A JSON object written straight from borrowed names and values, in this order: a body is
/// made once per message and shared by every subscriber, without copying its text.
fn object(entries: &[(&String, Scalar<'_>)]) -> Bytes {
    struct Object<'a, 'b>(&'a [(&'a String, Scalar<'b>)]);
    impl Serialize for Object<'_, '_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(self.0.len()))?;
            for (name, value) in self.0 {
                map.serialize_entry(name, value)?;
            }
            map.end()
        }
    }
    Bytes::from(serde_json::to_vec(&Object(entries)).expect("names and scalars serialise"))
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
