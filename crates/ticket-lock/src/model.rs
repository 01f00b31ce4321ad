//! Stock, rules, bookings and reservations.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::TicketError;

/// An id that is an `i64` in the database but cannot be passed where another kind of id is
/// expected (`cancel(user, reservation)` with the two swapped does not compile).
macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        #[cfg_attr(any(feature = "sqlite", feature = "mysql"), derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id!(
    /// A festival's id (from the catalog).
    FestivalId
);
id!(
    /// A user's id (the application's).
    UserId
);
id!(
    /// A reservation's id, increasing in booking order.
    ReservationId
);

/// Longest idempotency key, in bytes.
pub const KEY_MAX: usize = 100;

/// A festival's booking rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Most tickets in one reservation (default 4).
    pub max_per_reservation: u32,
    /// Most tickets one user may hold for one day (default 4).
    pub max_per_user_per_day: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_per_reservation: 4,
            max_per_user_per_day: 4,
        }
    }
}

/// What creating a festival's stock takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInventory {
    /// The festival.
    pub festival: FestivalId,
    /// Each day and its number of tickets.
    pub days: Vec<(NaiveDate, u32)>,
    /// The rules.
    pub rules: Rules,
}

impl NewInventory {
    /// Checks the rules and days.
    pub fn validate(&self) -> Result<(), TicketError> {
        if self.days.is_empty() {
            return Err(invalid("days", "at least one day"));
        }
        let mut dates: Vec<_> = self.days.iter().map(|(d, _)| *d).collect();
        dates.sort_unstable();
        dates.dedup();
        if dates.len() != self.days.len() {
            return Err(invalid("days", "each day once"));
        }
        if self.days.iter().any(|(_, n)| *n > 1_000_000) {
            return Err(invalid("tickets", "at most 1,000,000 tickets a day"));
        }
        if !(1..=100).contains(&self.rules.max_per_reservation) {
            return Err(invalid("maxPerReservation", "between 1 and 100"));
        }
        if !(1..=1_000).contains(&self.rules.max_per_user_per_day) {
            return Err(invalid("maxPerUserPerDay", "between 1 and 1000"));
        }
        Ok(())
    }
}

pub(crate) fn invalid(field: &'static str, reason: &str) -> TicketError {
    TicketError::Invalid {
        field,
        reason: reason.to_owned(),
    }
}

/// One day's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayStock {
    /// The day.
    pub date: NaiveDate,
    /// Tickets in all.
    pub total: u32,
    /// Tickets not reserved.
    pub left: u32,
}

/// A festival's stock and rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// The festival.
    pub festival: FestivalId,
    /// The rules.
    pub rules: Rules,
    /// Day by day, first to last.
    pub days: Vec<DayStock>,
}

/// A request for tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Who books (tickets are theirs).
    pub user: UserId,
    /// The festival.
    pub festival: FestivalId,
    /// The day.
    pub date: NaiveDate,
    /// How many tickets.
    pub quantity: u32,
    /// A client-chosen key (per user): the same key books once.
    pub idempotency_key: Option<String>,
}

impl Booking {
    /// Checks what can be checked without the stock.
    pub fn validate(&self) -> Result<(), TicketError> {
        if self.quantity == 0 {
            return Err(invalid("quantity", "at least 1"));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > KEY_MAX || key.chars().any(char::is_control))
        {
            return Err(invalid(
                "Idempotency-Key",
                "1 to 100 bytes without control characters",
            ));
        }
        Ok(())
    }

    /// Whether `reservation` is what this booking would have made (for idempotent replays).
    pub fn same_as(&self, reservation: &Reservation) -> bool {
        reservation.user == self.user
            && reservation.festival == self.festival
            && reservation.date == self.date
            && reservation.quantity == self.quantity
    }
}

/// Whether a reservation holds its tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Holds its tickets.
    Active,
    /// Cancelled; its tickets went back to stock.
    Cancelled,
}

impl Status {
    /// `ACTIVE` or `CANCELLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Status::Active),
            "CANCELLED" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

/// A reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    /// Its id.
    pub id: ReservationId,
    /// Its owner.
    pub user: UserId,
    /// The festival.
    pub festival: FestivalId,
    /// The festival day.
    pub date: NaiveDate,
    /// Tickets.
    pub quantity: u32,
    /// Active or cancelled.
    pub status: Status,
    /// When it was booked (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// The answer to a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booked {
    /// The reservation.
    pub reservation: Reservation,
    /// True when an earlier booking with the same idempotency key made it.
    pub replayed: bool,
}

/// Which page of reservations: after reservation `last_id` (0: the first page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The cursor.
    pub last_id: ReservationId,
    /// Page size, 1..=100.
    pub limit: u32,
}

impl Window {
    /// Checks the bounds.
    pub fn new(last_id: impl Into<ReservationId>, limit: u32) -> Result<Self, TicketError> {
        let last_id = last_id.into();
        if last_id.0 < 0 {
            return Err(invalid("lastId", "must not be negative"));
        }
        if !(1..=100).contains(&limit) {
            return Err(invalid("limit", "between 1 and 100"));
        }
        Ok(Self { last_id, limit })
    }

    pub(crate) fn bound(&self) -> ReservationId {
        if self.last_id.0 == 0 {
            ReservationId(i64::MAX)
        } else {
            self.last_id
        }
    }

    pub(crate) fn page(&self, mut rows: Vec<Reservation>) -> ReservationPage {
        let has_next = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let last_id = if has_next {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        ReservationPage {
            reservations: rows,
            has_next,
            last_id,
        }
    }
}

/// A page of reservations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationPage {
    /// Newest first.
    pub reservations: Vec<Reservation>,
    /// Whether another page follows.
    pub has_next: bool,
    /// The cursor of the next page.
    pub last_id: Option<ReservationId>,
}

/// The festival's local calendar day at `now` (a day is over when it is over where the festival
/// takes place).
pub(crate) fn today(now: DateTime<Utc>, offset: FixedOffset) -> NaiveDate {
    now.with_timezone(&offset).date_naive()
}

/// Korea Standard Time, the default calendar.
pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("a valid offset")
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The rules of a booking against one day's stock, in the order they are reported: the day is
/// not over, the quantity fits one reservation, the user's cap, then the stock.
pub(crate) fn check(
    booking: &Booking,
    rules: Rules,
    left: u32,
    held: u32,
    today: NaiveDate,
) -> Result<(), TicketError> {
    if booking.date < today {
        return Err(TicketError::DayClosed);
    }
    if booking.quantity > rules.max_per_reservation {
        return Err(TicketError::Invalid {
            field: "quantity",
            reason: format!("at most {} per reservation", rules.max_per_reservation),
        });
    }
    if held + booking.quantity > rules.max_per_user_per_day {
        return Err(TicketError::LimitExceeded {
            limit: rules.max_per_user_per_day,
            held,
        });
    }
    if left < booking.quantity {
        return Err(TicketError::SoldOut { left });
    }
    Ok(())
}
