#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

pub mod memory;
mod model;

#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub mod sql;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

use async_trait::async_trait;

pub use engine_clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryTickets;
pub use model::{
    Booked, Booking, DayStock, FestivalId, Inventory, KEY_MAX, NewInventory, Reservation,
    ReservationId, ReservationPage, Rules, Status, UserId, Window, kst,
};

/// Why a ticket operation failed. Every refusal leaves stock and reservations as they were.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The festival has no tickets for that day (no inventory, or a day outside the festival).
    #[error("no tickets for this festival day")]
    NotFound,
    /// No reservation with this id belongs to the user.
    #[error("reservation not found")]
    ReservationNotFound,
    /// Fewer tickets are left than asked for.
    #[error("sold out: {left} left")]
    SoldOut {
        /// Tickets left for the day.
        left: u32,
    },
    /// The user would hold more tickets for the day than the festival allows.
    #[error("a user may hold {limit} tickets for a festival day; {held} held already")]
    LimitExceeded {
        /// The cap per user and day.
        limit: u32,
        /// What the user holds already.
        held: u32,
    },
    /// The reservation was cancelled already.
    #[error("already processed")]
    AlreadyProcessed,
    /// The idempotency key was used before for a different booking.
    #[error("idempotency key reused for a different booking")]
    KeyReused,
    /// The day is over: it can no longer be booked or cancelled.
    #[error("the festival day is over")]
    DayClosed,
    /// An argument is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as the API names it.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The backend could not be reached or failed: worth trying again later
    /// ([`TicketError::is_retryable`]). What it said is the [`source`](std::error::Error::source).
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl TicketError {
    /// [`TicketError::Unavailable`] from whatever `backend` said.
    pub fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Whether trying again later may succeed: the backend was unavailable. Every other error
    /// is an answer about the request itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Results of this crate.
pub type Result<T, E = TicketError> = std::result::Result<T, E>;

/// Ticket stock per festival day, and the reservations made against it.
///
/// `reserve` checks, atomically with the stock: the day exists and is not over, the quantity is
/// within the festival's maximum per reservation, the user's tickets for the day stay within the
/// cap, and enough are left. With an idempotency key, a retried booking returns the reservation
/// the first attempt made instead of booking again.
#[async_trait]
pub trait TicketEngine: Send + Sync + std::fmt::Debug {
    /// Creates a festival's stock. Creating it again returns the existing one unchanged.
    async fn create_inventory(&self, inventory: NewInventory) -> Result<Inventory, TicketError>;

    /// A festival's stock and rules; [`TicketError::NotFound`] if it has none.
    async fn inventory(&self, festival: FestivalId) -> Result<Inventory, TicketError>;

    /// Books tickets.
    async fn reserve(&self, booking: Booking) -> Result<Booked, TicketError>;

    /// Cancels the user's reservation and returns its tickets to stock.
    async fn cancel(&self, user: UserId, id: ReservationId) -> Result<Reservation, TicketError>;

    /// The reservation a booking of `user` with idempotency key `key` made, if any: a retried
    /// request can be answered without booking (or anything else, such as using a waiting-room
    /// admission) again.
    async fn reservation_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<Reservation>, TicketError>;

    /// One of the user's reservations.
    async fn reservation(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<Reservation, TicketError>;

    /// Anyone's reservation by its id (for staff at the gate, who check other people's
    /// tickets); [`TicketError::ReservationNotFound`] if there is none.
    async fn reservation_by_id(&self, id: ReservationId) -> Result<Reservation, TicketError>;

    /// Every reservation of a festival day, active and cancelled, in id order after `after`, at
    /// most `limit` (a gate's ticket list, an organiser's report).
    async fn day_reservations(
        &self,
        festival: FestivalId,
        date: chrono::NaiveDate,
        after: ReservationId,
        limit: u32,
    ) -> Result<Vec<Reservation>, TicketError>;

    /// Tickets the user holds (in active reservations) for a festival day.
    async fn held(
        &self,
        user: UserId,
        festival: FestivalId,
        date: chrono::NaiveDate,
    ) -> Result<u32, TicketError>;

    /// Every user's active reservations for days from `from` on, in id order after `after`, at
    /// most `limit` (for jobs that walk all bookings, such as planning reminders).
    async fn active_from(
        &self,
        from: chrono::NaiveDate,
        after: ReservationId,
        limit: u32,
    ) -> Result<Vec<Reservation>, TicketError>;

    /// The user's reservations, newest first, with a keyset cursor (`last_id` 0: first page).
    async fn reservations(
        &self,
        user: UserId,
        window: Window,
    ) -> Result<ReservationPage, TicketError>;
}
