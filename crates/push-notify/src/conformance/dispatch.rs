//! The [`Dispatcher`] over a set of backends, with a scripted sender and a manual clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::conformance::{fresh_user, reminder};
use crate::dispatch::Recheck;
use crate::{
    Clock, DeliveryId, Device, DeviceRegistry, DeviceType, Dispatcher, DispatcherConfig, DueSource,
    Ledger, ManualClock, Message, ReminderKey, Scheduler, SendOutcome, Sender,
};

/// Backends sharing one manual clock.
pub struct Backends {
    /// The clock the schedule and the dispatcher read.
    pub clock: ManualClock,
    /// Devices.
    pub registry: Arc<dyn DeviceRegistry>,
    /// The plan.
    pub scheduler: Arc<dyn Scheduler>,
    /// Its due reminders.
    pub source: Arc<dyn DueSource>,
    /// The ledger.
    pub ledger: Arc<dyn Ledger>,
}

/// A sender that answers from a per-token script (then `Delivered`) and records every send.
#[derive(Debug, Clone, Default)]
pub struct ScriptedSender {
    script: Arc<Mutex<HashMap<String, VecDeque<SendOutcome>>>>,
    sent: Arc<Mutex<Vec<(String, Message)>>>,
    hanging: Arc<Mutex<HashSet<String>>>,
}

impl ScriptedSender {
    /// `token`'s next sends answer `outcomes`, in order.
    pub fn script(&self, token: &str, outcomes: impl IntoIterator<Item = SendOutcome>) {
        self.script
            .lock()
            .unwrap()
            .entry(token.to_owned())
            .or_default()
            .extend(outcomes);
    }

    /// Sends to `token` never answer (a push service that hangs), until [`Self::unhang`].
    pub fn hang(&self, token: &str) {
        self.hanging.lock().unwrap().insert(token.to_owned());
    }

    /// Sends to `token` answer again.
    pub fn unhang(&self, token: &str) {
        self.hanging.lock().unwrap().remove(token);
    }

    /// Tokens sent to (accepted or not), in order.
    pub fn attempts(&self) -> Vec<(String, Message)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sender for ScriptedSender {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        self.sent
            .lock()
            .unwrap()
            .push((device.token.clone(), message.clone()));
        if self.hanging.lock().unwrap().contains(&device.token) {
            std::future::pending::<()>().await;
        }
        self.script
            .lock()
            .unwrap()
            .get_mut(&device.token)
            .and_then(VecDeque::pop_front)
            .unwrap_or(SendOutcome::Delivered)
    }
}

fn config() -> DispatcherConfig {
    DispatcherConfig {
        batch: 50,
        concurrency: 8,
        lease: Duration::from_secs(60),
        max_attempts: 3,
        backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(600),
        ..DispatcherConfig::default()
    }
}

fn dispatcher(b: &Backends, sender: &ScriptedSender) -> Dispatcher {
    Dispatcher::new(
        b.source.clone(),
        b.registry.clone(),
        b.ledger.clone(),
        Arc::new(sender.clone()),
    )
    .with_clock(Arc::new(b.clock.clone()))
    .with_config(config())
}

async fn with_devices(b: &Backends, user: i64, tokens: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens {
        let token = format!("{t}-{user}");
        b.registry
            .activate(Device {
                user,
                token: token.clone(),
                device_type: DeviceType::Mobile,
            })
            .await
            .unwrap();
        out.push(token);
    }
    out
}

/// Every check, each on fresh backends.
pub async fn run_all(make: &(dyn Fn() -> BoxFuture<'static, Backends> + Sync)) {
    each_device_gets_each_reminder_once(&make().await).await;
    retries_resend_only_what_failed_and_gone_tokens_are_dropped(&make().await).await;
    a_crashed_dispatcher_is_taken_over(&make().await).await;
    reminders_are_given_up_after_the_last_attempt(&make().await).await;
    unwanted_reminders_are_dropped(&make().await).await;
    a_push_service_that_hangs_holds_up_no_one_else(&make().await).await;
    a_round_never_outlives_its_lease(&make().await).await;
}

/// One device's push service never answers: the others' reminders go out in the same round,
/// and the silent one is retried after the send timeout.
pub async fn a_push_service_that_hangs_holds_up_no_one_else(b: &Backends) {
    let sender = ScriptedSender::default();
    let d = dispatcher(b, &sender).with_config(DispatcherConfig {
        send_timeout: Duration::from_millis(200),
        ..config()
    });
    let (slow, quick) = (fresh_user(), fresh_user());
    let slow_token = with_devices(b, slow, &["slow"]).await;
    with_devices(b, quick, &["quick"]).await;
    sender.hang(&slow_token[0]);
    let now = b.clock.now();
    b.scheduler.schedule(&reminder(slow, 1, now)).await.unwrap();
    b.scheduler
        .schedule(&reminder(quick, 1, now))
        .await
        .unwrap();
    let round = d.round().await.unwrap();
    assert_eq!((round.delivered, round.retried), (1, 1), "{round:?}");
    assert_eq!(b.ledger.recent(quick, 10).await.unwrap().len(), 1);
}

/// A round whose sends would outlast its claim stops them first: when the claim runs out and
/// another dispatcher takes the reminder, nothing of it is still in flight, so it is sent
/// (not held back as busy, not sent twice at once).
pub async fn a_round_never_outlives_its_lease(b: &Backends) {
    let sender = ScriptedSender::default();
    let lease = Duration::from_millis(800);
    let short = DispatcherConfig {
        lease,
        send_timeout: Duration::from_secs(3600),
        ..config()
    };
    let first = dispatcher(b, &sender).with_config(short.clone());
    let user = fresh_user();
    let token = with_devices(b, user, &["phone"]).await;
    sender.hang(&token[0]);
    b.scheduler
        .schedule(&reminder(user, 1, b.clock.now()))
        .await
        .unwrap();
    let round = first.round().await.unwrap();
    assert_eq!((round.sends, round.retried), (0, 1), "{round:?}");
    sender.unhang(&token[0]);
    b.clock.advance(chrono::Duration::seconds(3600));
    let second = dispatcher(b, &sender).with_config(short);
    let round = second.round().await.unwrap();
    assert_eq!(
        (round.claimed, round.sends, round.delivered),
        (1, 1, 1),
        "{round:?}"
    );
}

/// Every active device gets the reminder once; a user without devices still has it listed.
pub async fn each_device_gets_each_reminder_once(b: &Backends) {
    let sender = ScriptedSender::default();
    let d = dispatcher(b, &sender);
    let (alice, bob) = (fresh_user(), fresh_user());
    let tokens = with_devices(b, alice, &["phone", "laptop"]).await;
    let off = with_devices(b, alice, &["old"]).await;
    b.registry.deactivate(alice, &off[0]).await.unwrap();
    let now = b.clock.now();
    let r = reminder(alice, 1, now);
    let quiet = reminder(bob, 1, now);
    b.scheduler.schedule(&r).await.unwrap();
    b.scheduler.schedule(&quiet).await.unwrap();
    let round = d.round().await.unwrap();
    assert_eq!(
        (round.claimed, round.delivered, round.sends),
        (2, 2, 2),
        "{round:?}"
    );
    let mut got: Vec<_> = sender
        .attempts()
        .into_iter()
        .map(|(t, m)| (t, m.collapse_id))
        .collect();
    got.sort();
    let mut want: Vec<_> = tokens.iter().map(|t| (t.clone(), r.key.id())).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(sender.attempts()[0].1.title, r.title);
    b.clock.advance(chrono::Duration::hours(1));
    assert_eq!(d.round().await.unwrap().claimed, 0, "nothing left");
    assert_eq!(sender.attempts().len(), 2);
    assert_eq!(b.ledger.recent(alice, 10).await.unwrap()[0].key, r.key);
    assert_eq!(b.ledger.recent(bob, 10).await.unwrap()[0].key, quiet.key);
}

/// A device that must be retried is retried alone, after the provider's `Retry-After`; a device
/// the provider says is gone is deactivated.
pub async fn retries_resend_only_what_failed_and_gone_tokens_are_dropped(b: &Backends) {
    let sender = ScriptedSender::default();
    let d = dispatcher(b, &sender);
    let user = fresh_user();
    let tokens = with_devices(b, user, &["ok", "busy", "gone"]).await;
    sender.script(
        &tokens[1],
        [SendOutcome::Retry {
            after: Some(Duration::from_secs(120)),
            reason: "429".into(),
        }],
    );
    sender.script(&tokens[2], [SendOutcome::Gone]);
    let r = reminder(user, 1, b.clock.now());
    b.scheduler.schedule(&r).await.unwrap();
    let round = d.round().await.unwrap();
    assert_eq!(
        (round.sends, round.retried, round.gone, round.delivered),
        (1, 1, 1, 0),
        "{round:?}"
    );
    let active: Vec<_> = b
        .registry
        .devices(&[user])
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert!(!active.contains(&tokens[2]), "gone token deactivated");
    b.clock.advance(chrono::Duration::seconds(60));
    assert_eq!(
        d.round().await.unwrap().claimed,
        0,
        "Retry-After (120 s) beats the backoff (10 s)"
    );
    b.clock.advance(chrono::Duration::seconds(61));
    let round = d.round().await.unwrap();
    assert_eq!(
        (round.claimed, round.sends, round.delivered),
        (1, 1, 1),
        "{round:?}"
    );
    let to: Vec<_> = sender.attempts().into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        to.iter().filter(|t| **t == tokens[0]).count(),
        1,
        "the delivered device is not sent again"
    );
    assert_eq!(to.iter().filter(|t| **t == tokens[1]).count(), 2);
    assert_eq!(to.iter().filter(|t| **t == tokens[2]).count(), 1);
}

/// A dispatcher that claimed a reminder and died mid-send: once its lease ends, another round
/// sends what was in doubt and skips what was recorded as sent.
pub async fn a_crashed_dispatcher_is_taken_over(b: &Backends) {
    let sender = ScriptedSender::default();
    let d = dispatcher(b, &sender);
    let user = fresh_user();
    let tokens = with_devices(b, user, &["a", "b"]).await;
    let r = reminder(user, 1, b.clock.now());
    b.scheduler.schedule(&r).await.unwrap();
    // The dead dispatcher: claimed, began both, recorded one as sent.
    let lease = config().lease;
    let claimed = b.source.claim(10, lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let ids: Vec<_> = tokens
        .iter()
        .map(|t| DeliveryId {
            reminder: r.key,
            token: t.clone(),
        })
        .collect();
    let now = b.clock.now();
    b.ledger
        .begin(&ids, now, now - chrono::Duration::seconds(60))
        .await
        .unwrap();
    b.ledger.sent(&ids[..1], now).await.unwrap();
    assert_eq!(
        d.round().await.unwrap().claimed,
        0,
        "leased by the dead one"
    );
    b.clock.advance(chrono::Duration::seconds(61));
    let round = d.round().await.unwrap();
    assert_eq!(
        (round.claimed, round.sends, round.resent, round.delivered),
        (1, 1, 1, 1),
        "{round:?}"
    );
    assert_eq!(sender.attempts().len(), 1);
    assert_eq!(sender.attempts()[0].0, tokens[1]);
}

/// A reminder that keeps failing is given up after `max_attempts` and not claimed again.
pub async fn reminders_are_given_up_after_the_last_attempt(b: &Backends) {
    let sender = ScriptedSender::default();
    let d = dispatcher(b, &sender);
    let user = fresh_user();
    let tokens = with_devices(b, user, &["broken"]).await;
    sender.script(
        &tokens[0],
        (0..5).map(|_| SendOutcome::Failed {
            reason: "400".into(),
        }),
    );
    b.scheduler
        .schedule(&reminder(user, 1, b.clock.now()))
        .await
        .unwrap();
    let mut failed = 0;
    for _ in 0..6 {
        failed += d.round().await.unwrap().failed;
        b.clock.advance(chrono::Duration::minutes(30));
    }
    assert_eq!(failed, 1);
    assert_eq!(sender.attempts().len(), 3, "max_attempts = 3");
    assert!(
        b.ledger.recent(user, 10).await.unwrap().is_empty(),
        "not listed as delivered"
    );
}

#[derive(Debug)]
struct Unwanted(HashSet<ReminderKey>);

#[async_trait]
impl Recheck for Unwanted {
    async fn unwanted(&self, keys: &[ReminderKey]) -> crate::Result<HashSet<ReminderKey>> {
        Ok(keys
            .iter()
            .filter(|k| self.0.contains(k))
            .copied()
            .collect())
    }
}

/// A reminder the application no longer wants is finished without a send.
pub async fn unwanted_reminders_are_dropped(b: &Backends) {
    let sender = ScriptedSender::default();
    let user = fresh_user();
    with_devices(b, user, &["p"]).await;
    let keep = reminder(user, 1, b.clock.now());
    let drop = reminder(user, 2, b.clock.now());
    b.scheduler.schedule(&keep).await.unwrap();
    b.scheduler.schedule(&drop).await.unwrap();
    let d = dispatcher(b, &sender).with_recheck(Arc::new(Unwanted([drop.key].into())));
    let round = d.round().await.unwrap();
    assert_eq!(
        (round.delivered, round.dropped, round.sends),
        (1, 1, 1),
        "{round:?}"
    );
    assert_eq!(sender.attempts()[0].1.collapse_id, keep.key.id());
    b.clock.advance(chrono::Duration::hours(1));
    assert_eq!(d.round().await.unwrap().claimed, 0);
}
