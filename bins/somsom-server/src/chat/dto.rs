//! Chat bodies, with the seed's field names.

use chat_relay::ChatMessage;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /festivals/chatting/{chatRoomId}` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// Messages older than this `sendTime` (the previous page's cursor).
    pub last_evaluated_send_time: Option<i64>,
    /// Page size, 1..=100 (default 10).
    pub limit: Option<usize>,
}

/// One message (the seed's `Message`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    /// The text.
    pub content: String,
    /// The sender.
    pub sender_id: i64,
    /// The sender's name.
    pub sender_name: String,
    /// The room.
    pub chat_room_id: i64,
    /// Epoch milliseconds, assigned by the server, unique within the room.
    pub send_time: i64,
}

impl From<ChatMessage> for MessageDto {
    fn from(m: ChatMessage) -> Self {
        Self {
            content: m.content,
            sender_id: m.sender_id.0,
            sender_name: m.sender_name,
            chat_room_id: m.chat_room_id.0,
            send_time: m.send_time,
        }
    }
}

/// The seed's `MessageListResponse`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    /// The room's name (its festival's).
    pub title: String,
    /// Newest first.
    pub messages: Vec<MessageDto>,
    /// Pass back as `lastEvaluatedSendTime` for older messages; `null` on a short page.
    pub last_evaluated_send_time: Option<i64>,
}

/// The seed's `UserChatRoomListDto` (note `unReadCount`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatRoomItem {
    /// The room (= festival id).
    pub id: i64,
    /// The room's name.
    pub title: String,
    /// Members.
    #[serde(rename = "userCount")]
    pub user_count: i64,
    /// Messages since the member last entered; `null` if none was ever counted.
    #[serde(rename = "unReadCount")]
    pub unread_count: Option<u64>,
}

/// `DELETE /festivals/chatting/delete` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct LeaveQuery {
    /// The room to leave.
    pub chat_room_id: i64,
}
