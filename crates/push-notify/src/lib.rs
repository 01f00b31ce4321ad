#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

pub mod dispatch;
pub mod memory;
mod model;
pub mod plan;
pub mod send;

#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub mod sql;

#[cfg(feature = "aws")]
pub mod aws;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use dispatch::{Dispatcher, DispatcherConfig, Round};
pub use engine_clock::{Clock, ManualClock, SystemClock};
pub use memory::{MemoryLedger, MemoryRegistry, MemorySchedule};
pub use model::{
    Begin, Claimed, DeliveryId, Device, DeviceType, Finish, Notification, Reminder, ReminderKey,
    TOKEN_MAX, UserId, validate_token,
};
pub use plan::Planner;
pub use send::{LogSender, Message, SendOutcome, Sender};

/// How many devices a user keeps by default: a phone, a tablet and a few browsers.
pub const MAX_DEVICES_PER_USER: usize = 10;

/// Why a push operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// An argument is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as the API names it.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The backend could not be reached or failed: worth trying again later
    /// ([`PushError::is_retryable`]). What it said is the [`source`](std::error::Error::source).
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PushError {
    /// [`PushError::Unavailable`] from whatever `backend` said.
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

/// Results of this crate.
pub type Result<T, E = PushError> = std::result::Result<T, E>;

/// Which devices each user has switched on.
#[async_trait]
pub trait DeviceRegistry: Send + Sync + std::fmt::Debug {
    /// Switches the user's device on (registering it the first time). A token belongs to one
    /// user: activating it for another moves it. A user keeps at most a backend's cap of
    /// devices ([`MAX_DEVICES_PER_USER`] by default): activating one more forgets the least
    /// recently activated, so no user's devices pile up.
    async fn activate(&self, device: Device) -> Result<()>;

    /// Switches the user's device off; false if the user had no such active device.
    async fn deactivate(&self, user: UserId, token: &str) -> Result<bool>;

    /// Switches a token off for whoever holds it (the provider said it is gone).
    async fn forget(&self, token: &str) -> Result<()>;

    /// The active devices of these users.
    async fn devices(&self, users: &[UserId]) -> Result<Vec<Device>>;
}

/// The durable plan of reminders: what will be sent when.
#[async_trait]
pub trait Scheduler: Send + Sync + std::fmt::Debug {
    /// Plans the reminder. If one with the same key is planned already (or was sent), it is
    /// kept as it is and this returns false.
    async fn schedule(&self, reminder: &Reminder) -> Result<bool>;

    /// Cancels a pending reminder; false if none was pending.
    async fn cancel(&self, key: &ReminderKey) -> Result<bool>;

    /// The pending reminder with this key.
    async fn pending(&self, key: &ReminderKey) -> Result<Option<Reminder>>;

    /// Which of `keys` have a pending reminder. Backends that can answer for many keys at once
    /// override this (one query instead of one per key).
    async fn pending_keys(
        &self,
        keys: &[ReminderKey],
    ) -> Result<std::collections::HashSet<ReminderKey>> {
        let mut found = std::collections::HashSet::new();
        for key in keys {
            if self.pending(key).await?.is_some() {
                found.insert(*key);
            }
        }
        Ok(found)
    }
}

/// Where due reminders come from: a table polled by due time, or a queue a cloud scheduler
/// feeds. A claim is a lease: a reminder neither finished nor retried before its lease ends is
/// handed out again (so a dispatcher that crashes loses nothing). The SQL and memory sources
/// never lease one reminder to two claimers at once; a queue (SQS) delivers at least once and
/// may, so sending stays idempotent through the dispatcher's ledger either way.
#[async_trait]
pub trait DueSource: Send + Sync + std::fmt::Debug {
    /// Up to `max` due reminders, leased to the caller for `lease`.
    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>>;

    /// Ends claims for good.
    async fn finish(&self, done: &[(Claimed, Finish)]) -> Result<()>;

    /// Hands a claim out again after `after`.
    async fn retry(&self, claimed: &Claimed, after: Duration) -> Result<()>;
}

/// The record that makes each delivery happen once, and the user's list of notifications.
#[async_trait]
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// Marks each delivery as in flight unless it was sent, or is in flight since
    /// `stale_before` or later; says what to do with each, in order.
    async fn begin(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<Begin>>;

    /// Marks deliveries as sent.
    async fn sent(&self, ids: &[DeliveryId], now: DateTime<Utc>) -> Result<()>;

    /// Clears the in-flight marks of deliveries whose send failed, so the next attempt may
    /// begin them at once (sent ones are left alone).
    async fn abandon(&self, ids: &[DeliveryId]) -> Result<()>;

    /// Adds delivered reminders to their users' notification lists (once per reminder).
    async fn notified(&self, reminders: &[Reminder], now: DateTime<Utc>) -> Result<()>;

    /// The user's latest notifications, newest first.
    async fn recent(&self, user: UserId, limit: usize) -> Result<Vec<Notification>>;
}
