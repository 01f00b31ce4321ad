//! Conformance suites: every backend runs the same checks.
//!
//! * [`registry`] for [`DeviceRegistry`](crate::DeviceRegistry) backends;
//! * [`schedule`] for [`Scheduler`](crate::Scheduler) and [`DueSource`](crate::DueSource)
//!   backends, through a [`schedule::Harness`] that says how time moves for them;
//! * [`ledger`] for [`Ledger`](crate::Ledger) backends;
//! * [`dispatch`] runs the [`Dispatcher`](crate::Dispatcher) over a set of backends with a
//!   scripted sender.
//!
//! Checks draw fresh user ids, so backends may be shared between checks.

pub mod dispatch;
pub mod ledger;
pub mod registry;
pub mod schedule;

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::{Reminder, ReminderKey, UserId};

/// A user id no other check of this process uses; random high bits keep processes apart.
pub fn fresh_user() -> UserId {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (i64::from(std::process::id()) << 32 | i64::from(nanos)) & 0x3fff_ffff_ffff_0000
    });
    base + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A reminder for `user`'s festival `festival`, due at `due`.
pub fn reminder(user: UserId, festival: i64, due: DateTime<Utc>) -> Reminder {
    let date: NaiveDate = due.date_naive() + Days::new(1);
    Reminder {
        key: ReminderKey {
            user,
            festival,
            date,
        },
        due,
        title: format!("Festival {festival}"),
        body: format!("{date} 에 Festival {festival}이 시작됩니다."),
    }
}
