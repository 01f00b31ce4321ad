#![doc = include_str!("../README.md")]

pub mod driver;
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

pub use engine_clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryQueue;
pub use model::{
    Admission, Place, Policy, QUEUE_NAME_MAX, QueueName, QueueStats, Tick, TickRule, USER_MAX,
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
    /// The backend could not be reached or answered nonsense.
    #[error("{backend} unavailable: {source}")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl QueueError {
    /// Wraps a backend error.
    pub fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A set of named waiting rooms.
///
/// Users are opaque keys (an e-mail, an account id); each has at most one place per queue, either
/// waiting or admitted. Ranks are 1-based and strictly in order of arrival, ties included: the
/// backend numbers arrivals itself instead of trusting a timestamp.
#[async_trait]
pub trait WaitingQueue: Send + Sync + std::fmt::Debug + 'static {
    /// Puts `user` at the back of the line, or tells where they already are: a user who is
    /// waiting keeps their place, an admitted one stays admitted. Counts as a sign of life.
    async fn join(&self, queue: &QueueName, user: &str) -> Result<Place>;

    /// The 1-based rank of a waiting user, `None` if not waiting (admitted, gone, or never came).
    /// Counts as a sign of life.
    async fn rank(&self, queue: &QueueName, user: &str) -> Result<Option<u64>>;

    /// The user's live admission, if any (one that lapsed is `None`).
    async fn admission(&self, queue: &QueueName, user: &str) -> Result<Option<Admission>>;

    /// Leaves the line. Returns whether the user was waiting.
    async fn leave(&self, queue: &QueueName, user: &str) -> Result<bool>;

    /// Ends an admission (the user is done, or gives up their turn). Returns whether there was one.
    async fn finish(&self, queue: &QueueName, user: &str) -> Result<bool>;

    /// Admits up to `count` waiters now, within the cap on active admissions, whether or not
    /// admission is paused (an operator's override). Does not count as a tick.
    async fn admit(&self, queue: &QueueName, count: u32) -> Result<Tick>;

    /// One round of the admission policy: lapse expired admissions, drop silent waiters, then
    /// admit up to a batch (unless paused) within the cap. See [`TickRule`] for when it applies.
    async fn tick(&self, queue: &QueueName, rule: TickRule) -> Result<Tick>;

    /// Sets the queue's policy (`None`: back to the engine's default).
    async fn configure(&self, queue: &QueueName, policy: Option<Policy>) -> Result<()>;

    /// Pauses or resumes admission; joining and ranks go on either way.
    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()>;

    /// The queue's numbers (zeroes for a queue nobody used).
    async fn stats(&self, queue: &QueueName) -> Result<QueueStats>;

    /// Queues with someone waiting or admitted, or with a configured policy: those a driver ticks.
    async fn queues(&self) -> Result<Vec<QueueName>>;

    /// A number that changes whenever somebody's rank may have improved (someone left the line
    /// or was admitted); watchers poll it to know when to recompute ranks.
    async fn version(&self, queue: &QueueName) -> Result<u64>;
}
