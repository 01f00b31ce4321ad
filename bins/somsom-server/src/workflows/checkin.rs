//! Checking tickets in at the gate: the code's signature, the reservation behind it (not
//! cancelled, this day, this ticket number), the staff member's grant, and the one row per
//! ticket that makes the first scan anywhere the only one.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use cognito_auth::{Clock, Role};
use ticket_lock::{ReservationId, Status, TicketEngine, TicketError};

use crate::db::Database;
use crate::tickets::codes::{CodeError, TicketCodes};
use crate::tickets::store::{self, CheckIn};

/// What checking in needs.
#[derive(Clone)]
pub struct Gate {
    /// Reservations.
    pub tickets: Arc<dyn TicketEngine>,
    /// Ticket codes.
    pub codes: TicketCodes,
    /// The check-ins and staff grants.
    pub db: Database,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// Who scans.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Their `users.id`.
    pub user: i64,
    /// Their role (admins may check in anywhere).
    pub role: Role,
}

/// One scan.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The code read.
    pub code: String,
    /// The gate's name (free text, at most 64 characters).
    pub gate: String,
    /// The day being let in.
    pub day: NaiveDate,
    /// When the scanner read it (offline scans upload later); now if absent.
    pub scanned_at: Option<DateTime<Utc>>,
}

/// A ticket let in.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its check-in.
    pub check_in: CheckIn,
    /// The reservation's tickets.
    pub quantity: u32,
}

/// Why a ticket was not let in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckInError {
    /// Not a code this server issued, or one altered.
    #[error("invalid ticket code: {0}")]
    Code(CodeError),
    /// The code is genuine but names no ticket (a reservation gone, a number past its quantity).
    #[error("no such ticket")]
    NoSuchTicket,
    /// The reservation was cancelled.
    #[error("the reservation was cancelled")]
    Cancelled,
    /// The ticket is for another day.
    #[error("the ticket is for {0}")]
    WrongDay(NaiveDate),
    /// The scanner may not check tickets in at this festival.
    #[error("not staff of this festival")]
    NotStaff,
    /// Checked in before: the first check-in, and the e-mail of the staff member who made it.
    #[error("checked in already")]
    AlreadyCheckedIn(Box<CheckIn>, Option<String>),
    /// The reservations could not be read.
    #[error(transparent)]
    Tickets(TicketError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The longest gate name kept.
pub const GATE_MAX: usize = 64;

impl Gate {
    /// Whether `scanner` may check tickets in at `festival`.
    pub async fn may_check_in(
        &self,
        scanner: &Scanner,
        festival: i64,
    ) -> Result<bool, sqlx::Error> {
        if scanner.role == Role::Admin {
            return Ok(true);
        }
        store::may_check_in(&self.db, scanner.user, festival).await
    }

    /// Lets the scanned ticket in, once.
    pub async fn check_in(&self, scanner: &Scanner, scan: Scan) -> Result<Admitted, CheckInError> {
        let ticket = self.codes.read(&scan.code).map_err(CheckInError::Code)?;
        if !self.may_check_in(scanner, ticket.festival).await? {
            return Err(CheckInError::NotStaff);
        }
        let reservation = match self
            .tickets
            .reservation_by_id(ReservationId(ticket.reservation))
            .await
        {
            Ok(r) => r,
            Err(TicketError::ReservationNotFound) => return Err(CheckInError::NoSuchTicket),
            Err(e) => return Err(CheckInError::Tickets(e)),
        };
        if reservation.festival.0 != ticket.festival
            || reservation.date != ticket.date
            || ticket.number == 0
            || ticket.number > reservation.quantity
        {
            return Err(CheckInError::NoSuchTicket);
        }
        if reservation.status == Status::Cancelled {
            return Err(CheckInError::Cancelled);
        }
        if ticket.date != scan.day {
            return Err(CheckInError::WrongDay(ticket.date));
        }
        let now = self.clock.now();
        let check_in = CheckIn {
            reservation_id: ticket.reservation,
            ticket_no: i32::try_from(ticket.number).map_err(|_| CheckInError::NoSuchTicket)?,
            festival_id: ticket.festival,
            festival_date: ticket.date,
            staff_user_id: scanner.user,
            gate: scan.gate.chars().take(GATE_MAX).collect(),
            // A scan cannot come from the future.
            scanned_at: scan.scanned_at.unwrap_or(now).min(now).timestamp_millis(),
            recorded_at: now.timestamp_millis(),
        };
        match store::record(&self.db, &check_in).await? {
            None => Ok(Admitted {
                check_in,
                quantity: reservation.quantity,
            }),
            Some(first) => {
                let by = crate::auth::users::by_id(&self.db, first.staff_user_id)
                    .await?
                    .map(|u| u.email);
                Err(CheckInError::AlreadyCheckedIn(Box::new(first), by))
            }
        }
    }
}
