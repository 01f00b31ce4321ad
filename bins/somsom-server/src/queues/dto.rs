//! Request and response bodies of the queue routes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use waiting_queue::{Policy, QueueName, QueueStats};

/// The seed's waiting-room answer (`{"allowed":true,"rank":null}` or `{"allowed":false,"rank":N}`),
/// with the drop's state: waiting for the opening, sold out, and the expected wait.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitingRoomResponse {
    /// Admitted: go on to book.
    pub allowed: bool,
    /// 1-based rank while waiting, `null` when allowed or before the opening.
    pub rank: Option<u64>,
    /// In the pre-queue: everyone here is put in a random order at the opening, ahead of those
    /// who come later.
    pub waiting_for_opening: bool,
    /// When the sale opens (RFC 3339), before it does.
    pub opens_at: Option<String>,
    /// Nothing left to sell: nobody is admitted (waiters keep their places in case tickets
    /// come back).
    pub sold_out: bool,
    /// Expected seconds until admission (`null` when allowed, paused or sold out).
    pub estimated_wait_secs: Option<f64>,
}

/// `{"rank": N}`, -1 when not waiting, with the same drop state as the waiting room's answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RankResponse {
    /// 1-based rank, or -1 (not waiting, or before the opening).
    pub rank: i64,
    /// In the pre-queue.
    pub waiting_for_opening: bool,
    /// When the sale opens (RFC 3339), before it does.
    pub opens_at: Option<String>,
    /// Nothing left to sell.
    pub sold_out: bool,
    /// Expected seconds until admission.
    pub estimated_wait_secs: Option<f64>,
}

/// `{"allowed": bool}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AllowedResponse {
    /// Whether the caller is admitted now.
    pub allowed: bool,
}

/// A queue's admission policy; fields left out take the server's defaults.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRequest {
    /// Users admitted per tick.
    pub batch_size: Option<u32>,
    /// Milliseconds between ticks.
    pub interval_ms: Option<u64>,
    /// Most admitted users at once (0: no cap).
    pub max_active: Option<u32>,
    /// How long an admission lasts, in seconds.
    pub admitted_ttl_secs: Option<u64>,
    /// Waiters silent this long are dropped (0: never).
    pub idle_timeout_secs: Option<u64>,
    /// Someone joining an empty line is admitted at once (within the batch and the cap).
    pub admit_when_idle: Option<bool>,
}

impl PolicyRequest {
    /// The policy: `defaults` with the given fields replaced.
    pub fn apply(&self, defaults: Policy) -> Policy {
        use std::time::Duration;
        defaults
            .with_batch_size(self.batch_size.unwrap_or(defaults.batch_size))
            .with_interval(
                self.interval_ms
                    .map_or(defaults.interval, Duration::from_millis),
            )
            .with_max_active(match self.max_active {
                Some(0) => None,
                Some(n) => Some(n),
                None => defaults.max_active,
            })
            .with_admitted_ttl(
                self.admitted_ttl_secs
                    .map_or(defaults.admitted_ttl, Duration::from_secs),
            )
            .with_idle_timeout(match self.idle_timeout_secs {
                Some(0) => None,
                Some(s) => Some(Duration::from_secs(s)),
                None => defaults.idle_timeout,
            })
            .with_admit_when_idle(self.admit_when_idle.unwrap_or(defaults.admit_when_idle))
    }
}

/// A queue's numbers, for admins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatsResponse {
    /// The queue.
    pub queue: String,
    /// People in line.
    pub waiting: u64,
    /// Live admissions.
    pub admitted: u64,
    /// Everyone admitted so far.
    pub admitted_total: u64,
    /// Whether admission is paused.
    pub paused: bool,
    /// Whether an admin set this queue's policy.
    pub configured: bool,
    /// Whether bookings need an admission (the festival's sale is queued).
    pub gated: bool,
    /// People in the pre-queue (before the opening).
    pub pre_queue: u64,
    /// When the sale opens or opened (RFC 3339), if it has an opening.
    pub opens_at: Option<String>,
    /// When the opening took effect (RFC 3339).
    pub opened_at: Option<String>,
    /// The seed of the pre-queue's lottery, once open: with the pre-queue's members it gives
    /// their order (`waiting_queue::lottery::order`).
    pub shuffle_seed: Option<String>,
    /// Admission is closed: sold out.
    pub sold_out: bool,
    /// Admissions used by the booking they allowed.
    pub admissions_consumed: u64,
    /// Someone joining an empty line is admitted at once.
    pub admit_when_idle: bool,
    /// Users admitted per tick.
    pub batch_size: u32,
    /// Milliseconds between ticks.
    pub interval_ms: u64,
    /// Most admitted users at once (0: no cap).
    pub max_active: u32,
    /// Admission lifetime in seconds.
    pub admitted_ttl_secs: u64,
    /// Idle timeout in seconds (0: none).
    pub idle_timeout_secs: u64,
    /// Ticks applied.
    pub tick: u64,
    /// When the last tick applied (RFC 3339).
    pub last_tick_at: Option<String>,
    /// Admissions per second over the last minute.
    pub admission_rate: f64,
    /// Expected wait of the last person in line, in seconds (`null` while paused).
    pub estimated_wait_secs: Option<f64>,
}

impl QueueStatsResponse {
    /// From the engine's statistics.
    pub fn new(queue: &QueueName, stats: &QueueStats, gated: bool) -> Self {
        let p = &stats.policy;
        Self {
            queue: queue.to_string(),
            waiting: stats.waiting,
            admitted: stats.admitted,
            admitted_total: stats.admitted_total,
            paused: stats.paused,
            configured: stats.configured,
            gated,
            pre_queue: stats.pre_queue,
            opens_at: stats.opens_at.map(|t| t.to_rfc3339()),
            opened_at: stats.opened_at.map(|t| t.to_rfc3339()),
            shuffle_seed: stats.seed.map(|s| s.to_string()),
            sold_out: stats.sold_out,
            admissions_consumed: stats.consumed_total,
            admit_when_idle: p.admit_when_idle,
            batch_size: p.batch_size,
            interval_ms: u64::try_from(p.interval.as_millis()).unwrap_or(u64::MAX),
            max_active: p.max_active.unwrap_or(0),
            admitted_ttl_secs: p.admitted_ttl.as_secs(),
            idle_timeout_secs: p.idle_timeout.map_or(0, |d| d.as_secs()),
            tick: stats.tick,
            last_tick_at: stats.last_tick_at.map(|t| t.to_rfc3339()),
            admission_rate: stats.admission_rate,
            estimated_wait_secs: stats.estimated_wait(stats.waiting).map(|d| d.as_secs_f64()),
        }
    }
}

/// An event of `GET /queues/{queue}/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueEvent {
    /// Admitted now.
    pub allowed: bool,
    /// 1-based rank while waiting; -1 once not waiting.
    pub rank: i64,
    /// People ahead.
    pub ahead: u64,
    /// People in line in all.
    pub waiting: u64,
    /// Expected wait in seconds (`null` while paused or once admitted).
    pub estimated_wait_secs: Option<f64>,
    /// On the `admitted` event: the token to book with.
    pub admission_token: Option<String>,
    /// On the `admitted` event: when the admission lapses (RFC 3339).
    pub expires_at: Option<String>,
    /// In the pre-queue (event `prequeue`): no rank until the opening.
    pub waiting_for_opening: bool,
    /// When the sale opens (RFC 3339), before it does.
    pub opens_at: Option<String>,
    /// Nothing left to sell (event `soldOut`).
    pub sold_out: bool,
}
