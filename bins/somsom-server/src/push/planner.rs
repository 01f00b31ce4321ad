//! Keeping the reminder plan in step with reservations, off the request path.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use festival_catalog::{Catalog, CatalogError};
use push_notify::{Clock, Dispatcher, Planner, ReminderKey, Scheduler};
use ticket_lock::TicketEngine;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Requests waiting for the planner task; a full queue slows bookings down rather than dropping
/// plans.
const QUEUE: usize = 16 * 1024;
/// Keys handled per pass (duplicates within a pass are handled once).
const PASS: usize = 512;
/// Reservations read per page when walking them all.
const PAGE: u32 = 1_000;

/// What happened to a user's tickets for a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Tickets were booked: the user holds some now.
    Booked,
    /// Tickets were cancelled: the user may hold none now.
    Cancelled,
}

/// The handle bookings and cancellations use.
#[derive(Debug, Clone)]
pub struct Planning {
    tx: mpsc::Sender<(ReminderKey, Change)>,
}

impl Planning {
    /// Tickets were booked: a reminder should be planned.
    pub async fn booked(&self, user: i64, festival: i64, date: NaiveDate) {
        self.send(user, festival, date, Change::Booked).await;
    }

    /// Tickets were cancelled: the reminder goes if the user holds none for the day any more.
    pub async fn cancelled(&self, user: i64, festival: i64, date: NaiveDate) {
        self.send(user, festival, date, Change::Cancelled).await;
    }

    async fn send(&self, user: i64, festival: i64, date: NaiveDate, change: Change) {
        let key = ReminderKey {
            user,
            festival,
            date,
        };
        if self.tx.send((key, change)).await.is_err() {
            // Shutting down: the next start's reconciliation plans it.
            tracing::warn!(%key, "reminder planner stopped; left to the next start");
        }
    }
}

/// What the planner works with.
#[derive(Debug, Clone)]
pub struct PlanContext {
    /// The plan.
    pub scheduler: Arc<dyn Scheduler>,
    /// What users hold.
    pub tickets: Arc<dyn TicketEngine>,
    /// Festival names.
    pub catalog: Arc<dyn Catalog>,
    /// When reminders are due.
    pub planner: Planner,
    /// Woken when a reminder is due at once.
    pub dispatcher: Option<Dispatcher>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

impl PlanContext {
    /// Starts the planner task; returns its handle and the task.
    pub fn start(
        self,
    ) -> (
        Planning,
        impl FnOnce(CancellationToken) -> futures::future::BoxFuture<'static, ()>,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = move |cancel: CancellationToken| -> futures::future::BoxFuture<'static, ()> {
            Box::pin(self.run(rx, cancel))
        };
        (Planning { tx }, task)
    }

    async fn run(self, mut rx: mpsc::Receiver<(ReminderKey, Change)>, cancel: CancellationToken) {
        let mut names = Names::default();
        let mut batch = Vec::with_capacity(PASS);
        loop {
            batch.clear();
            tokio::select! {
                n = rx.recv_many(&mut batch, PASS) => if n == 0 { return },
                () = cancel.cancelled() => {
                    // Plan what was asked before stopping.
                    rx.close();
                    while let Ok(change) = rx.try_recv() { batch.push(change); }
                    self.pass(&batch, &mut names).await;
                    return;
                }
            }
            self.pass(&batch, &mut names).await;
        }
    }

    async fn pass(&self, changes: &[(ReminderKey, Change)], names: &mut Names) {
        // One decision per key and pass; a cancellation anywhere in the pass wins, since it
        // looks at the holdings afterwards anyway.
        let mut merged: Vec<(ReminderKey, Change)> = Vec::new();
        let mut at: HashMap<ReminderKey, usize> = HashMap::new();
        for (key, change) in changes {
            match at.get(key) {
                Some(&i) if *change == Change::Cancelled => merged[i].1 = Change::Cancelled,
                Some(_) => {}
                None => {
                    at.insert(*key, merged.len());
                    merged.push((*key, *change));
                }
            }
        }
        // After a booking the reminder is planned unless it is pending already. One read for
        // the pass, so the common case (more bookings of a planned day) writes nothing.
        let booked: Vec<ReminderKey> = merged
            .iter()
            .filter(|(_, change)| *change == Change::Booked)
            .map(|(key, _)| *key)
            .collect();
        let pending = match self.scheduler.pending_keys(&booked).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %crate::error::Report(&e), "reminder plan not read; planning each booking");
                std::collections::HashSet::new()
            }
        };
        let mut wake = false;
        for (key, change) in &merged {
            let result = match change {
                Change::Booked if pending.contains(key) => continue,
                Change::Booked => self.plan(*key, names).await,
                Change::Cancelled => self.sync(*key, names).await,
            };
            match result {
                Ok(due_now) => wake |= due_now,
                Err(e) => {
                    tracing::warn!(%key, error = %e, "reminder not planned; the next start retries")
                }
            }
        }
        if wake && let Some(d) = &self.dispatcher {
            d.wake();
        }
    }

    /// Brings one key's plan in line with the holdings; true if a reminder is due at once.
    async fn sync(&self, key: ReminderKey, names: &mut Names) -> Result<bool, String> {
        let held = |ctx: &Self| {
            let tickets = ctx.tickets.clone();
            async move {
                tickets
                    .held(
                        ticket_lock::UserId(key.user),
                        ticket_lock::FestivalId(key.festival),
                        key.date,
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        if held(self).await? == 0 {
            self.scheduler
                .cancel(&key)
                .await
                .map_err(|e| e.to_string())?;
            // A booking may have landed between the read and the cancel: look again.
            if held(self).await? == 0 {
                return Ok(false);
            }
        }
        self.plan(key, names).await
    }

    /// Plans `key` unless its festival is gone or the day has begun; true if due at once.
    async fn plan(&self, key: ReminderKey, names: &mut Names) -> Result<bool, String> {
        let Some(name) = names.get(&*self.catalog, key.festival).await? else {
            return Ok(false);
        };
        let now = self.clock.now();
        let Some(reminder) = self.planner.reminder(key, &name, now) else {
            return Ok(false);
        };
        let added = self
            .scheduler
            .schedule(&reminder)
            .await
            .map_err(|e| e.to_string())?;
        Ok(added && reminder.due <= now)
    }
}

/// Festival names, read once per festival per pass of the planner (bounded).
#[derive(Debug, Default)]
struct Names(HashMap<i64, Option<String>>);

impl Names {
    async fn get(
        &mut self,
        catalog: &dyn Catalog,
        festival: i64,
    ) -> Result<Option<String>, String> {
        if let Some(name) = self.0.get(&festival) {
            return Ok(name.clone());
        }
        let name = match catalog.get(festival).await {
            Ok(f) => Some(f.name),
            Err(CatalogError::NotFound(_)) => None,
            Err(e) => return Err(e.to_string()),
        };
        if self.0.len() > 10_000 {
            self.0.clear();
        }
        self.0.insert(festival, name.clone());
        Ok(name)
    }
}

/// Plans a reminder for every active reservation from today on that has none (after a crash
/// between a booking and its planning, or a plan store that was lost). Returns how many
/// reminders it added.
pub async fn reconcile(ctx: &PlanContext) -> Result<usize, String> {
    let today = ctx
        .clock
        .now()
        .with_timezone(&ctx.planner.zone)
        .date_naive();
    let mut names = Names::default();
    let mut after = ticket_lock::ReservationId(0);
    let mut added = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = ctx
            .tickets
            .active_from(today, after, PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for r in &page {
            let key = ReminderKey {
                user: r.user.0,
                festival: r.festival.0,
                date: r.date,
            };
            if !seen.insert(key) {
                continue;
            }
            let Some(name) = names.get(&*ctx.catalog, key.festival).await? else {
                continue;
            };
            if let Some(reminder) = ctx.planner.reminder(key, &name, ctx.clock.now())
                && ctx
                    .scheduler
                    .schedule(&reminder)
                    .await
                    .map_err(|e| e.to_string())?
            {
                added += 1;
            }
        }
    }
    if added > 0
        && let Some(d) = &ctx.dispatcher
    {
        d.wake();
    }
    Ok(added)
}
