//! The worker that turns due reminders into sends.
//!
//! One round: claim a batch of due reminders (a lease), look up their users' active devices,
//! ask the ledger which deliveries still need sending (marking them in flight), send those
//! concurrently, record what was sent, deactivate tokens the provider says are gone, add the
//! reminders to their users' notification lists, and finish the claims — or hand a reminder
//! back with a backoff when any of its devices needs a retry. Every step is idempotent, so a
//! crash anywhere loses nothing: the lease runs out, another round claims the reminder again,
//! and the ledger skips what was sent. Only a send whose process died between the provider's
//! answer and the ledger's write is sent twice, with the same collapse id, which providers
//! treat as a replacement.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use engine_clock::{Clock, SystemClock};

use crate::{
    Begin, Claimed, DeliveryId, Device, DeviceRegistry, DueSource, Finish, Ledger, Message,
    ReminderKey, Result, SendOutcome, Sender,
};

/// How the dispatcher works. Start from [`DispatcherConfig::default`] and set the fields you
/// need; new fields may be added in minor releases.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Reminders claimed per round.
    pub batch: usize,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim is ours. A round stops sending three quarters into it (sends still
    /// under way are cancelled and retried later), so another node that takes the claim over
    /// never finds a delivery this one is still making.
    pub lease: Duration,
    /// How long one send may take: a slow push service is retried later, it does not hold up
    /// the other users' reminders.
    pub send_timeout: Duration,
    /// How often an idle dispatcher looks for due reminders.
    pub poll: Duration,
    /// Attempts before a reminder is given up.
    pub max_attempts: u32,
    /// The first retry's delay; it doubles per attempt.
    pub backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            batch: 1024,
            concurrency: 64,
            lease: Duration::from_secs(60),
            send_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(200),
            max_attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30 * 60),
        }
    }
}

impl DispatcherConfig {
    /// The delay before attempt `attempt + 1`, at least `retry_after`.
    pub fn backoff_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .backoff
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        retry_after.map_or(exponential, |after| after.max(exponential))
    }
}

/// Whether reminders are still wanted when they come due (their reservations may have been
/// cancelled since they were planned).
#[async_trait]
pub trait Recheck: Send + Sync + std::fmt::Debug {
    /// The keys among `keys` that are no longer wanted.
    async fn unwanted(&self, keys: &[ReminderKey]) -> Result<HashSet<ReminderKey>>;
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Reminders claimed.
    pub claimed: usize,
    /// Reminders finished as delivered.
    pub delivered: usize,
    /// Reminders dropped as no longer wanted.
    pub dropped: usize,
    /// Reminders handed back for a retry.
    pub retried: usize,
    /// Reminders given up.
    pub failed: usize,
    /// Messages the sender accepted.
    pub sends: usize,
    /// Of those, deliveries that had begun before and never finished.
    pub resent: usize,
    /// Tokens deactivated because the provider said they are gone.
    pub gone: usize,
    /// For each reminder finished as delivered, how long after it was due.
    pub lateness: Vec<Duration>,
}

/// Sends due reminders; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Dispatcher {
    source: Arc<dyn DueSource>,
    registry: Arc<dyn DeviceRegistry>,
    ledger: Arc<dyn Ledger>,
    sender: Arc<dyn Sender>,
    recheck: Option<Arc<dyn Recheck>>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    wake: Arc<Notify>,
}

/// Where one reminder's devices stand in a round.
#[derive(Debug, Default)]
struct Tally {
    retry: bool,
    failed: bool,
    retry_after: Option<Duration>,
}

impl Dispatcher {
    /// A dispatcher with the default configuration on the system clock.
    pub fn new(
        source: Arc<dyn DueSource>,
        registry: Arc<dyn DeviceRegistry>,
        ledger: Arc<dyn Ledger>,
        sender: Arc<dyn Sender>,
    ) -> Self {
        Self {
            source,
            registry,
            ledger,
            sender,
            recheck: None,
            clock: Arc::new(SystemClock),
            config: DispatcherConfig::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// With this configuration.
    pub fn with_config(mut self, config: DispatcherConfig) -> Self {
        self.config = config;
        self
    }

    /// With time from `clock` (for the ledger's in-flight marks).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Asks `recheck` before sending whether each reminder is still wanted.
    pub fn with_recheck(mut self, recheck: Arc<dyn Recheck>) -> Self {
        self.recheck = Some(recheck);
        self
    }

    /// Makes a waiting [`run`](Self::run) look for due reminders now (call it after planning a
    /// reminder that is due at once).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs rounds until `cancel`; a round under way is finished first.
    pub async fn run(&self, cancel: CancellationToken) {
        self.run_observed(cancel, |_| {}).await;
    }

    /// [`run`](Self::run), handing every round's figures to `observe` (for metrics).
    pub async fn run_observed(&self, cancel: CancellationToken, mut observe: impl FnMut(&Round)) {
        while !cancel.is_cancelled() {
            let idle = match self.round().await {
                Ok(round) => {
                    observe(&round);
                    round.claimed < self.config.batch
                }
                Err(e) => {
                    tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "push dispatch round failed"
                    );
                    true
                }
            };
            if idle {
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll) => {}
                    () = self.wake.notified() => {}
                    () = cancel.cancelled() => {}
                }
            }
        }
    }

    /// One round; see the [module docs](self).
    pub async fn round(&self) -> Result<Round> {
        let claimed_at = tokio::time::Instant::now();
        let claimed = self
            .source
            .claim(self.config.batch, self.config.lease)
            .await?;
        // Past this, sends still under way are cancelled: the claim must outlive the round.
        let send_deadline = claimed_at + self.config.lease.mul_f64(0.75);
        let mut round = Round {
            claimed: claimed.len(),
            ..Round::default()
        };
        if claimed.is_empty() {
            return Ok(round);
        }
        let unwanted = match &self.recheck {
            Some(recheck) => {
                let keys: Vec<_> = claimed.iter().map(|c| c.reminder.key).collect();
                recheck.unwanted(&keys).await?
            }
            None => HashSet::new(),
        };
        let (dropped, wanted): (Vec<Claimed>, Vec<Claimed>) = claimed
            .into_iter()
            .partition(|c| unwanted.contains(&c.reminder.key));

        let users: Vec<_> = {
            let set: HashSet<_> = wanted.iter().map(|c| c.reminder.key.user).collect();
            set.into_iter().collect()
        };
        let mut devices: HashMap<_, Vec<Device>> = HashMap::new();
        for device in self.registry.devices(&users).await? {
            devices.entry(device.user).or_default().push(device);
        }
        let jobs: Vec<(usize, &Device)> = wanted
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                devices
                    .get(&c.reminder.key.user)
                    .into_iter()
                    .flatten()
                    .map(move |d| (i, d))
            })
            .collect();
        let ids: Vec<DeliveryId> = jobs
            .iter()
            .map(|(i, d)| DeliveryId {
                reminder: wanted[*i].reminder.key,
                token: d.token.clone(),
            })
            .collect();
        let now = self.clock.now();
        let stale_before =
            now - chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
        let begins = self.ledger.begin(&ids, now, stale_before).await?;

        let mut tallies: Vec<Tally> = wanted.iter().map(|_| Tally::default()).collect();
        let mut to_send = Vec::new();
        for (n, begin) in begins.iter().enumerate() {
            match begin {
                Begin::Fresh | Begin::InDoubt => to_send.push(n),
                Begin::Busy => tallies[jobs[n].0].retry = true,
                Begin::Sent => {}
            }
        }
        let messages: Vec<Message> = wanted.iter().map(|c| Message::from(&c.reminder)).collect();
        let mut unfinished: HashSet<usize> = to_send.iter().copied().collect();
        let send_timeout = self.config.send_timeout;
        let mut outcomes = futures::stream::iter(to_send)
            .map(|n| {
                let (i, device) = jobs[n];
                let message = &messages[i];
                async move {
                    let outcome =
                        tokio::time::timeout(send_timeout, self.sender.send(device, message))
                            .await
                            .unwrap_or_else(|_| SendOutcome::Retry {
                                after: None,
                                reason: format!("no answer within {send_timeout:?}"),
                            });
                    (n, outcome)
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            // Recorded as they come in, so a crash repeats at most the sends in flight.
            .ready_chunks(self.config.concurrency.max(1));

        let mut gone = Vec::new();
        let mut abandoned = Vec::new();
        while let Ok(Some(ready)) = tokio::time::timeout_at(send_deadline, outcomes.next()).await {
            let mut sent = Vec::new();
            for (n, outcome) in ready {
                unfinished.remove(&n);
                let (i, device) = jobs[n];
                let tally = &mut tallies[i];
                match outcome {
                    SendOutcome::Delivered => {
                        round.sends += 1;
                        if begins[n] == Begin::InDoubt {
                            round.resent += 1;
                        }
                        sent.push(ids[n].clone());
                    }
                    SendOutcome::Gone => {
                        gone.push(device.token.clone());
                        abandoned.push(ids[n].clone());
                    }
                    SendOutcome::Retry { after, reason } => {
                        tracing::debug!(reminder = %ids[n].reminder, %reason, "push send will be retried");
                        tally.retry = true;
                        tally.retry_after = tally.retry_after.max(after);
                        abandoned.push(ids[n].clone());
                    }
                    SendOutcome::Failed { reason } => {
                        tracing::warn!(reminder = %ids[n].reminder, %reason, "push send failed");
                        tally.failed = true;
                        abandoned.push(ids[n].clone());
                    }
                }
            }
            self.ledger.sent(&sent, self.clock.now()).await?;
        }
        drop(outcomes);
        // Cancelled at the deadline: not sent as far as we know, to be tried again.
        for n in unfinished {
            tracing::warn!(reminder = %ids[n].reminder, "push send cancelled at the round's deadline");
            tallies[jobs[n].0].retry = true;
            abandoned.push(ids[n].clone());
        }
        self.ledger.abandon(&abandoned).await?;
        for token in &gone {
            self.registry.forget(token).await?;
        }
        round.gone = gone.len();

        let mut done: Vec<(Claimed, Finish)> =
            dropped.into_iter().map(|c| (c, Finish::Dropped)).collect();
        round.dropped = done.len();
        let mut delivered = Vec::new();
        for (claimed, tally) in wanted.into_iter().zip(tallies) {
            if !tally.retry && !tally.failed {
                delivered.push(claimed.reminder.clone());
                done.push((claimed, Finish::Delivered));
            } else if claimed.attempt + 1 >= self.config.max_attempts {
                tracing::warn!(reminder = %claimed.reminder.key, attempts = claimed.attempt + 1,
                    "push reminder given up");
                round.failed += 1;
                done.push((claimed, Finish::Failed));
            } else {
                let after = self.config.backoff_for(claimed.attempt, tally.retry_after);
                self.source.retry(&claimed, after).await?;
                round.retried += 1;
            }
        }
        round.delivered = delivered.len();
        let now = self.clock.now();
        round.lateness = delivered
            .iter()
            .map(|r| (now - r.due).to_std().unwrap_or_default())
            .collect();
        self.ledger.notified(&delivered, now).await?;
        self.source.finish(&done).await?;
        Ok(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let c = DispatcherConfig {
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ..DispatcherConfig::default()
        };
        assert_eq!(c.backoff_for(0, None), Duration::from_secs(1));
        assert_eq!(c.backoff_for(3, None), Duration::from_secs(8));
        assert_eq!(c.backoff_for(40, None), Duration::from_secs(60));
        assert_eq!(
            c.backoff_for(0, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            c.backoff_for(5, Some(Duration::from_secs(2))),
            Duration::from_secs(32)
        );
    }
}
