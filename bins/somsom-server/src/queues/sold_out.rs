//! Sold out closes the line: when every day of a festival is sold out its waiting room stops
//! admitting and refuses new joins (waiters are told through the version their streams
//! follow); when tickets come back it admits again, in order. Checked at once when a booking is
//! refused as sold out or a reservation is cancelled, and by a watcher on every node once a
//! second (so a node that sold the last ticket needs no booking to fail first). The watcher's
//! readings are what `/metrics` reports of the waiting rooms.

use std::collections::BTreeMap;
use std::time::Duration;

use ticket_lock::TicketEngine;
use tokio_util::sync::CancellationToken;

use super::{Queues, festival_queue};
use crate::metrics::{QueueReading, QueueReadings};

/// Brings `festival`'s waiting room in line with its stock, and returns what it read. Failures
/// are logged: the watcher tries again within a second.
pub async fn check(
    tickets: &dyn TicketEngine,
    queues: &Queues,
    festival: i64,
) -> Option<QueueReading> {
    let queue = festival_queue(festival);
    let (left, days_sold_out) = match tickets.inventory(ticket_lock::FestivalId(festival)).await {
        Ok(inventory) => (
            inventory.days.iter().any(|d| d.left > 0),
            inventory.days.iter().filter(|d| d.left == 0).count(),
        ),
        Err(ticket_lock::TicketError::NotFound) => return None,
        Err(e) => {
            tracing::warn!(festival, error = %crate::error::Report(&e), "stock not read for the sold-out check");
            return None;
        }
    };
    let stats = match queues.engine().stats(&queue).await {
        Ok(stats) => stats,
        Err(e) => {
            tracing::warn!(festival, error = %crate::error::Report(&e), "queue not read for the sold-out check");
            return None;
        }
    };
    let reading = QueueReading {
        waiting: stats.waiting,
        admitted: stats.admitted,
        admitted_total: stats.admitted_total,
        paused: stats.paused,
        days_sold_out: days_sold_out as u64,
    };
    if stats.sold_out == left {
        match queues.engine().set_sold_out(&queue, !left).await {
            Ok(()) if left => tracing::info!(festival, "tickets came back: admission resumes"),
            Ok(()) => tracing::info!(festival, "sold out: the waiting room is closed"),
            Err(e) => {
                tracing::warn!(festival, error = %crate::error::Report(&e), "sold-out state not changed")
            }
        }
    }
    Some(reading)
}

/// Checks every festival queue in use, every `interval`, until `cancel`, and keeps what it read
/// in `readings`.
pub async fn watch(
    tickets: std::sync::Arc<dyn TicketEngine>,
    queues: Queues,
    readings: std::sync::Arc<QueueReadings>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let names = match queues.engine().queues().await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %crate::error::Report(&e), "queues not listed for the sold-out check");
                continue;
            }
        };
        let mut read = BTreeMap::new();
        for name in names {
            if let Some(festival) = name
                .as_str()
                .strip_prefix("festival")
                .and_then(|id| id.parse().ok())
                && let Some(reading) = check(&*tickets, &queues, festival).await
            {
                read.insert(name.as_str().to_owned(), reading);
            }
        }
        readings.replace(read);
    }
}
