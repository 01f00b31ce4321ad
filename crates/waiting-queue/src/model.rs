//! The vocabulary of the engine: queue names, policies, places, ticks and statistics.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::QueueError;

/// The longest queue name, in bytes.
pub const QUEUE_NAME_MAX: usize = 100;
/// The longest user key, in bytes.
pub const USER_MAX: usize = 256;

/// A queue's name: 1 to 100 ASCII letters, digits, `_`, `-` or `.`.
///
/// The restriction keeps names safe inside Redis keys (`users:queue:{name}:wait`), log lines and
/// URLs; a scan splits keys on `:`, which a name therefore may not contain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// Checks and wraps `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, QueueError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= QUEUE_NAME_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if valid {
            Ok(Self(name))
        } else {
            Err(QueueError::Invalid {
                field: "queue",
                reason: format!(
                    "1 to {QUEUE_NAME_MAX} characters of letters, digits, '_', '-' or '.'"
                ),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for QueueName {
    type Err = QueueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Checks a user key: 1 to 256 bytes without control characters (keys are joined with newlines
/// inside admission tokens and must not be able to forge a field).
pub(crate) fn check_user(user: &str) -> Result<(), QueueError> {
    if user.is_empty() || user.len() > USER_MAX || user.chars().any(char::is_control) {
        return Err(QueueError::Invalid {
            field: "user",
            reason: format!("1 to {USER_MAX} bytes without control characters"),
        });
    }
    Ok(())
}

/// How a queue admits people. Start from [`Policy::default`] and change what you need with the
/// `with_*` methods; new fields may be added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Policy {
    /// How many are admitted per tick.
    pub batch_size: u32,
    /// Time between ticks.
    #[serde(with = "millis")]
    pub interval: Duration,
    /// At most this many admitted users at once (admissions not yet finished or expired).
    pub max_active: Option<u32>,
    /// How long an admission lasts if the user does not finish.
    #[serde(with = "millis")]
    pub admitted_ttl: Duration,
    /// Waiters not heard from (join or rank) for this long are dropped at the next tick.
    #[serde(with = "opt_millis")]
    pub idle_timeout: Option<Duration>,
    /// A user who joins while nobody is waiting is admitted at once (within the interval's
    /// batch and the cap), so a quiet queue feels like no queue at all.
    #[serde(default)]
    pub admit_when_idle: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            batch_size: 10,
            interval: Duration::from_secs(1),
            max_active: None,
            admitted_ttl: Duration::from_secs(600),
            idle_timeout: None,
            admit_when_idle: false,
        }
    }
}

impl Policy {
    /// Admits `batch_size` per tick.
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: u32) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Ticks every `interval`.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// At most `max_active` admitted at once (`None`: no cap).
    #[must_use]
    pub fn with_max_active(mut self, max_active: Option<u32>) -> Self {
        self.max_active = max_active;
        self
    }

    /// An admission lasts `ttl` unless finished.
    #[must_use]
    pub fn with_admitted_ttl(mut self, ttl: Duration) -> Self {
        self.admitted_ttl = ttl;
        self
    }

    /// Waiters silent for `timeout` are dropped (`None`: never).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Whether someone joining an empty line is admitted at once.
    #[must_use]
    pub fn with_admit_when_idle(mut self, admit: bool) -> Self {
        self.admit_when_idle = admit;
        self
    }

    /// Checks that every field is in range.
    pub fn validate(&self) -> Result<(), QueueError> {
        let invalid = |field, reason: &str| {
            Err(QueueError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        const DAY: Duration = Duration::from_secs(86_400);
        if !(1..=100_000).contains(&self.batch_size) {
            return invalid("batchSize", "1 to 100000");
        }
        if self.interval > DAY {
            return invalid("interval", "at most a day");
        }
        if self.max_active == Some(0) {
            return invalid("maxActive", "at least 1 when set");
        }
        if self.admitted_ttl < Duration::from_secs(1) || self.admitted_ttl > DAY {
            return invalid("admittedTtl", "1 second to a day");
        }
        if let Some(idle) = self.idle_timeout
            && (idle < Duration::from_secs(1) || idle > DAY)
        {
            return invalid("idleTimeout", "1 second to a day");
        }
        Ok(())
    }

    /// Admissions per second this policy allows when nothing else limits it.
    pub fn nominal_rate(&self) -> f64 {
        f64::from(self.batch_size) / self.interval.as_secs_f64().max(0.001)
    }
}

/// Where a user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Joined before the queue's opening: no order yet. At the opening everyone here is put in
    /// a random order (see [`crate::lottery`]), ahead of everyone who joins afterwards.
    PreQueue {
        /// When the queue opens.
        opens_at: DateTime<Utc>,
        /// False when the user was already in the pre-queue.
        new: bool,
    },
    /// In line.
    Waiting {
        /// 1-based position.
        rank: u64,
        /// False when the user was already waiting (and kept their place).
        new: bool,
    },
    /// Admitted and not yet expired: they may proceed.
    Admitted(Admission),
}

/// A live admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// When it lapses unless the user finishes first.
    pub expires_at: DateTime<Utc>,
    /// Its number in the queue (unique per queue): what a token carries, so that an admission
    /// is used once ([`WaitingQueue::consume`](crate::WaitingQueue::consume)).
    pub id: u64,
}

/// What [`consume`](crate::WaitingQueue::consume) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// The admission was live and is now used.
    Consumed,
    /// It was used already (a replay, or a second request with one admission).
    AlreadyUsed,
    /// The user holds no live admission with that number (expired, finished, or another).
    NotAdmitted,
}

/// When a tick applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickRule {
    /// If at least the policy's interval has passed since the last tick. Any number of nodes may
    /// call this as often as they like: the queue admits once per interval.
    Due,
    /// If this is tick number `n`, i.e. the queue's counter is at `n - 1`: redelivered or
    /// duplicated tick messages (SQS is at-least-once) apply once.
    Sequence(u64),
}

/// What a tick or a manual admission did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Whether it ran (a tick that was not due, or not next in sequence, changes nothing).
    pub applied: bool,
    /// The queue's tick counter afterwards.
    pub tick: u64,
    /// Who was admitted, in order of arrival.
    pub admitted: Vec<String>,
    /// Admissions that lapsed.
    pub expired: u64,
    /// Waiters dropped for silence.
    pub dropped: u64,
    /// Still waiting afterwards.
    pub waiting: u64,
}

/// A queue's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// People in line.
    pub waiting: u64,
    /// Admissions currently live.
    pub admitted: u64,
    /// Everyone ever admitted.
    pub admitted_total: u64,
    /// Whether admission is paused.
    pub paused: bool,
    /// Whether the policy was configured for this queue (rather than the engine's default).
    pub configured: bool,
    /// The policy in force.
    pub policy: Policy,
    /// Ticks applied so far.
    pub tick: u64,
    /// When the last tick was applied.
    pub last_tick_at: Option<DateTime<Utc>>,
    /// Admissions per second over the last minute.
    pub admission_rate: f64,
    /// When the queue opens (or opened), if an opening was scheduled.
    pub opens_at: Option<DateTime<Utc>>,
    /// When the opening took effect (the pre-queue was put in order).
    pub opened_at: Option<DateTime<Utc>>,
    /// People in the pre-queue (before the opening; 0 after it).
    pub pre_queue: u64,
    /// The seed the pre-queue's order came from: shown once the queue opened, so that the order
    /// can be checked ([`crate::lottery::order`]) and no one can pick accounts by it beforehand.
    pub seed: Option<u64>,
    /// Admission is closed: nothing left to sell.
    pub sold_out: bool,
    /// Admissions used by the request they allowed.
    pub consumed_total: u64,
}

impl QueueStats {
    /// The numbers of a queue nobody used, under `policy`.
    pub fn empty(policy: Policy) -> Self {
        Self {
            waiting: 0,
            admitted: 0,
            admitted_total: 0,
            paused: false,
            configured: false,
            policy,
            tick: 0,
            last_tick_at: None,
            admission_rate: 0.0,
            opens_at: None,
            opened_at: None,
            pre_queue: 0,
            seed: None,
            sold_out: false,
            consumed_total: 0,
        }
    }

    /// How long the person at `rank` can expect to wait: by the observed rate, or the policy's
    /// when nobody was admitted lately. `None` while paused or sold out.
    pub fn estimated_wait(&self, rank: u64) -> Option<Duration> {
        if self.paused || self.sold_out {
            return None;
        }
        let rate = if self.admission_rate > 0.0 {
            self.admission_rate
        } else {
            self.policy.nominal_rate()
        };
        Some(Duration::from_secs_f64(rank as f64 / rate))
    }
}

/// Admissions per second from recent ticks `(at_ms, admitted)` over the last minute: what they
/// admitted divided by the time they covered (at least one interval per tick, so a burst just
/// after a tick does not read as a higher rate).
pub(crate) fn rate(
    recent: impl IntoIterator<Item = (i64, u64)>,
    now_ms: i64,
    policy: &Policy,
) -> f64 {
    const WINDOW_MS: i64 = 60_000;
    let (mut sum, mut ticks, mut oldest) = (0u64, 0i64, now_ms);
    for (at, count) in recent {
        if at > now_ms - WINDOW_MS {
            sum += count;
            ticks += 1;
            oldest = oldest.min(at);
        }
    }
    if sum == 0 {
        return 0.0;
    }
    let interval = i64::try_from(policy.interval.as_millis()).unwrap_or(WINDOW_MS);
    let span = (now_ms - oldest)
        .max(ticks.saturating_mul(interval))
        .clamp(1_000, WINDOW_MS);
    sum as f64 * 1000.0 / span as f64
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }
}

mod opt_millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        <Option<u64> as serde::Deserialize>::deserialize(d).map(|v| v.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked() {
        assert!(QueueName::new("festival15").is_ok());
        assert!(QueueName::new("a.b-c_d").is_ok());
        for bad in ["", "a:b", "a b", "é", &"x".repeat(101)] {
            assert!(QueueName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_keys_without_control_characters() {
        assert!(check_user("someone@example.com").is_ok());
        assert!(check_user("a\nb").is_err());
        assert!(check_user("").is_err());
        assert!(check_user(&"x".repeat(257)).is_err());
    }

    #[test]
    fn rate_counts_the_last_minute() {
        let policy = Policy::default();
        // Ten admitted each second for a minute, plus old ticks that no longer count.
        let recent: Vec<(i64, u64)> = (0..60)
            .map(|s| (100_000 - s * 1000, 10))
            .chain([(10_000, 1000)])
            .collect();
        let r = rate(recent, 100_000, &policy);
        assert!((r - 10.0).abs() < 0.5, "{r}");
        assert_eq!(rate([], 100_000, &policy), 0.0);
    }

    #[test]
    fn estimated_wait_uses_the_policy_until_admissions_are_seen() {
        let mut stats = QueueStats {
            waiting: 100,
            ..QueueStats::empty(Policy::default())
        };
        assert_eq!(stats.estimated_wait(50), Some(Duration::from_secs(5)));
        stats.admission_rate = 2.0;
        assert_eq!(stats.estimated_wait(50), Some(Duration::from_secs(25)));
        stats.paused = true;
        assert_eq!(stats.estimated_wait(50), None);
    }

    #[test]
    fn policies_are_validated() {
        assert!(Policy::default().validate().is_ok());
        let bad = [
            Policy {
                batch_size: 0,
                ..Policy::default()
            },
            Policy {
                max_active: Some(0),
                ..Policy::default()
            },
            Policy {
                admitted_ttl: Duration::ZERO,
                ..Policy::default()
            },
            Policy {
                idle_timeout: Some(Duration::from_millis(10)),
                ..Policy::default()
            },
        ];
        for p in bad {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }
}
