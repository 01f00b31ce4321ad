#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

pub mod driver;
pub mod lottery;
pub mod memory;
mod model;
pub mod token;
pub mod watch;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "sqs")]
pub mod sqs;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use engine_clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryQueue;
pub use model::{
    Admission, Consumption, Place, Policy, QUEUE_NAME_MAX, QueueName, QueueStats, Tick, TickRule,
    USER_MAX,
};
pub use token::{AdmissionTokens, TokenError};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// An argument is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was wrong (`queue`, `user`, or a policy field).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Nothing is left to admit people to: joining is refused until tickets come back.
    #[error("the queue is closed: sold out")]
    SoldOut,
    /// The backend could not be reached or failed: worth trying again later
    /// ([`QueueError::is_retryable`]). What it said is the [`source`](std::error::Error::source).
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl QueueError {
    /// [`QueueError::Unavailable`] from whatever `backend` said.
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
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A set of named waiting rooms.
///
/// Users are opaque keys (an e-mail, an account id); each has at most one place per queue: in
/// the pre-queue (before the queue's opening), waiting, or admitted. Ranks are 1-based and
/// strictly in order of arrival, ties included: the backend numbers arrivals itself instead of
/// trusting a timestamp. Users who joined before the opening come first, in the order of the
/// lottery drawn at the opening ([`lottery`]).
///
/// An admission is used once: the request it allows [`consume`](Self::consume)s it, and a user
/// has at most one live admission per queue.
#[async_trait]
pub trait WaitingQueue: Send + Sync + std::fmt::Debug + 'static {
    /// Puts `user` at the back of the line (in the pre-queue before the opening), or tells where
    /// they already are: a user who is waiting keeps their place, an admitted one stays
    /// admitted. With [`Policy::admit_when_idle`] and nobody waiting, admits at once. Refused
    /// with [`QueueError::SoldOut`] while the queue is sold out. Counts as a sign of life.
    async fn join(&self, queue: &QueueName, user: &str) -> Result<Place>;

    /// Where `user` stands, without joining: `None` if nowhere. Counts as a sign of life.
    async fn place(&self, queue: &QueueName, user: &str) -> Result<Option<Place>>;

    /// The 1-based rank of a waiting user, `None` if not waiting (in the pre-queue, admitted,
    /// gone, or never came). Counts as a sign of life.
    async fn rank(&self, queue: &QueueName, user: &str) -> Result<Option<u64>> {
        Ok(match self.place(queue, user).await? {
            Some(Place::Waiting { rank, .. }) => Some(rank),
            _ => None,
        })
    }

    /// The user's live admission, if any (one that lapsed or was used is `None`).
    async fn admission(&self, queue: &QueueName, user: &str) -> Result<Option<Admission>>;

    /// Leaves the line or the pre-queue. Returns whether the user was in either.
    async fn leave(&self, queue: &QueueName, user: &str) -> Result<bool>;

    /// Ends an admission (the user is done, or gives up their turn). Returns whether there was one.
    async fn finish(&self, queue: &QueueName, user: &str) -> Result<bool>;

    /// Uses admission number `admission` of `user`, atomically: of two requests with one
    /// admission, one gets [`Consumption::Consumed`]. A used admission no longer counts towards
    /// the cap on active admissions.
    async fn consume(&self, queue: &QueueName, user: &str, admission: u64) -> Result<Consumption>;

    /// Gives back a used admission whose request failed before it took effect, so the user can
    /// try again while it lasts. Returns whether it was used and is live again.
    async fn release(&self, queue: &QueueName, user: &str, admission: u64) -> Result<bool>;

    /// Admits up to `count` waiters now, within the cap on active admissions, whether or not
    /// admission is paused (an operator's override). Does not count as a tick.
    async fn admit(&self, queue: &QueueName, count: u32) -> Result<Tick>;

    /// One round of the admission policy: lapse expired admissions, drop silent waiters, then
    /// admit up to a batch (unless paused, sold out or not yet open) within the cap. See
    /// [`TickRule`] for when it applies.
    async fn tick(&self, queue: &QueueName, rule: TickRule) -> Result<Tick>;

    /// Sets the queue's policy (`None`: back to the engine's default).
    async fn configure(&self, queue: &QueueName, policy: Option<Policy>) -> Result<()>;

    /// Sets when the queue opens: until then joiners wait in the pre-queue. The lottery's seed is
    /// drawn the first time an opening is set and kept. `None` opens the queue now. Moving an
    /// opening that has taken effect is refused.
    async fn schedule(&self, queue: &QueueName, opens_at: Option<DateTime<Utc>>) -> Result<()>;

    /// Closes (or reopens) admission because nothing is left (or something came back): while
    /// sold out, ticks admit nobody and joins are refused; waiters keep their places.
    async fn set_sold_out(&self, queue: &QueueName, sold_out: bool) -> Result<()>;

    /// Pauses or resumes admission; joining and ranks go on either way.
    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()>;

    /// The queue's numbers (zeroes for a queue nobody used).
    async fn stats(&self, queue: &QueueName) -> Result<QueueStats>;

    /// Queues with someone waiting or admitted, or with a configured policy or an opening: those
    /// a driver ticks.
    async fn queues(&self) -> Result<Vec<QueueName>>;

    /// A number that changes whenever somebody's rank may have improved (someone left the line
    /// or was admitted, or the queue opened or closed); watchers poll it to know when to
    /// recompute ranks.
    async fn version(&self, queue: &QueueName) -> Result<u64>;
}
