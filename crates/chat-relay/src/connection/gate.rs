//! What the application decides: who connects ([`Gatekeeper`]), who enters a room, and the
//! destinations it serves itself ([`Feeds`]).

use async_trait::async_trait;

use crate::stomp::Frame;
use crate::{Member, RoomId};

/// Why the gatekeeper said no; `message` goes into the ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Short reason, safe to show the client.
    pub message: String,
}

impl Refusal {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Who a CONNECT frame authenticated, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The member.
    pub member: Member,
    /// When the credentials expire (epoch milliseconds): the connection closes then, with an
    /// ERROR asking the client to reconnect with fresh ones. `None`: never.
    pub expires_at: Option<i64>,
}

impl From<Member> for Session {
    fn from(member: Member) -> Self {
        Self {
            member,
            expires_at: None,
        }
    }
}

/// The application's say in who may connect and where they may go.
#[async_trait]
pub trait Gatekeeper: Send + Sync + std::fmt::Debug + 'static {
    /// Who this CONNECT frame authenticates (its headers: `Authorization`, `login`/`passcode`, …).
    async fn authenticate(&self, connect: &Frame) -> Result<Session, Refusal>;

    /// Whether `member` may read and write in `room`. Asked once per room and connection.
    async fn may_enter(&self, member: &Member, room: RoomId) -> Result<(), Refusal>;
}

/// What a [`Feeds`] destination sends: each item is the body of one MESSAGE frame (JSON).
pub type FeedStream = futures::stream::BoxStream<'static, bytes::Bytes>;

/// Destinations the application serves itself, beside rooms and unread counts: the connection
/// asks here about any destination it does not know, and sends each body the feed yields as a
/// MESSAGE on that subscription until the feed ends or the client unsubscribes.
#[async_trait]
pub trait Feeds: Send + Sync + std::fmt::Debug + 'static {
    /// The feed at `destination` for `member`: `Ok(None)` when it is not one of these feeds
    /// (the client then gets "unknown destination"), or a refusal for the ERROR frame.
    async fn open(&self, member: &Member, destination: &str)
    -> Result<Option<FeedStream>, Refusal>;
}

/// No feeds: every destination besides rooms and unread counts is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFeeds;

#[async_trait]
impl Feeds for NoFeeds {
    async fn open(&self, _: &Member, _: &str) -> Result<Option<FeedStream>, Refusal> {
        Ok(None)
    }
}
