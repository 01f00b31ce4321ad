//! What a drop looks like in numbers: bookings by outcome, tickets sold and given back, the
//! waiting rooms' lines, and how late reminders went out. The workflows record into an
//! [`Activity`] the application hands them; `/metrics` exposes it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How a booking request ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum BookingOutcome {
    /// Tickets reserved.
    Booked,
    /// A retry answered with the first attempt's reservation.
    Replayed,
    /// No tickets left for the day.
    SoldOut,
    /// Refused for the request's own reason (sale window, admission, limits, bad day).
    Refused,
    /// A backend failed.
    Failed,
}

impl BookingOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Replayed => "replayed",
            Self::SoldOut => "sold_out",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// A waiting room as last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueReading {
    /// People in line.
    pub waiting: u64,
    /// Admissions live.
    pub admitted: u64,
    /// Admissions ever made.
    pub admitted_total: u64,
    /// Admission paused by an admin.
    pub paused: bool,
    /// Days of the festival with nothing left.
    pub days_sold_out: u64,
}

/// The waiting rooms' last readings, replaced whole on every pass of the sold-out watcher (so a
/// queue that is gone stops being reported).
#[derive(Debug, Default)]
pub struct QueueReadings(RwLock<BTreeMap<String, QueueReading>>);

impl QueueReadings {
    /// Replaces every reading.
    pub fn replace(&self, readings: BTreeMap<String, QueueReading>) {
        *self.0.write().expect("poisoned") = readings;
    }

    /// Every reading, by queue name.
    pub fn all(&self) -> Vec<(String, QueueReading)> {
        let readings = self.0.read().expect("poisoned");
        readings.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

const REMINDER_OUTCOMES: [&str; 4] = ["delivered", "dropped", "failed", "retried"];

/// Counters the workflows and background tasks record into.
#[derive(Debug)]
pub struct Activity {
    bookings: Family<OutcomeLabels, Counter>,
    tickets_booked: Counter,
    cancellations: Counter,
    tickets_cancelled: Counter,
    reminders: Family<OutcomeLabels, Counter>,
    reminder_lateness: Histogram,
    /// Waiting rooms as the sold-out watcher last read them.
    pub queues: Arc<QueueReadings>,
}

impl Activity {
    pub(super) fn register(registry: &mut Registry) -> Arc<Self> {
        let activity = Arc::new(Self {
            bookings: Family::default(),
            tickets_booked: Counter::default(),
            cancellations: Counter::default(),
            tickets_cancelled: Counter::default(),
            reminders: Family::default(),
            // One second to about nine hours: a reminder is due a day ahead, so minutes late
            // already matter and hours late is an outage.
            reminder_lateness: Histogram::new([
                1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 32400.0,
            ]),
            queues: Arc::default(),
        });
        // Every outcome from zero, so that a rate is defined before the first of each.
        for outcome in [
            BookingOutcome::Booked,
            BookingOutcome::Replayed,
            BookingOutcome::SoldOut,
            BookingOutcome::Refused,
            BookingOutcome::Failed,
        ] {
            activity
                .bookings
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.label(),
                })
                .inc_by(0);
        }
        for outcome in REMINDER_OUTCOMES {
            activity
                .reminders
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(0);
        }
        registry.register(
            "bookings",
            "Booking requests answered, by outcome",
            activity.bookings.clone(),
        );
        registry.register(
            "tickets_booked",
            "Tickets reserved",
            activity.tickets_booked.clone(),
        );
        registry.register(
            "cancellations",
            "Reservations cancelled",
            activity.cancellations.clone(),
        );
        registry.register(
            "tickets_cancelled",
            "Tickets given back by cancellations",
            activity.tickets_cancelled.clone(),
        );
        registry.register(
            "reminders",
            "Reminders finished by this node's dispatcher, by outcome (delivered, dropped, failed, retried)",
            activity.reminders.clone(),
        );
        registry.register(
            "reminder_lateness_seconds",
            "How long after its due time each reminder was delivered",
            activity.reminder_lateness.clone(),
        );
        activity
    }

    /// Counts a booking request's outcome (and its tickets when booked).
    pub fn booking(&self, outcome: BookingOutcome, tickets: u32) {
        self.bookings
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
        if outcome == BookingOutcome::Booked {
            self.tickets_booked.inc_by(u64::from(tickets));
        }
    }

    /// Counts a cancellation of `tickets` tickets.
    pub fn cancellation(&self, tickets: u32) {
        self.cancellations.inc();
        self.tickets_cancelled.inc_by(u64::from(tickets));
    }

    /// Records a dispatcher round.
    pub fn reminder_round(&self, round: &push_notify::dispatch::Round) {
        let counts = [round.delivered, round.dropped, round.failed, round.retried];
        for (outcome, n) in REMINDER_OUTCOMES.into_iter().zip(counts) {
            if n > 0 {
                self.reminders
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(n as u64);
            }
        }
        for late in &round.lateness {
            self.reminder_lateness.observe(late.as_secs_f64());
        }
    }
}
