//! In-memory registry, schedule and ledger: one process, nothing survives a restart. The
//! embedded default for tests and for programs that need no durability.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine_clock::{Clock, SystemClock};

use crate::{
    Begin, Claimed, DeliveryId, Device, DeviceRegistry, DueSource, Finish, Ledger, Notification,
    Reminder, ReminderKey, Result, Scheduler, UserId,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that
    // matters more than losing the process, so recover the guard.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A device, whether it is active, and its activation's number (for the per-user cap).
type DeviceEntry = (Device, bool, u64);

/// Devices in memory.
#[derive(Debug, Clone)]
pub struct MemoryRegistry {
    /// Token → (device, active, when last activated); a token belongs to one user.
    devices: Arc<Mutex<HashMap<String, DeviceEntry>>>,
    activations: Arc<std::sync::atomic::AtomicU64>,
    max_devices: usize,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self {
            devices: Arc::default(),
            activations: Arc::default(),
            max_devices: crate::MAX_DEVICES_PER_USER,
        }
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `max` devices per user (the newest).
    #[must_use]
    pub fn with_max_devices(mut self, max: usize) -> Self {
        self.max_devices = max.max(1);
        self
    }
}

#[async_trait]
impl DeviceRegistry for MemoryRegistry {
    async fn activate(&self, device: Device) -> Result<()> {
        crate::validate_token(&device.token)?;
        let order = self
            .activations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut devices = lock(&self.devices);
        let (user, token) = (device.user, device.token.clone());
        devices.insert(device.token.clone(), (device, true, order));
        // The user's devices past the newest `max_devices` go.
        let mut mine: Vec<(u64, String)> = devices
            .iter()
            .filter(|(t, (d, _, _))| d.user == user && **t != token)
            .map(|(t, (_, _, at))| (*at, t.clone()))
            .collect();
        mine.sort_unstable_by(|a, b| b.cmp(a));
        for (_, old) in mine.into_iter().skip(self.max_devices.saturating_sub(1)) {
            devices.remove(&old);
        }
        Ok(())
    }

    async fn deactivate(&self, user: UserId, token: &str) -> Result<bool> {
        Ok(match lock(&self.devices).get_mut(token) {
            Some((device, active, _)) if device.user == user && *active => {
                *active = false;
                true
            }
            _ => false,
        })
    }

    async fn forget(&self, token: &str) -> Result<()> {
        if let Some((_, active, _)) = lock(&self.devices).get_mut(token) {
            *active = false;
        }
        Ok(())
    }

    async fn devices(&self, users: &[UserId]) -> Result<Vec<Device>> {
        let users: HashSet<_> = users.iter().collect();
        let mut found: Vec<Device> = lock(&self.devices)
            .values()
            .filter(|(d, active, _)| *active && users.contains(&d.user))
            .map(|(d, _, _)| d.clone())
            .collect();
        found.sort_by(|a, b| (a.user, &a.token).cmp(&(b.user, &b.token)));
        Ok(found)
    }
}

#[derive(Debug)]
struct Entry {
    reminder: Reminder,
    /// `None` while pending.
    finished: Option<Finish>,
    /// When it may next be claimed: its due time, a retry time, or the end of a lease.
    available_at: DateTime<Utc>,
    attempts: u32,
    lease: u64,
}

#[derive(Debug, Default)]
struct Plan {
    entries: HashMap<ReminderKey, Entry>,
    /// Pending entries by the time they become claimable.
    ready: BTreeMap<(DateTime<Utc>, ReminderKey), ()>,
    leases: u64,
}

impl Plan {
    fn set_available(&mut self, key: ReminderKey, at: DateTime<Utc>) {
        if let Some(e) = self.entries.get_mut(&key) {
            self.ready.remove(&(e.available_at, key));
            e.available_at = at;
            self.ready.insert((at, key), ());
        }
    }
}

/// A schedule in memory that is also its own [`DueSource`]: reminders become claimable at
/// their due time by the clock it is given.
#[derive(Debug, Clone)]
pub struct MemorySchedule {
    plan: Arc<Mutex<Plan>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemorySchedule {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySchedule {
    /// An empty schedule on the system clock.
    pub fn new() -> Self {
        Self {
            plan: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads due times from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How each reminder ended, for inspection.
    pub fn finished(&self) -> HashMap<ReminderKey, Finish> {
        lock(&self.plan)
            .entries
            .iter()
            .filter_map(|(k, e)| e.finished.map(|f| (*k, f)))
            .collect()
    }
}

#[async_trait]
impl Scheduler for MemorySchedule {
    async fn schedule(&self, reminder: &Reminder) -> Result<bool> {
        let mut plan = lock(&self.plan);
        if plan.entries.contains_key(&reminder.key) {
            return Ok(false);
        }
        plan.entries.insert(
            reminder.key,
            Entry {
                reminder: reminder.clone(),
                finished: None,
                available_at: reminder.due,
                attempts: 0,
                lease: 0,
            },
        );
        plan.ready.insert((reminder.due, reminder.key), ());
        Ok(true)
    }

    async fn cancel(&self, key: &ReminderKey) -> Result<bool> {
        let mut plan = lock(&self.plan);
        match plan.entries.get(key) {
            Some(e) if e.finished.is_none() => {
                let at = e.available_at;
                plan.ready.remove(&(at, *key));
                plan.entries.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn pending(&self, key: &ReminderKey) -> Result<Option<Reminder>> {
        Ok(lock(&self.plan)
            .entries
            .get(key)
            .filter(|e| e.finished.is_none())
            .map(|e| e.reminder.clone()))
    }
}

#[async_trait]
impl DueSource for MemorySchedule {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let mut plan = lock(&self.plan);
        let keys: Vec<ReminderKey> = plan
            .ready
            .keys()
            .take_while(|(at, _)| *at <= now)
            .take(max)
            .map(|(_, k)| *k)
            .collect();
        let mut claimed = Vec::with_capacity(keys.len());
        for key in keys {
            plan.leases += 1;
            let id = plan.leases;
            plan.set_available(key, until);
            let e = plan.entries.get_mut(&key).expect("ready entries exist");
            e.lease = id;
            claimed.push(Claimed {
                reminder: e.reminder.clone(),
                attempt: e.attempts,
                receipt: id.to_string(),
            });
            e.attempts += 1;
        }
        Ok(claimed)
    }

    async fn finish(&self, done: &[(Claimed, Finish)]) -> Result<()> {
        let mut plan = lock(&self.plan);
        for (claimed, how) in done {
            let key = claimed.reminder.key;
            let Some(e) = plan.entries.get_mut(&key) else {
                continue;
            };
            // A claim whose lease ran out and was handed to someone else is theirs now.
            if e.finished.is_some() || e.lease.to_string() != claimed.receipt {
                continue;
            }
            e.finished = Some(*how);
            let at = e.available_at;
            plan.ready.remove(&(at, key));
        }
        Ok(())
    }

    async fn retry(&self, claimed: &Claimed, after: Duration) -> Result<()> {
        let at =
            self.clock.now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        let mut plan = lock(&self.plan);
        let key = claimed.reminder.key;
        if let Some(e) = plan.entries.get(&key)
            && e.finished.is_none()
            && e.lease.to_string() == claimed.receipt
        {
            plan.set_available(key, at);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Book {
    /// Delivery → (sent, started or sent at).
    deliveries: HashMap<DeliveryId, (bool, DateTime<Utc>)>,
    notified: HashSet<ReminderKey>,
    inbox: HashMap<UserId, Vec<Notification>>,
}

/// A ledger in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryLedger {
    book: Arc<Mutex<Book>>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn begin(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<Begin>> {
        let mut book = lock(&self.book);
        Ok(ids
            .iter()
            .map(|id| match book.deliveries.get_mut(id) {
                None => {
                    book.deliveries.insert(id.clone(), (false, now));
                    Begin::Fresh
                }
                Some((true, _)) => Begin::Sent,
                Some((false, started)) if *started < stale_before => {
                    *started = now;
                    Begin::InDoubt
                }
                Some(_) => Begin::Busy,
            })
            .collect())
    }

    async fn sent(&self, ids: &[DeliveryId], now: DateTime<Utc>) -> Result<()> {
        let mut book = lock(&self.book);
        for id in ids {
            book.deliveries.insert(id.clone(), (true, now));
        }
        Ok(())
    }

    async fn abandon(&self, ids: &[DeliveryId]) -> Result<()> {
        let mut book = lock(&self.book);
        for id in ids {
            if book.deliveries.get(id).is_some_and(|(sent, _)| !sent) {
                book.deliveries.remove(id);
            }
        }
        Ok(())
    }

    async fn notified(&self, reminders: &[Reminder], now: DateTime<Utc>) -> Result<()> {
        let mut book = lock(&self.book);
        for r in reminders {
            if book.notified.insert(r.key) {
                book.inbox
                    .entry(r.key.user)
                    .or_default()
                    .push(Notification {
                        key: r.key,
                        title: r.title.clone(),
                        body: r.body.clone(),
                        delivered_at: now,
                    });
            }
        }
        Ok(())
    }

    async fn recent(&self, user: UserId, limit: usize) -> Result<Vec<Notification>> {
        let book = lock(&self.book);
        let mut list = book.inbox.get(&user).cloned().unwrap_or_default();
        list.sort_by_key(|n| std::cmp::Reverse((n.delivered_at, n.key)));
        list.truncate(limit);
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use engine_clock::ManualClock;
    use futures::FutureExt;

    #[tokio::test]
    async fn registry_passes_the_suite() {
        conformance::registry::run_all(&MemoryRegistry::new()).await;
    }

    #[tokio::test]
    async fn ledger_passes_the_suite() {
        conformance::ledger::run_all(&MemoryLedger::new(), Utc::now()).await;
    }

    fn harness() -> conformance::schedule::Harness {
        let clock = ManualClock::starting_now();
        let schedule = Arc::new(MemorySchedule::new().with_clock(Arc::new(clock.clone())));
        conformance::schedule::Harness::manual(schedule.clone(), schedule, clock)
    }

    #[tokio::test]
    async fn schedule_passes_the_suite() {
        conformance::schedule::run_all(&|| async { harness() }.boxed()).await;
    }

    #[tokio::test]
    async fn dispatcher_passes_the_suite_on_memory() {
        conformance::dispatch::run_all(&|| {
            async {
                let clock = ManualClock::starting_now();
                let schedule = Arc::new(MemorySchedule::new().with_clock(Arc::new(clock.clone())));
                conformance::dispatch::Backends {
                    clock,
                    registry: Arc::new(MemoryRegistry::new()),
                    scheduler: schedule.clone(),
                    source: schedule,
                    ledger: Arc::new(MemoryLedger::new()),
                }
            }
            .boxed()
        })
        .await;
    }
}
