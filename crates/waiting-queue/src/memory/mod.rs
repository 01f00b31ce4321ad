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
    Admission, Place, Policy, QueueName, QueueStats, Result, Tick, TickRule, WaitingQueue,
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
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryQueue {
    /// An empty engine reading the time from `clock`, with the default [`Policy`].
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            default_policy: Policy::default(),
            queues: RwLock::default(),
        }
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
    seen_ms: i64,
}

/// One queue's state.
#[derive(Debug, Default)]
struct Line {
    arrivals: Arrivals,
    waiting: HashMap<Arc<str>, Waiter>,
    /// (last sign of life, arrival) of every waiter, oldest first, for idle drops.
    seen: BTreeSet<(i64, u64)>,
    /// user → admission expiry.
    admitted: HashMap<Arc<str>, i64>,
    expiries: BTreeSet<(i64, Arc<str>)>,
    policy: Option<Policy>,
    paused: bool,
    tick: u64,
    last_tick_ms: Option<i64>,
    admitted_total: u64,
    recent: VecDeque<(i64, u64)>,
    version: u64,
}

impl Line {
    fn policy(&self, default: &Policy) -> Policy {
        self.policy.unwrap_or(*default)
    }

    fn live_admission(&self, user: &str, now: i64) -> Option<i64> {
        self.admitted.get(user).copied().filter(|&at| at > now)
    }

    fn touch(&mut self, user: &str, now: i64) {
        if let Some(w) = self.waiting.get_mut(user)
            && now - w.seen_ms >= SEEN_RESOLUTION_MS
        {
            self.seen.remove(&(w.seen_ms, w.seq));
            w.seen_ms = now;
            self.seen.insert((now, w.seq));
        }
    }

    fn remove_waiter(&mut self, user: &str) -> bool {
        let Some(w) = self.waiting.remove(user) else {
            return false;
        };
        self.seen.remove(&(w.seen_ms, w.seq));
        self.arrivals.remove(w.seq);
        true
    }

    fn remove_admission(&mut self, user: &str) -> bool {
        match self.admitted.remove_entry(user) {
            Some((key, at)) => {
                self.expiries.remove(&(at, key));
                true
            }
            None => false,
        }
    }

    fn expire(&mut self, now: i64) -> u64 {
        let mut expired = 0;
        while let Some((at, _)) = self.expiries.first()
            && *at <= now
        {
            let (_, user) = self.expiries.pop_first().expect("checked");
            self.admitted.remove(&user);
            expired += 1;
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

    /// Admits up to `count` within the cap; records the admissions.
    fn admit(&mut self, count: u32, policy: &Policy, now: i64) -> Vec<String> {
        let room = match policy.max_active {
            Some(cap) => (cap as usize).saturating_sub(self.admitted.len()),
            None => usize::MAX,
        };
        let expires = now + i64::try_from(policy.admitted_ttl.as_millis()).unwrap_or(i64::MAX);
        let batch = self.arrivals.pop_front(room.min(count as usize));
        let mut names = Vec::with_capacity(batch.len());
        for (seq, user) in batch {
            if let Some(w) = self.waiting.remove(&user) {
                self.seen.remove(&(w.seen_ms, seq));
            }
            self.admitted.insert(user.clone(), expires);
            self.expiries.insert((expires, user.clone()));
            names.push(user.to_string());
        }
        if !names.is_empty() {
            self.admitted_total += names.len() as u64;
            if self.recent.len() == RECENT_TICKS {
                self.recent.pop_back();
            }
            self.recent.push_front((now, names.len() as u64));
        }
        names
    }

    fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.admitted.is_empty() && self.policy.is_none()
    }
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[async_trait]
impl WaitingQueue for MemoryQueue {
    async fn join(&self, queue: &QueueName, user: &str) -> Result<Place> {
        check_user(user)?;
        let now = self.now_ms();
        let line = self.line(queue);
        let mut line = line.lock().expect("lock");
        if let Some(at) = line.live_admission(user, now) {
            return Ok(Place::Admitted(Admission {
                expires_at: to_time(at),
            }));
        }
        // A lapsed admission ends here: the user starts again at the back.
        line.remove_admission(user);
        if let Some(w) = line.waiting.get(user).copied() {
            line.touch(user, now);
            return Ok(Place::Waiting {
                rank: line.arrivals.rank(w.seq),
                new: false,
            });
        }
        let key: Arc<str> = Arc::from(user);
        let seq = line.arrivals.push(key.clone());
        line.waiting.insert(key, Waiter { seq, seen_ms: now });
        line.seen.insert((now, seq));
        Ok(Place::Waiting {
            rank: line.arrivals.len() as u64,
            new: true,
        })
    }

    async fn rank(&self, queue: &QueueName, user: &str) -> Result<Option<u64>> {
        let now = self.now_ms();
        Ok(self.read(queue, None, |line| {
            let seq = line.waiting.get(user)?.seq;
            line.touch(user, now);
            Some(line.arrivals.rank(seq))
        }))
    }

    async fn admission(&self, queue: &QueueName, user: &str) -> Result<Option<Admission>> {
        let now = self.now_ms();
        Ok(self.read(queue, None, |line| {
            line.live_admission(user, now).map(|at| Admission {
                expires_at: to_time(at),
            })
        }))
    }

    async fn leave(&self, queue: &QueueName, user: &str) -> Result<bool> {
        Ok(self.read(queue, false, |line| {
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
            let live = line.live_admission(user, now).is_some();
            line.remove_admission(user);
            live
        }))
    }

    async fn admit(&self, queue: &QueueName, count: u32) -> Result<Tick> {
        let now = self.now_ms();
        let line = self.line(queue);
        let mut line = line.lock().expect("lock");
        let policy = line.policy(&self.default_policy);
        let expired = line.expire(now);
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
        let policy = line.policy(&self.default_policy);
        let due = match rule {
            TickRule::Due => line.last_tick_ms.is_none_or(|last| {
                now - last >= i64::try_from(policy.interval.as_millis()).unwrap_or(i64::MAX)
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
        let admitted = if line.paused {
            Vec::new()
        } else {
            line.admit(policy.batch_size, &policy, now)
        };
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

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        self.line(queue).lock().expect("lock").paused = paused;
        Ok(())
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats> {
        let now = self.now_ms();
        let empty = QueueStats {
            waiting: 0,
            admitted: 0,
            admitted_total: 0,
            paused: false,
            configured: false,
            policy: self.default_policy,
            tick: 0,
            last_tick_at: None,
            admission_rate: 0.0,
        };
        Ok(self.read(queue, empty, |line| {
            let policy = line.policy(&self.default_policy);
            QueueStats {
                waiting: line.waiting.len() as u64,
                admitted: line.admitted.values().filter(|&&at| at > now).count() as u64,
                admitted_total: line.admitted_total,
                paused: line.paused,
                configured: line.policy.is_some(),
                policy,
                tick: line.tick,
                last_tick_at: line.last_tick_ms.map(to_time),
                admission_rate: rate(line.recent.iter().copied(), now, &policy),
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
        Ok(self.read(queue, 0, |line| line.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test]
    async fn memory_queue_passes_the_conformance_suite() {
        conformance::run_all(&|clock| {
            Box::pin(async move { Arc::new(MemoryQueue::new(clock)) as Arc<dyn WaitingQueue> })
        })
        .await;
    }
}
