//! The in-process backend: one lock per queue, ranks in O(log n), a million waiters in a few
//! hundred bytes each.

mod arrivals;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine_clock::{Clock, SystemClock};

use crate::model::{check_user, rate};
use crate::{
    Admission, Consumption, Place, Policy, QueueError, QueueName, QueueStats, Result, Tick,
    TickRule, WaitingQueue, lottery,
};
use arrivals::Arrivals;

/// How many recent ticks are kept for the admission rate.
const RECENT_TICKS: usize = 64;
/// A sign of life within this long of the last one is not recorded again (keeps `rank` cheap).
const SEEN_RESOLUTION_MS: i64 = 1_000;

/// The in-memory [`WaitingQueue`].
#[derive(Debug)]
pub struct MemoryQueue {
    clock: Arc<dyn Clock>,
    default_policy: Policy,
    queues: RwLock<HashMap<QueueName, Arc<Mutex<Line>>>>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQueue {
    /// An empty engine on the system clock, with the default [`Policy`].
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            default_policy: Policy::default(),
            queues: RwLock::default(),
        }
    }

    /// Reads the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `policy` for queues that were not configured.
    pub fn with_default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = policy;
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn line(&self, queue: &QueueName) -> Arc<Mutex<Line>> {
        if let Some(line) = self.queues.read().expect("lock").get(queue) {
            return line.clone();
        }
        self.queues
            .write()
            .expect("lock")
            .entry(queue.clone())
            .or_default()
            .clone()
    }

    fn existing(&self, queue: &QueueName) -> Option<Arc<Mutex<Line>>> {
        self.queues.read().expect("lock").get(queue).cloned()
    }

    /// Runs `f` on an existing queue, or returns `absent` without creating one.
    fn read<T>(&self, queue: &QueueName, absent: T, f: impl FnOnce(&mut Line) -> T) -> T {
        match self.existing(queue) {
            Some(line) => f(&mut line.lock().expect("lock")),
            None => absent,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    seq: u64,
    /// Last sign of life; `None` for someone put in line from the pre-queue who has not been
    /// heard from since (they are not dropped as idle: they were told to wait for the opening).
    seen_ms: Option<i64>,
}

/// An admission held by a user.
#[derive(Debug, Clone, Copy)]
struct Held {
    expires: i64,
    id: u64,
    /// Used by the request it allowed: no longer live, kept until it expires to tell a replay.
    consumed: bool,
}

impl Held {
    fn live(&self, now: i64) -> bool {
        !self.consumed && self.expires > now
    }
}

/// One queue's state.
#[derive(Debug, Default)]
struct Line {
    arrivals: Arrivals,
    waiting: HashMap<Arc<str>, Waiter>,
    /// (last sign of life, arrival) of every waiter heard from, oldest first, for idle drops.
    seen: BTreeSet<(i64, u64)>,
    admitted: HashMap<Arc<str>, Held>,
    expiries: BTreeSet<(i64, Arc<str>)>,
    policy: Option<Policy>,
    paused: bool,
    tick: u64,
    last_tick_ms: Option<i64>,
    admitted_total: u64,
    consumed_total: u64,
    /// Admitted at join since the last tick (counted against the next tick's batch).
    burst: u32,
    /// Admitted in this interval, by the tick and at join: joiners are admitted at once only
    /// while this is under the batch, so no interval admits more than one batch.
    spent: u32,
    recent: VecDeque<(i64, u64)>,
    version: u64,
    opens_at: Option<i64>,
    opened_at: Option<i64>,
    seed: Option<u64>,
    /// The pre-queue in lottery order, and each member's number.
    pre: BTreeSet<(u64, Arc<str>)>,
    pre_numbers: HashMap<Arc<str>, u64>,
    sold_out: bool,
}

impl Line {
    fn policy(&self, default: &Policy) -> Policy {
        self.policy.unwrap_or(*default)
    }

    fn is_open(&self) -> bool {
        self.opens_at.is_none() || self.opened_at.is_some()
    }

    /// At the opening, the pre-queue goes in line in lottery order, ahead of everyone after.
    /// Its order was kept sorted as people joined, so this is a walk, not a shuffle.
    fn open_if_due(&mut self, now: i64) {
        let Some(at) = self.opens_at else { return };
        if self.opened_at.is_some() || now < at {
            return;
        }
        self.opened_at = Some(now);
        for (_, user) in std::mem::take(&mut self.pre) {
            let seq = self.arrivals.push(user.clone());
            self.waiting.insert(user, Waiter { seq, seen_ms: None });
        }
        self.pre_numbers.clear();
        self.version += 1;
    }

    fn live_admission(&self, user: &str, now: i64) -> Option<Held> {
        self.admitted.get(user).copied().filter(|h| h.live(now))
    }

    fn active(&self, now: i64) -> usize {
        self.admitted.values().filter(|h| h.live(now)).count()
    }

    fn touch(&mut self, user: &str, now: i64) {
        if let Some(w) = self.waiting.get_mut(user) {
            match w.seen_ms {
                Some(seen) if now - seen < SEEN_RESOLUTION_MS => {}
                Some(seen) => {
                    self.seen.remove(&(seen, w.seq));
                    w.seen_ms = Some(now);
                    self.seen.insert((now, w.seq));
                }
                None => {
                    w.seen_ms = Some(now);
                    self.seen.insert((now, w.seq));
                }
            }
        }
    }

    fn remove_waiter(&mut self, user: &str) -> bool {
        if let Some(number) = self.pre_numbers.remove(user) {
            self.pre.remove(&(number, Arc::from(user)));
            return true;
        }
        let Some(w) = self.waiting.remove(user) else {
            return false;
        };
        if let Some(seen) = w.seen_ms {
            self.seen.remove(&(seen, w.seq));
        }
        self.arrivals.remove(w.seq);
        true
    }

    fn remove_admission(&mut self, user: &str) -> Option<Held> {
        let (key, held) = self.admitted.remove_entry(user)?;
        self.expiries.remove(&(held.expires, key));
        Some(held)
    }

    fn expire(&mut self, now: i64) -> u64 {
        let mut expired = 0;
        while let Some((at, _)) = self.expiries.first()
            && *at <= now
        {
            let (_, user) = self.expiries.pop_first().expect("checked");
            if let Some(held) = self.admitted.remove(&user)
                && !held.consumed
            {
                expired += 1;
            }
        }
        expired
    }

    fn drop_idle(&mut self, now: i64, idle_ms: i64) -> u64 {
        let mut dropped = 0;
        while let Some(&(seen, seq)) = self.seen.first()
            && seen <= now - idle_ms
        {
            self.seen.pop_first();
            if let Some(user) = self.arrivals.remove(seq) {
                self.waiting.remove(&user);
            }
            dropped += 1;
        }
        dropped
    }

    fn grant(&mut self, user: Arc<str>, policy: &Policy, now: i64) -> Held {
        self.admitted_total += 1;
        let held = Held {
            expires: now + i64::try_from(policy.admitted_ttl.as_millis()).unwrap_or(i64::MAX),
            id: self.admitted_total,
            consumed: false,
        };
        if let Some(old) = self.admitted.insert(user.clone(), held) {
            self.expiries.remove(&(old.expires, user.clone()));
        }
        self.expiries.insert((held.expires, user));
        held
    }

    fn record(&mut self, now: i64, count: usize) {
        if count > 0 {
            if self.recent.len() == RECENT_TICKS {
                self.recent.pop_back();
            }
            self.recent.push_front((now, count as u64));
        }
    }

    /// Admits up to `count` within the cap; records the admissions.
    fn admit(&mut self, count: u32, policy: &Policy, now: i64) -> Vec<String> {
        let room = match policy.max_active {
            Some(cap) => (cap as usize).saturating_sub(self.active(now)),
            None => usize::MAX,
        };
        let batch = self.arrivals.pop_front(room.min(count as usize));
        let mut names = Vec::with_capacity(batch.len());
        for (seq, user) in batch {
            if let Some(w) = self.waiting.remove(&user)
                && let Some(seen) = w.seen_ms
            {
                self.seen.remove(&(seen, seq));
            }
            self.grant(user.clone(), policy, now);
            names.push(user.to_string());
        }
        self.record(now, names.len());
        names
    }

    /// Whether a joiner may be admitted at once: nobody ahead, and room in this interval's
    /// batch and under the cap.
    fn may_admit_now(&self, policy: &Policy, now: i64) -> bool {
        policy.admit_when_idle
            && self.is_open()
            && !self.paused
            && self.waiting.is_empty()
            && self.spent < policy.batch_size
            && policy
                .max_active
                .is_none_or(|cap| self.active(now) < cap as usize)
    }

    fn place(&mut self, user: &str, now: i64) -> Option<Place> {
        if let Some(held) = self.live_admission(user, now) {
            return Some(Place::Admitted(admission(held)));
        }
        if let Some(seq) = self.waiting.get(user).map(|w| w.seq) {
            self.touch(user, now);
            return Some(Place::Waiting {
                rank: self.arrivals.rank(seq),
                new: false,
            });
        }
        if self.pre_numbers.contains_key(user) {
            return Some(Place::PreQueue {
                opens_at: to_time(self.opens_at.unwrap_or(now)),
                new: false,
            });
        }
        None
    }

    fn is_idle(&self) -> bool {
        self.waiting.is_empty()
            && self.admitted.is_empty()
            && self.pre.is_empty()
            && self.policy.is_none()
            && self.is_open()
    }
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn admission(held: Held) -> Admission {
    Admission {
        expires_at: to_time(held.expires),
        id: held.id,
    }
}

#[async_trait]
impl WaitingQueue for MemoryQueue {
    async fn join(&self, queue: &QueueName, user: &str) -> Result<Place> {
        check_user(user)?;
        let now = self.now_ms();
        let line = self.line(queue);
        let mut line = line.lock().expect("lock");
        line.open_if_due(now);
        if let Some(place) = line.place(user, now) {
            return Ok(place);
        }
        // A lapsed or used admission ends here: the user starts again at the back.
        line.remove_admission(user);
        if line.sold_out {
            return Err(QueueError::SoldOut);
        }
        let key: Arc<str> = Arc::from(user);
        if !line.is_open() {
            let number = lottery::number(line.seed.unwrap_or_default(), user);
            line.pre.insert((number, key.clone()));
            line.pre_numbers.insert(key, number);
            return Ok(Place::PreQueue {
                opens_at: to_time(line.opens_at.unwrap_or(now)),
                new: true,
            });
        }
        let policy = line.policy(&self.default_policy);
        if line.may_admit_now(&policy, now) {
            line.burst += 1;
            line.spent += 1;
            let held = line.grant(key, &policy, now);
            line.record(now, 1);
            return Ok(Place::Admitted(admission(held)));
        }
        let seq = line.arrivals.push(key.clone());
        line.waiting.insert(
            key,
            Waiter {
                seq,
                seen_ms: Some(now),
            },
        );
        line.seen.insert((now, seq));
        Ok(Place::Waiting {
            rank: line.arrivals.len() as u64,
            new: true,
        })
    }

    async fn place(&self, queue: &QueueName, user: &str) -> Result<Option<Place>> {
        let now = self.now_ms();
        Ok(self.read(queue, None, |line| {
            line.open_if_due(now);
            line.place(user, now)
        }))
    }

    async fn admission(&self, queue: &QueueName, user: &str) -> Result<Option<Admission>> {
        let now = self.now_ms();
        Ok(self.read(queue, None, |line| {
            line.live_admission(user, now).map(admission)
        }))
    }

    async fn leave(&self, queue: &QueueName, user: &str) -> Result<bool> {
        let now = self.now_ms();
        Ok(self.read(queue, false, |line| {
            line.open_if_due(now);
            let left = line.remove_waiter(user);
            if left {
                line.version += 1;
            }
            left
        }))
    }

    async fn finish(&self, queue: &QueueName, user: &str) -> Result<bool> {
        let now = self.now_ms();
        Ok(self.read(queue, false, |line| {
            line.remove_admission(user)
                .is_some_and(|held| held.expires > now)
        }))
    }

    async fn consume(&self, queue: &QueueName, user: &str, id: u64) -> Result<Consumption> {
        let now = self.now_ms();
        Ok(self.read(queue, Consumption::NotAdmitted, |line| {
            match line.admitted.get_mut(user) {
                Some(held) if held.id == id && held.expires > now => {
                    if held.consumed {
                        Consumption::AlreadyUsed
                    } else {
                        held.consumed = true;
                        line.consumed_total += 1;
                        Consumption::Consumed
                    }
                }
                _ => Consumption::NotAdmitted,
            }
        }))
    }

    async fn release(&self, queue: &QueueName, user: &str, id: u64) -> Result<bool> {
        let now = self.now_ms();
        Ok(
            self.read(queue, false, |line| match line.admitted.get_mut(user) {
                Some(held) if held.id == id && held.consumed && held.expires > now => {
                    held.consumed = false;
                    line.consumed_total = line.consumed_total.saturating_sub(1);
                    true
                }
                _ => false,
            }),
        )
    }

    async fn admit(&self, queue: &QueueName, count: u32) -> Result<Tick> {
        let now = self.now_ms();
        let line = self.line(queue);
        let mut line = line.lock().expect("lock");
        line.open_if_due(now);
        let policy = line.policy(&self.default_policy);
        let expired = line.expire(now);
        // By hand even while paused, but never while there is nothing to book.
        let count = if line.sold_out { 0 } else { count };
        let admitted = line.admit(count, &policy, now);
        if !admitted.is_empty() {
            line.version += 1;
        }
        Ok(Tick {
            applied: true,
            tick: line.tick,
            admitted,
            expired,
            dropped: 0,
            waiting: line.waiting.len() as u64,
        })
    }

    async fn tick(&self, queue: &QueueName, rule: TickRule) -> Result<Tick> {
        let now = self.now_ms();
        let Some(line) = self.existing(queue) else {
            return Ok(Tick::default());
        };
        let mut line = line.lock().expect("lock");
        line.open_if_due(now);
        let policy = line.policy(&self.default_policy);
        let due = match rule {
            // The opening starts a fresh interval: the ticks before it admitted nobody.
            TickRule::Due => line.last_tick_ms.is_none_or(|last| {
                now - last >= i64::try_from(policy.interval.as_millis()).unwrap_or(i64::MAX)
                    || line.opened_at.is_some_and(|opened| last < opened)
            }),
            TickRule::Sequence(n) => line.tick + 1 == n,
        };
        if !due {
            return Ok(Tick {
                tick: line.tick,
                waiting: line.waiting.len() as u64,
                ..Tick::default()
            });
        }
        let expired = line.expire(now);
        let dropped = match policy.idle_timeout {
            Some(idle) => line.drop_idle(now, i64::try_from(idle.as_millis()).unwrap_or(i64::MAX)),
            None => 0,
        };
        let admitted = if line.paused || line.sold_out || !line.is_open() {
            Vec::new()
        } else {
            let count = policy.batch_size.saturating_sub(line.burst);
            line.admit(count, &policy, now)
        };
        line.burst = 0;
        line.spent = u32::try_from(admitted.len()).unwrap_or(u32::MAX);
        if !admitted.is_empty() || dropped > 0 {
            line.version += 1;
        }
        line.tick += 1;
        line.last_tick_ms = Some(now);
        Ok(Tick {
            applied: true,
            tick: line.tick,
            admitted,
            expired,
            dropped,
            waiting: line.waiting.len() as u64,
        })
    }

    async fn configure(&self, queue: &QueueName, policy: Option<Policy>) -> Result<()> {
        if let Some(p) = &policy {
            p.validate()?;
        }
        self.line(queue).lock().expect("lock").policy = policy;
        Ok(())
    }

    async fn schedule(&self, queue: &QueueName, opens_at: Option<DateTime<Utc>>) -> Result<()> {
        let now = self.now_ms();
        let line = self.line(queue);
        let mut line = line.lock().expect("lock");
        line.open_if_due(now);
        let at = opens_at.map_or(now, |t| t.timestamp_millis());
        if line.opened_at.is_some() {
            // Opened already: asking again for that opening (or for "now") is fine.
            return if opens_at.is_none() || line.opens_at == Some(at) {
                Ok(())
            } else {
                Err(QueueError::Invalid {
                    field: "opensAt",
                    reason: "the queue opened already".into(),
                })
            };
        }
        if line.opens_at.is_none() && !line.waiting.is_empty() {
            return Err(QueueError::Invalid {
                field: "opensAt",
                reason: "people are waiting already; a pre-queue would jump them".into(),
            });
        }
        if line.seed.is_none() {
            line.seed = Some(rand::random());
        }
        line.opens_at = Some(at);
        line.open_if_due(now);
        Ok(())
    }

    async fn set_sold_out(&self, queue: &QueueName, sold_out: bool) -> Result<()> {
        let line = self.line(queue);
        let mut line = line.lock().expect("lock");
        if line.sold_out != sold_out {
            line.sold_out = sold_out;
            line.version += 1;
        }
        Ok(())
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        self.line(queue).lock().expect("lock").paused = paused;
        Ok(())
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats> {
        let now = self.now_ms();
        let empty = QueueStats::empty(self.default_policy);
        Ok(self.read(queue, empty, |line| {
            line.open_if_due(now);
            let policy = line.policy(&self.default_policy);
            QueueStats {
                waiting: line.waiting.len() as u64,
                admitted: line.active(now) as u64,
                admitted_total: line.admitted_total,
                paused: line.paused,
                configured: line.policy.is_some(),
                policy,
                tick: line.tick,
                last_tick_at: line.last_tick_ms.map(to_time),
                admission_rate: rate(line.recent.iter().copied(), now, &policy),
                opens_at: line.opens_at.map(to_time),
                opened_at: line.opened_at.map(to_time),
                pre_queue: line.pre.len() as u64,
                seed: line.opened_at.and(line.seed),
                sold_out: line.sold_out,
                consumed_total: line.consumed_total,
            }
        }))
    }

    async fn queues(&self) -> Result<Vec<QueueName>> {
        let queues = self.queues.read().expect("lock");
        let mut names: Vec<QueueName> = queues
            .iter()
            .filter(|(_, line)| !line.lock().expect("lock").is_idle())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn version(&self, queue: &QueueName) -> Result<u64> {
        let now = self.now_ms();
        Ok(self.read(queue, 0, |line| {
            line.open_if_due(now);
            line.version
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test]
    async fn memory_queue_passes_the_conformance_suite() {
        conformance::run_all(&|clock| {
            Box::pin(async move {
                Arc::new(MemoryQueue::new().with_clock(clock)) as Arc<dyn WaitingQueue>
            })
        })
        .await;
    }
}
