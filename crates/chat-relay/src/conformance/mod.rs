//! The suites every backend passes: [`store`], [`presence`] and [`relay`]. Each check takes the
//! backend as a trait object and panics with a description on a difference.

pub mod presence;
pub mod relay;
pub mod store;

use crate::{Draft, Member, RoomId, UserId};

/// Room ids no other run is using, so suites can share a database, table or Redis.
pub fn fresh_rooms() -> RoomId {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    // Millions of rooms apart per call, and apart between processes by the clock.
    RoomId(
        (nanos / 1_000 % 1_000_000_000) * 1_000
            + NEXT.fetch_add(1, Ordering::Relaxed) * 100_000_000_000,
    )
}

/// A draft by user `sender` in `room` at `at`.
pub fn draft(room: RoomId, sender: i64, content: &str, at: i64) -> Draft {
    let member = Member {
        id: UserId(sender),
        name: format!("user {sender}"),
    };
    Draft::new(room, &member, content, at).expect("a valid draft")
}
