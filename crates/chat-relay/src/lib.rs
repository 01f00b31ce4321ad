#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

#[cfg(feature = "client")]
pub mod client;
pub mod connection;
mod follow;
mod hub;
mod lag;
mod members;
mod model;
pub mod presence;
pub mod relay;
pub mod store;
/// STOMP 1.2 frames, codec and negotiation: the [`stomp_codec`] crate.
pub use stomp_codec as stomp;

#[cfg(feature = "axum")]
pub mod websocket;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use connection::{
    ChatConfig, ChatServer, Destinations, FeedStream, Feeds, Follow, Gatekeeper, MessageFields,
    NoFeeds, Refusal, SendRate, Session,
};
pub use engine_clock::{Clock, ManualClock, SystemClock};
pub use hub::HubStats;
pub use lag::{DeliveryLag, LAG_BOUNDS_MS};
pub use members::{Members, MemoryMembers};
pub use model::{Appended, CONTENT_MAX, ChatMessage, Draft, HistoryPage, Member, RoomId, UserId};
pub use presence::{MemoryPresence, Presence};
pub use relay::{MemoryRelay, Relay, Sequencer};
pub use store::{MemoryStore, MessageStore};

/// Why a chat operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// An argument is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was wrong.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The relay has shut down.
    #[error("the relay is closed")]
    Closed,
    /// The backend could not be reached or failed: worth trying again later
    /// ([`ChatError::is_retryable`]). What it said is the [`source`](std::error::Error::source).
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ChatError {
    /// [`ChatError::Unavailable`] from whatever `backend` said.
    pub fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Whether trying again later may succeed: the backend was unavailable. Every other error
    /// is an answer about the request itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = ChatError> = std::result::Result<T, E>;
