//! Keyed rate limits in memory that is fixed when they are made.
//!
//! A limiter keyed by something a caller chooses (an e-mail, an address) must not let callers
//! grow it: [`SlotTable`] is a set-associative table allocated once. A key is a 64-bit keyed hash
//! (the hash key is random per process, so a caller cannot aim at one bucket); each bucket holds a
//! few slots. A new key takes an empty slot, or the slot whose owner is closest to being allowed
//! again (the least to lose), so keys that are being held back are the last to be forgotten.
//!
//! Two policies share the table: [`Rate`] (GCRA: `per` requests per period, bursts up to the same
//! number) and [`Backoff`] (free failures, then a wait that doubles with every further failure).

use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

/// Slots per bucket.
const WAYS: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// 0: empty (a real hash of 0 is stored as 1).
    key: u64,
    /// Milliseconds: the earliest time the key is allowed again (GCRA's theoretical arrival
    /// time, or the end of a backoff).
    until: i64,
    /// Consecutive failures (backoff only).
    failures: u32,
}

/// A fixed-size table of per-key states.
#[derive(Debug)]
pub struct SlotTable {
    buckets: Box<[Mutex<[Slot; WAYS]>]>,
    hasher: std::hash::RandomState,
}

impl SlotTable {
    /// A table of at least `slots` slots (rounded up to whole buckets). Its memory is allocated
    /// here and never grows.
    pub fn new(slots: usize) -> Self {
        let buckets = slots.div_ceil(WAYS).max(1);
        Self {
            buckets: (0..buckets)
                .map(|_| Mutex::new([Slot::default(); WAYS]))
                .collect(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// How many slots the table has.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Keys that have a slot now (for tests and metrics).
    pub fn occupied(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| {
                b.lock()
                    .expect("poisoned")
                    .iter()
                    .filter(|s| s.key != 0)
                    .count()
            })
            .sum()
    }

    fn hash(&self, key: &impl Hash) -> u64 {
        self.hasher.hash_one(key).max(1)
    }

    /// Runs `f` on `key`'s slot: the one it has, or a fresh one (`until` = `i64::MIN`).
    fn with_slot<T>(&self, key: u64, f: impl FnOnce(&mut Slot) -> T) -> T {
        let index = (key % self.buckets.len() as u64) as usize;
        let mut bucket = self.buckets[index].lock().expect("poisoned");
        let position = bucket.iter().position(|s| s.key == key).unwrap_or_else(|| {
            // An empty slot, else the one allowed soonest: it has the least to lose.
            let victim = bucket
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| if s.key == 0 { i64::MIN } else { s.until })
                .map_or(0, |(i, _)| i);
            bucket[victim] = Slot {
                key,
                until: i64::MIN,
                failures: 0,
            };
            victim
        });
        f(&mut bucket[position])
    }

    fn forget(&self, key: u64) {
        let index = (key % self.buckets.len() as u64) as usize;
        let mut bucket = self.buckets[index].lock().expect("poisoned");
        if let Some(slot) = bucket.iter_mut().find(|s| s.key == key) {
            *slot = Slot::default();
        }
    }
}

/// `per` requests per `period` for each key, in bursts of up to `per` (GCRA).
#[derive(Debug)]
pub struct Rate {
    table: SlotTable,
    /// Milliseconds between requests at the sustained rate.
    emission: i64,
    /// How far ahead of the sustained rate a burst may run.
    tolerance: i64,
}

impl Rate {
    /// `per` per `period`, in a table of `slots` keys.
    pub fn new(per: u32, period: Duration, slots: usize) -> Self {
        let per = i64::from(per.max(1));
        let emission = (i64::try_from(period.as_millis()).unwrap_or(i64::MAX) / per).max(1);
        Self {
            table: SlotTable::new(slots),
            emission,
            tolerance: emission * (per - 1),
        }
    }

    /// Counts one request for `key` at `now_ms`; `Err(wait)` when it must wait.
    pub fn check(&self, key: &impl Hash, now_ms: i64) -> Result<(), Duration> {
        let key = self.table.hash(key);
        self.table.with_slot(key, |slot| {
            let tat = slot.until.max(now_ms);
            let allowed_at = tat - self.tolerance;
            if now_ms < allowed_at {
                return Err(millis(allowed_at - now_ms));
            }
            slot.until = tat + self.emission;
            Ok(())
        })
    }

    /// The table (for tests and metrics).
    pub fn table(&self) -> &SlotTable {
        &self.table
    }
}

/// Failures per key: `free` of them cost nothing, each further one doubles the wait before the
/// next attempt (from one second up to `max`). A success forgets the key.
#[derive(Debug)]
pub struct Backoff {
    table: SlotTable,
    free: u32,
    max: Duration,
}

impl Backoff {
    /// `free` failures before waits begin, waits up to `max`, in a table of `slots` keys.
    pub fn new(free: u32, max: Duration, slots: usize) -> Self {
        Self {
            table: SlotTable::new(slots),
            free,
            max,
        }
    }

    /// Whether `key` may try now; `Err(wait)` while it is backing off.
    pub fn check(&self, key: &impl Hash, now_ms: i64) -> Result<(), Duration> {
        let key = self.table.hash(key);
        self.table.with_slot(key, |slot| {
            if now_ms < slot.until {
                Err(millis(slot.until - now_ms))
            } else {
                Ok(())
            }
        })
    }

    /// Records a failure of `key` at `now_ms`.
    pub fn failed(&self, key: &impl Hash, now_ms: i64) {
        let key = self.table.hash(key);
        let max = i64::try_from(self.max.as_millis()).unwrap_or(i64::MAX);
        self.table.with_slot(key, |slot| {
            slot.failures = slot.failures.saturating_add(1);
            let over = slot.failures.saturating_sub(self.free);
            if over > 0 {
                let wait = 1_000_i64.saturating_mul(1 << (over - 1).min(30)).min(max);
                slot.until = now_ms.saturating_add(wait);
            } else {
                // Remembered, but not held back: the slot is the first to be reused.
                slot.until = slot.until.max(i64::MIN + 1);
            }
        });
    }

    /// Forgets `key` (after a success).
    pub fn succeeded(&self, key: &impl Hash) {
        self.table.forget(self.table.hash(key));
    }

    /// The table (for tests and metrics).
    pub fn table(&self) -> &SlotTable {
        &self.table
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rate = Rate::new(3, MINUTE, 64);
        let now = 1_000_000;
        for _ in 0..3 {
            rate.check(&"a", now).unwrap();
        }
        let wait = rate.check(&"a", now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        // Other keys are not affected.
        rate.check(&"b", now).unwrap();
        // After one emission interval, one more.
        rate.check(&"a", now + 20_000).unwrap();
        assert!(rate.check(&"a", now + 20_000).is_err());
    }

    #[test]
    fn the_table_never_grows_whatever_the_keys() {
        let rate = Rate::new(10, MINUTE, 1_000);
        let capacity = rate.table().capacity();
        for i in 0..100_000_u32 {
            let _ = rate.check(&i, 0);
        }
        assert!(rate.table().occupied() <= capacity);
        assert_eq!(rate.table().capacity(), capacity);
    }

    #[test]
    fn a_key_being_held_back_outlives_a_flood_of_new_keys() {
        // One key at its limit, then many one-off keys through the same small table: the held
        // key keeps its state, because the victim of a full bucket is the slot allowed soonest.
        let rate = Rate::new(2, MINUTE, 64);
        rate.check(&"held", 0).unwrap();
        rate.check(&"held", 0).unwrap();
        assert!(rate.check(&"held", 0).is_err());
        for i in 0..10_000_u32 {
            let _ = rate.check(&i, 0);
        }
        assert!(rate.check(&"held", 0).is_err(), "the limit was forgotten");
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_and_a_success_resets_it() {
        let backoff = Backoff::new(2, Duration::from_secs(8), 64);
        let key = ("victim@example.com", "203.0.113.9");
        backoff.failed(&key, 0);
        backoff.failed(&key, 0);
        backoff.check(&key, 0).unwrap();
        backoff.failed(&key, 0);
        assert_eq!(backoff.check(&key, 0), Err(Duration::from_secs(1)));
        backoff.failed(&key, 1_000);
        assert_eq!(backoff.check(&key, 1_000), Err(Duration::from_secs(2)));
        for _ in 0..10 {
            backoff.failed(&key, 1_000);
        }
        assert_eq!(
            backoff.check(&key, 1_000),
            Err(Duration::from_secs(8)),
            "capped"
        );
        // Another address trying the same account is not held back.
        backoff
            .check(&("victim@example.com", "198.51.100.7"), 1_000)
            .unwrap();
        backoff.succeeded(&key);
        backoff.check(&key, 1_000).unwrap();
    }
}
