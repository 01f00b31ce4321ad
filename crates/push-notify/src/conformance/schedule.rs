//! Checks for [`Scheduler`] and [`DueSource`] backends.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::conformance::{fresh_user, reminder};
use crate::{DueSource, Finish, Scheduler};

/// A scheduler, the due source it feeds, and how time moves for them.
pub struct Harness {
    /// The scheduler.
    pub scheduler: Arc<dyn Scheduler>,
    /// Where its reminders come due.
    pub source: Arc<dyn DueSource>,
    /// The backends' current time.
    pub now: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// Moves their time on (a manual clock, or a real wait).
    pub advance: Box<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>,
    /// Time is a manual clock: reminders due in the future can be waited for.
    pub manual_time: bool,
    /// The lease to use: short for real time, long for a manual clock.
    pub lease: Duration,
    /// A stale receipt cannot finish a claim handed out again (SQS does not promise it).
    pub fences_stale_receipts: bool,
    /// Claimers working at once never get the same reminder. SQS standard queues deliver at
    /// least once and do not promise it (moto's receive is not atomic across concurrent
    /// requests, and CI saw it hand one message to two claimers); the dispatcher's ledger is
    /// what keeps a reminder from being sent twice there.
    pub exclusive_claims: bool,
}

impl Harness {
    /// Backends on a manual clock: time moves when the checks say so; 60 s leases.
    pub fn manual(
        scheduler: Arc<dyn Scheduler>,
        source: Arc<dyn DueSource>,
        clock: engine_clock::ManualClock,
    ) -> Self {
        use engine_clock::Clock;
        use futures::FutureExt;
        let now = clock.clone();
        Self {
            scheduler,
            source,
            now: Box::new(move || now.now()),
            advance: Box::new(move |d| {
                clock.advance(chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
                async {}.boxed()
            }),
            manual_time: true,
            lease: Duration::from_secs(60),
            fences_stale_receipts: true,
            exclusive_claims: true,
        }
    }
}

/// The [`Scheduler`] checks, for any scheduler (including ones whose due source is elsewhere).
pub async fn scheduler_checks(scheduler: &dyn Scheduler, now: DateTime<Utc>) {
    let user = fresh_user();
    let r = reminder(user, 7, now + chrono::Duration::days(3));
    assert!(scheduler.schedule(&r).await.unwrap(), "first plan");
    assert!(!scheduler.schedule(&r).await.unwrap(), "planned already");
    let mut changed = r.clone();
    changed.title = "Other".into();
    assert!(!scheduler.schedule(&changed).await.unwrap());
    assert_eq!(
        scheduler.pending(&r.key).await.unwrap(),
        Some(r.clone()),
        "kept as first planned"
    );
    assert!(scheduler.cancel(&r.key).await.unwrap());
    assert!(
        !scheduler.cancel(&r.key).await.unwrap(),
        "cancelled already"
    );
    assert_eq!(scheduler.pending(&r.key).await.unwrap(), None);
    assert!(
        scheduler.schedule(&r).await.unwrap(),
        "planned again after a cancel"
    );
    assert_eq!(scheduler.pending(&r.key).await.unwrap(), Some(r.clone()));
    // Other users' reminders are separate.
    let other = reminder(fresh_user(), 7, r.due);
    assert!(scheduler.schedule(&other).await.unwrap());
    assert!(scheduler.cancel(&r.key).await.unwrap());
    assert_eq!(
        scheduler.pending(&other.key).await.unwrap(),
        Some(other.clone())
    );
    // Many keys at once: only the pending one, matched on the whole key (the same user's
    // reminder for another festival, or another day, is not it).
    let mut near = other.key;
    near.festival += 1;
    let mut next_day = other.key;
    next_day.date = next_day.date.succ_opt().unwrap();
    let found = scheduler
        .pending_keys(&[r.key, other.key, near, next_day])
        .await
        .unwrap();
    assert_eq!(found, HashSet::from([other.key]));
    assert!(scheduler.pending_keys(&[]).await.unwrap().is_empty());
    assert!(scheduler.cancel(&other.key).await.unwrap());
    assert!(
        scheduler
            .pending_keys(&[other.key])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every check, each on a fresh harness.
pub async fn run_all(make: &(dyn Fn() -> BoxFuture<'static, Harness> + Sync)) {
    let h = make().await;
    scheduler_checks(&*h.scheduler, (h.now)()).await;
    due_reminders_are_claimed_once_per_lease(&make().await).await;
    retries_come_back_after_their_delay(&make().await).await;
    finished_reminders_stay_finished(&make().await).await;
    concurrent_claimers_never_share(&make().await).await;
    if make().await.manual_time {
        future_reminders_wait_for_their_time(&make().await).await;
    }
}

async fn claim_all(h: &Harness, max: usize) -> Vec<crate::Claimed> {
    // Real queues may hand out fewer than are ready per call; ask until a call brings nothing.
    let mut all = Vec::new();
    loop {
        let got = h.source.claim(max, h.lease).await.unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// A due reminder is claimed once; when its lease ends unfinished it is claimed again with the
/// attempt counted.
pub async fn due_reminders_are_claimed_once_per_lease(h: &Harness) {
    let r = reminder(fresh_user(), 1, (h.now)());
    assert!(h.scheduler.schedule(&r).await.unwrap());
    let first = claim_all(h, 10).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].reminder, r);
    assert_eq!(first[0].attempt, 0);
    assert!(claim_all(h, 10).await.is_empty(), "leased");
    (h.advance)(h.lease + Duration::from_millis(500)).await;
    let again = claim_all(h, 10).await;
    assert_eq!(again.len(), 1, "handed out again after the lease");
    assert_eq!(again[0].attempt, 1);
    if h.fences_stale_receipts {
        h.source
            .finish(&[(first[0].clone(), Finish::Delivered)])
            .await
            .unwrap();
        (h.advance)(h.lease + Duration::from_millis(500)).await;
        assert_eq!(
            claim_all(h, 10).await.len(),
            1,
            "a stale receipt did not finish it"
        );
    } else {
        h.source
            .finish(&[(again[0].clone(), Finish::Delivered)])
            .await
            .unwrap();
    }
}

/// A retried reminder comes back after its delay, not before.
pub async fn retries_come_back_after_their_delay(h: &Harness) {
    let r = reminder(fresh_user(), 2, (h.now)());
    h.scheduler.schedule(&r).await.unwrap();
    let claimed = claim_all(h, 10).await;
    assert_eq!(claimed.len(), 1);
    let delay = if h.manual_time {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(2)
    };
    h.source.retry(&claimed[0], delay).await.unwrap();
    if h.manual_time {
        (h.advance)(delay / 2).await;
        assert!(claim_all(h, 10).await.is_empty(), "not before the delay");
    }
    (h.advance)(delay + Duration::from_millis(500)).await;
    let back = claim_all(h, 10).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].reminder.key, r.key);
    assert_eq!(back[0].attempt, 1);
    h.source
        .finish(&[(back[0].clone(), Finish::Failed)])
        .await
        .unwrap();
}

/// A finished reminder is not handed out again, is no longer pending, and is not planned anew.
pub async fn finished_reminders_stay_finished(h: &Harness) {
    let r = reminder(fresh_user(), 3, (h.now)());
    h.scheduler.schedule(&r).await.unwrap();
    let claimed = claim_all(h, 10).await;
    assert_eq!(claimed.len(), 1);
    h.source
        .finish(&[(claimed[0].clone(), Finish::Delivered)])
        .await
        .unwrap();
    (h.advance)(h.lease + Duration::from_millis(500)).await;
    assert!(claim_all(h, 10).await.is_empty());
    if h.manual_time {
        // The local schedule remembers what it sent; a cloud schedule forgets (its ledger
        // keeps the devices from a second send).
        assert_eq!(h.scheduler.pending(&r.key).await.unwrap(), None);
        assert!(!h.scheduler.schedule(&r).await.unwrap(), "sent already");
        assert!(!h.scheduler.cancel(&r.key).await.unwrap());
    }
}

/// Claimers working at once together get every reminder, and (where the source promises it)
/// never the same one twice.
pub async fn concurrent_claimers_never_share(h: &Harness) {
    let user = fresh_user();
    let now = (h.now)();
    let count = 60;
    for festival in 0..count {
        h.scheduler
            .schedule(&reminder(user, festival, now))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let source = h.source.clone();
            let lease = h.lease;
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..40 {
                    let got = source.claim(5, lease).await.unwrap();
                    if got.is_empty() && !mine.is_empty() {
                        break;
                    }
                    // Finished at once, so a slow run never outlives a lease and sees its own
                    // claims handed out again.
                    let done: Vec<_> = got.iter().map(|c| (c.clone(), Finish::Delivered)).collect();
                    source.finish(&done).await.unwrap();
                    mine.extend(got);
                }
                mine
            })
        })
        .collect();
    let mut claims = Vec::new();
    for t in tasks {
        claims.extend(t.await.unwrap());
    }
    claims.extend(claim_all(h, 10).await);
    let keys: HashSet<_> = claims.iter().map(|c| c.reminder.key).collect();
    assert_eq!(keys.len(), count as usize, "every reminder claimed");
    if h.exclusive_claims {
        assert_eq!(claims.len(), count as usize, "no reminder claimed twice");
    }
    let all: Vec<_> = claims.into_iter().map(|c| (c, Finish::Delivered)).collect();
    h.source.finish(&all).await.unwrap();
}

/// Reminders come due at their time, earliest first.
pub async fn future_reminders_wait_for_their_time(h: &Harness) {
    let user = fresh_user();
    let now = (h.now)();
    let later = reminder(user, 1, now + chrono::Duration::minutes(20));
    let sooner = reminder(user, 2, now + chrono::Duration::minutes(10));
    h.scheduler.schedule(&later).await.unwrap();
    h.scheduler.schedule(&sooner).await.unwrap();
    assert!(claim_all(h, 10).await.is_empty());
    (h.advance)(Duration::from_secs(25 * 60)).await;
    let got = h.source.claim(1, h.lease).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].reminder.key, sooner.key, "earliest first");
    let rest = claim_all(h, 10).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].reminder.key, later.key);
    h.source
        .finish(&[
            (got[0].clone(), Finish::Delivered),
            (rest[0].clone(), Finish::Delivered),
        ])
        .await
        .unwrap();
    // A cancelled reminder never comes due.
    let cancelled = reminder(user, 3, (h.now)() + chrono::Duration::minutes(1));
    h.scheduler.schedule(&cancelled).await.unwrap();
    assert!(h.scheduler.cancel(&cancelled.key).await.unwrap());
    (h.advance)(Duration::from_secs(120)).await;
    assert!(claim_all(h, 10).await.is_empty());
}
