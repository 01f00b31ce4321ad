//! `[queue]` and `[tickets]`: waiting rooms and ticket stock.

use serde::{Deserialize, Serialize};

use super::serde_with::empty_is_none;

/// Waiting rooms in front of ticket sales: the default admission policy and how admission is
/// driven. Every booking needs an admission unless its festival's sale is not queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// `interval` (every node ticks; each queue admits once per interval) or `sqs` (ticks travel
    /// through the SQS queue `sqs_queue`, the seed's design).
    pub driver: QueueDriver,
    /// The SQS queue of admission ticks (created if missing), for `driver = "sqs"`.
    pub sqs_queue: String,
    /// Users admitted per tick (the seed's 10).
    pub batch_size: u32,
    /// Milliseconds between ticks.
    pub interval_ms: u64,
    /// Most admitted users at once per queue (0: no cap).
    pub max_active: u32,
    /// How long an admission lasts, in seconds (the seed's never ended).
    pub admitted_ttl_secs: u64,
    /// Waiters silent this long are dropped (0: never). Asking one's rank, or an open event
    /// stream, counts as a sign of life.
    pub idle_timeout_secs: u64,
    /// Someone joining an empty waiting room is admitted at once (within the interval's batch
    /// and the cap), so a quiet festival feels like no queue at all.
    pub admit_when_idle: bool,
    /// The key of admission tokens, at least 32 bytes. Unset, one is made at first start and
    /// kept in the database, which every node shares.
    #[serde(deserialize_with = "empty_is_none")]
    pub token_secret: Option<String>,
    /// A file holding the token key (mounted secrets).
    #[serde(deserialize_with = "empty_is_none")]
    pub token_secret_file: Option<String>,
    /// How often an event stream's server looks for rank changes, in milliseconds.
    pub watch_poll_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            driver: QueueDriver::Interval,
            sqs_queue: "somsom-queue-ticks".to_owned(),
            batch_size: 10,
            interval_ms: 1_000,
            max_active: 0,
            admitted_ttl_secs: 600,
            idle_timeout_secs: 0,
            admit_when_idle: true,
            token_secret: None,
            token_secret_file: None,
            watch_poll_ms: 250,
        }
    }
}

impl QueueSettings {
    /// The default policy these settings describe.
    pub fn policy(&self) -> waiting_queue::Policy {
        use std::time::Duration;
        waiting_queue::Policy::default()
            .with_batch_size(self.batch_size)
            .with_interval(Duration::from_millis(self.interval_ms))
            .with_max_active((self.max_active > 0).then_some(self.max_active))
            .with_admitted_ttl(Duration::from_secs(self.admitted_ttl_secs))
            .with_idle_timeout(
                (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs)),
            )
            .with_admit_when_idle(self.admit_when_idle)
    }
}

/// What drives admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueDriver {
    /// A local ticker on every node.
    Interval,
    /// Tick messages through SQS.
    Sqs,
}

/// Ticket stock and booking rules (`SOMSOM_TICKETS__STRATEGY`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketSettings {
    /// `row_lock` (the seed's `SELECT … FOR UPDATE`), `conditional_update`, or `group_commit`
    /// (the row lock, a day's concurrent bookings booked in one transaction).
    pub strategy: ticket_lock::sql::Strategy,
    /// Tickets per festival day when a festival is created without a number.
    pub per_day: u32,
    /// Most tickets in one reservation, unless the festival says otherwise.
    pub max_per_reservation: u32,
    /// Most tickets one user may hold for one day, unless the festival says otherwise.
    pub max_per_user_per_day: u32,
    /// The e-ticket key, at least 32 bytes. Unset, one is made at first start and kept in the
    /// database, which every node shares.
    #[serde(deserialize_with = "empty_is_none")]
    pub code_secret: Option<String>,
    /// A file holding the e-ticket key (mounted secrets).
    #[serde(deserialize_with = "empty_is_none")]
    pub code_secret_file: Option<String>,
}

impl Default for TicketSettings {
    fn default() -> Self {
        Self {
            strategy: ticket_lock::sql::Strategy::GroupCommit,
            per_day: 100,
            max_per_reservation: 4,
            max_per_user_per_day: 4,
            code_secret: None,
            code_secret_file: None,
        }
    }
}
