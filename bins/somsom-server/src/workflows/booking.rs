//! Booking and cancelling: the sale's window, the waiting room's admission (used once), the
//! ticket engine, and the reminder plan, in one place that the HTTP handlers and tools call.

use std::sync::Arc;

use chrono::NaiveDate;
use cognito_auth::Clock;
use festival_catalog::{Catalog, CatalogError, SaleState};
use ticket_lock::{Booked, Booking, Reservation, ReservationId, TicketEngine, TicketError};
use waiting_queue::{Consumption, QueueError};

use crate::metrics::{Activity, BookingOutcome};
use crate::push::Planning;
use crate::queues::{Queues, festival_queue};

/// What booking needs.
#[derive(Clone)]
pub struct BookingDesk {
    /// Festivals and their sales.
    pub catalog: Arc<dyn Catalog>,
    /// Ticket stock.
    pub tickets: Arc<dyn TicketEngine>,
    /// Waiting rooms and admission tokens.
    pub queues: Queues,
    /// Reminders follow bookings.
    pub planning: Planning,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Bookings and cancellations are counted here.
    pub activity: Arc<Activity>,
    /// Their confirmation e-mails are queued here.
    pub mail: crate::mail::Outbox,
}

impl std::fmt::Debug for BookingDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingDesk").finish_non_exhaustive()
    }
}

/// A booking request.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    /// `users.id` of the buyer.
    pub user: i64,
    /// The buyer's normalised e-mail: their key in the waiting room.
    pub email: String,
    /// The festival.
    pub festival: i64,
    /// The day.
    pub date: NaiveDate,
    /// How many tickets.
    pub quantity: u32,
    /// Makes a retry return the first attempt's reservation.
    pub idempotency_key: Option<String>,
    /// The token from the festival's waiting room.
    pub admission_token: Option<String>,
}

/// Why a booking (or a cancellation) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BookingError {
    /// No such festival.
    #[error("no such festival")]
    FestivalNotFound,
    /// The sale opens later.
    #[error("the sale opens at {opens_at}")]
    SaleNotOpen {
        /// When.
        opens_at: chrono::DateTime<chrono::Utc>,
        /// Whole seconds until then (at least 1), for `Retry-After`.
        in_secs: u64,
    },
    /// The sale is over.
    #[error("the sale is over")]
    SaleClosed,
    /// The sale is queued and the request carries no admission token.
    #[error("an admission token is required")]
    AdmissionRequired,
    /// The token is forged, altered, expired, someone else's, or not the holder's admission.
    #[error("the admission token is not valid")]
    AdmissionInvalid,
    /// The admission was used by an earlier booking.
    #[error("the admission was used already")]
    AdmissionUsed,
    /// The ticket engine refused or failed.
    #[error(transparent)]
    Tickets(#[from] TicketError),
    /// The waiting room failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(CatalogError),
}

impl BookingError {
    /// How metrics count it.
    fn outcome(&self) -> BookingOutcome {
        let failed = match self {
            Self::Tickets(TicketError::SoldOut { .. }) => return BookingOutcome::SoldOut,
            Self::Tickets(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::Catalog(e) => e.is_retryable(),
            _ => false,
        };
        if failed {
            BookingOutcome::Failed
        } else {
            BookingOutcome::Refused
        }
    }
}

impl BookingDesk {
    /// Books: within the sale's window; through the waiting room unless the sale is not queued,
    /// using the admission once (given back if the booking is refused, so the user can try
    /// again while it lasts); then the reminder is planned. A retry with the same idempotency
    /// key answers with the first reservation, whatever the token.
    pub async fn book(&self, request: BookingRequest) -> Result<Booked, BookingError> {
        let quantity = request.quantity;
        let result = self.try_book(request).await;
        let outcome = match &result {
            Ok(booked) if booked.replayed => BookingOutcome::Replayed,
            Ok(_) => BookingOutcome::Booked,
            Err(e) => e.outcome(),
        };
        self.activity.booking(outcome, quantity);
        result
    }

    async fn try_book(&self, request: BookingRequest) -> Result<Booked, BookingError> {
        let now = self.clock.now();
        let festival = match self.catalog.get(request.festival).await {
            Ok(festival) => festival,
            Err(CatalogError::NotFound(_)) => return Err(BookingError::FestivalNotFound),
            Err(e) => return Err(BookingError::Catalog(e)),
        };
        match festival.sale.state(now) {
            SaleState::Upcoming => {
                let opens_at = festival.sale.opens_at.unwrap_or(now);
                let in_ms = (opens_at - now).num_milliseconds().max(1);
                return Err(BookingError::SaleNotOpen {
                    opens_at,
                    in_secs: u64::try_from(in_ms).map_or(1, |ms| ms.div_ceil(1000)),
                });
            }
            SaleState::Closed => return Err(BookingError::SaleClosed),
            SaleState::OnSale => {}
        }
        let booking = Booking {
            user: ticket_lock::UserId(request.user),
            festival: ticket_lock::FestivalId(request.festival),
            date: request.date,
            quantity: request.quantity,
            idempotency_key: request.idempotency_key,
        };
        if let Some(key) = &booking.idempotency_key
            && let Some(earlier) = self.tickets.reservation_by_key(booking.user, key).await?
        {
            return if booking.same_as(&earlier) {
                Ok(Booked {
                    reservation: earlier,
                    replayed: true,
                })
            } else {
                Err(TicketError::KeyReused.into())
            };
        }
        let queue = festival_queue(request.festival);
        let admission = if festival.sale.queued {
            let token = request
                .admission_token
                .as_deref()
                .ok_or(BookingError::AdmissionRequired)?;
            let verified = self
                .queues
                .tokens()
                .verify(token, &queue, &request.email, now)
                .map_err(|_| BookingError::AdmissionInvalid)?;
            match self
                .queues
                .engine()
                .consume(&queue, &request.email, verified.admission)
                .await?
            {
                Consumption::Consumed => Some(verified.admission),
                Consumption::AlreadyUsed => return Err(BookingError::AdmissionUsed),
                Consumption::NotAdmitted => return Err(BookingError::AdmissionInvalid),
            }
        } else {
            None
        };
        match self.tickets.reserve(booking).await {
            Ok(booked) => {
                let r = &booked.reservation;
                self.planning.booked(r.user.0, r.festival.0, r.date).await;
                if !booked.replayed {
                    self.mail.queue(crate::mail::outbox::Kind::Booked, r);
                }
                Ok(booked)
            }
            Err(refused) => {
                if let Some(admission) = admission
                    && let Err(e) = self
                        .queues
                        .engine()
                        .release(&queue, &request.email, admission)
                        .await
                {
                    tracing::warn!(error = %crate::error::Report(&e), "an admission of a refused booking was not given back");
                }
                if matches!(refused, TicketError::SoldOut { .. }) {
                    crate::queues::sold_out::check(&*self.tickets, &self.queues, request.festival)
                        .await;
                }
                Err(refused.into())
            }
        }
    }

    /// Cancels the user's reservation: its tickets go back on sale (reopening a sold-out line)
    /// and the reminder plan follows.
    pub async fn cancel(&self, user: i64, id: ReservationId) -> Result<Reservation, BookingError> {
        let cancelled = self.tickets.cancel(ticket_lock::UserId(user), id).await?;
        self.activity.cancellation(cancelled.quantity);
        self.mail
            .queue(crate::mail::outbox::Kind::Cancelled, &cancelled);
        self.planning
            .cancelled(cancelled.user.0, cancelled.festival.0, cancelled.date)
            .await;
        crate::queues::sold_out::check(&*self.tickets, &self.queues, cancelled.festival.0).await;
        Ok(cancelled)
    }
}
