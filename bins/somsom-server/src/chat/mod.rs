//! Festival chat: the seed's four routes and STOMP at `/ws-chat`, over `chat_relay`.
//!
//! A festival's chat room has the festival's id and name. Members are kept in
//! `chat_room_members` (the source of truth for "joined"), mirrored into the chat engine's
//! presence so unread counts know whom to count. Only members read history, subscribe or send.

pub(crate) mod build;
mod dto;
pub mod members;

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use chat_relay::stomp::Frame;
use chat_relay::websocket::Buffers;
use chat_relay::{ChatServer, Gatekeeper, Member, Refusal, RoomId, Session};
use cognito_auth::IdentityProvider;

use crate::auth::CurrentUser;
use crate::db::Database;
use crate::error::{ApiError, ErrorCode, FieldIssue};
use crate::extract::{Path, Query};
use crate::festivals::Festivals;

pub use dto::{ChatRoomItem, HistoryQuery, LeaveQuery, MessageDto, MessageList};

/// The chat engine and its WebSocket settings.
#[derive(Clone)]
pub struct Chat {
    /// The engine.
    pub server: ChatServer,
    /// The membership table as the engine reads it.
    pub members: members::TableMembers,
    /// Per-connection buffer sizes.
    pub buffers: Buffers,
}

/// Lets signed-in users connect, and members into their rooms.
pub struct Gate {
    db: Database,
    users: crate::auth::UserRows,
    auth: Arc<dyn IdentityProvider>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate checking tokens with `auth`, finding their owners in `users` and memberships in
    /// `db`.
    pub fn new(
        db: Database,
        users: crate::auth::UserRows,
        auth: Arc<dyn IdentityProvider>,
    ) -> Self {
        Self { db, users, auth }
    }
}

/// The bearer token of a CONNECT frame: `Authorization: Bearer …` (any case), or `passcode`.
fn connect_token(frame: &Frame) -> Option<&str> {
    let from_header = frame
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.strip_prefix("Bearer ").unwrap_or(value).trim());
    from_header
        .or_else(|| frame.header("passcode").map(str::trim))
        .filter(|token| !token.is_empty())
}

#[async_trait]
impl Gatekeeper for Gate {
    async fn authenticate(&self, connect: &Frame) -> Result<Session, Refusal> {
        let token = connect_token(connect)
            .ok_or_else(|| Refusal::new("an access token is required (Authorization: Bearer …)"))?;
        let claims = self
            .auth
            .verify(token)
            .await
            .map_err(|_| Refusal::new("the access token is invalid or expired"))?;
        let user = crate::auth::user_for(&self.users, &*self.auth, &claims)
            .await
            .map_err(|_| Refusal::new("unknown user"))?;
        Ok(Session {
            member: Member {
                id: chat_relay::UserId(user.id),
                name: user.name,
            },
            // The socket closes when the token expires; the client reconnects with a new one.
            expires_at: Some(claims.expires_at.saturating_mul(1000)),
        })
    }

    async fn may_enter(&self, member: &Member, room: RoomId) -> Result<(), Refusal> {
        match members::is_member(&self.db, room, member.id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::new(format!(
                "join chat room {room} before entering it"
            ))),
            Err(e) => {
                tracing::warn!(error = %crate::error::Report(&e), "membership check failed");
                Err(Refusal::new("temporarily unavailable"))
            }
        }
    }
}

impl From<chat_relay::ChatError> for ApiError {
    fn from(e: chat_relay::ChatError) -> Self {
        chat_error(e)
    }
}

fn chat_error(e: chat_relay::ChatError) -> ApiError {
    match e {
        chat_relay::ChatError::Invalid { field, reason } => ApiError::field(
            field,
            FieldIssue::Other {
                ko: format!("올바르지 않은 값입니다 ({reason})."),
                en: reason,
            },
        ),
        other => crate::app::unavailable("chat", &other),
    }
}

/// The room's name, or `CHATROOM_NOT_FOUND` (the seed's 400).
async fn room_title(festivals: &Festivals, room: RoomId) -> Result<String, ApiError> {
    Ok(crate::workflows::chat::room_title(festivals, room).await?)
}

/// Joins a festival's chat room (idempotent); answers the room id as a bare number.
#[utoipa::path(post, path = "/festivals/chatting/{chatRoomId}/join", tag = "chat",
    params(("chatRoomId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = i64), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn join(
    State(db): State<Database>,
    State(festivals): State<Festivals>,
    State(chat): State<Chat>,
    user: CurrentUser,
    Path(room): Path<i64>,
) -> Result<Json<i64>, ApiError> {
    crate::workflows::chat::join(
        &festivals,
        &db,
        &chat,
        chat_relay::UserId(user.user.id),
        RoomId(room),
    )
    .await?;
    Ok(Json(room))
}

/// A room's history, newest first, with the seed's cursor. Members only.
#[utoipa::path(get, path = "/festivals/chatting/{chatRoomId}", tag = "chat",
    params(("chatRoomId" = i64, Path), HistoryQuery), security(("bearer" = [])),
    responses((status = 200, body = MessageList), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn history(
    State(db): State<Database>,
    State(festivals): State<Festivals>,
    State(chat): State<Chat>,
    user: CurrentUser,
    Path(room): Path<i64>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let limit = query.limit.unwrap_or(10);
    if !(1..=chat_relay::store::PAGE_MAX).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            FieldIssue::Other {
                ko: "1부터 100 사이여야 합니다.".into(),
                en: "must be 1..=100".into(),
            },
        ));
    }
    let title = room_title(&festivals, RoomId(room)).await?;
    if !members::is_member(&db, RoomId(room), chat_relay::UserId(user.user.id))
        .await
        .map_err(ApiError::database)?
    {
        return Err(ApiError::new(ErrorCode::ChatroomNotJoined));
    }
    let page = chat
        .server
        .store()
        .history(RoomId(room), query.last_evaluated_send_time, limit)
        .await?;
    Ok(Json(MessageList {
        title,
        messages: page.messages.into_iter().map(MessageDto::from).collect(),
        last_evaluated_send_time: page.last_evaluated_send_time,
    }))
}

/// The caller's rooms with member and unread counts, most recently joined first.
pub async fn rooms_of(
    db: &Database,
    festivals: &Festivals,
    chat: &Chat,
    user: i64,
) -> Result<Vec<ChatRoomItem>, ApiError> {
    let rooms = members::rooms_of(db, chat_relay::UserId(user))
        .await
        .map_err(ApiError::database)?;
    let counts = members::counts(db, &rooms)
        .await
        .map_err(ApiError::database)?;
    let unread = chat
        .server
        .presence()
        .unread(chat_relay::UserId(user), &rooms)
        .await?;
    let mut items = Vec::with_capacity(rooms.len());
    for (room, unread) in rooms.into_iter().zip(unread) {
        // A festival deleted from the catalog takes its room with it.
        let Ok(festival) = festivals.catalog.get(room.0).await else {
            continue;
        };
        items.push(ChatRoomItem {
            id: room.0,
            title: festival.name,
            user_count: counts.get(&room).copied().unwrap_or(0),
            unread_count: unread,
        });
    }
    Ok(items)
}

/// The caller's chat rooms.
#[utoipa::path(get, path = "/festivals/chatting/list", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChatRoomItem>), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(db): State<Database>,
    State(festivals): State<Festivals>,
    State(chat): State<Chat>,
    user: CurrentUser,
) -> Result<Json<Vec<ChatRoomItem>>, ApiError> {
    Ok(Json(rooms_of(&db, &festivals, &chat, user.user.id).await?))
}

/// Leaves a room.
#[utoipa::path(delete, path = "/festivals/chatting/delete", tag = "chat", params(LeaveQuery),
    security(("bearer" = [])),
    responses((status = 200), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn leave(
    State(db): State<Database>,
    State(festivals): State<Festivals>,
    State(chat): State<Chat>,
    user: CurrentUser,
    Query(query): Query<LeaveQuery>,
) -> Result<(), ApiError> {
    crate::workflows::chat::leave(
        &festivals,
        &db,
        &chat,
        chat_relay::UserId(user.user.id),
        RoomId(query.chat_room_id),
    )
    .await?;
    Ok(())
}

/// How far back each read of the leaves goes again (a leave committed late, or stamped by a
/// node whose clock is a little behind, is still seen).
const LEAVE_OVERLAP_MS: i64 = 5_000;

/// Closes, on this node, the chat sockets of members who left a room on any node: one read of
/// the recorded leaves every `interval` until `cancel`.
pub async fn follow_leaves(
    db: Database,
    chat: ChatServer,
    clock: Arc<dyn cognito_auth::Clock>,
    interval: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    // Leaves are stamped with the app's clock (see `workflows::chat`), so read them by it.
    let mut newest = clock.now().timestamp_millis();
    let mut seen = std::collections::HashMap::<i64, i64>::new();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = clock.now().timestamp_millis();
        let since = newest - LEAVE_OVERLAP_MS;
        match members::leaves_since(&db, since, now - 3_600_000).await {
            Ok(leaves) => {
                for leave in leaves {
                    newest = newest.max(leave.left_at);
                    if seen.insert(leave.id, leave.left_at).is_none() {
                        chat.leave_room(
                            leave.user_id,
                            leave.chat_room_id,
                            &crate::workflows::chat::left_message(leave.chat_room_id),
                        );
                    }
                }
                seen.retain(|_, at| *at >= since);
            }
            Err(e) => tracing::warn!(error = %crate::error::Report(&e), "cannot read chat leaves"),
        }
    }
}

/// STOMP over WebSocket. CONNECT carries the access token (`Authorization: Bearer …`).
pub async fn websocket(State(chat): State<Chat>, ws: WebSocketUpgrade) -> Response {
    chat_relay::websocket::upgrade(ws, chat.server.clone(), chat.buffers)
}
