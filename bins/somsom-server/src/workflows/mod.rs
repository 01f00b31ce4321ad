//! What SomSom does across engines, as functions that return domain errors: booking and
//! cancelling ([`booking`]), creating and changing festivals ([`festival`]), joining and leaving
//! chat rooms ([`chat`]), granting the admin role ([`accounts`]), checking tickets in at the
//! gate ([`checkin`]). The HTTP handlers
//! and the command line call these and only translate; nothing here knows about HTTP but the
//! mapping of its errors onto the API's codes, kept beside them.

pub mod accounts;
pub mod booking;
pub mod chat;
pub mod checkin;
pub mod festival;

pub use booking::{BookingDesk, BookingError, BookingRequest};
pub use chat::MembershipError;
pub use checkin::{CheckInError, Gate};
pub use festival::FestivalError;

use crate::error::{ApiError, ErrorCode};

impl From<BookingError> for ApiError {
    fn from(e: BookingError) -> Self {
        match e {
            // The seed answers a booking for a festival it does not know as it does for a day
            // without tickets.
            BookingError::FestivalNotFound => ApiError::new(ErrorCode::TicketNotFound),
            BookingError::SaleNotOpen { in_secs, .. } => {
                ApiError::new(ErrorCode::SaleNotOpen).with_retry_after(in_secs)
            }
            BookingError::SaleClosed => ApiError::new(ErrorCode::SaleClosed),
            BookingError::AdmissionRequired => ApiError::new(ErrorCode::QueueAdmissionRequired),
            BookingError::AdmissionInvalid => ApiError::new(ErrorCode::QueueAdmissionInvalid),
            BookingError::AdmissionUsed => ApiError::new(ErrorCode::QueueAdmissionUsed),
            BookingError::Tickets(e) => crate::reservations::ticket_error(e),
            BookingError::Queue(e) => crate::queues::queue_error(e),
            BookingError::Catalog(e) => crate::festivals::catalog_error(e),
        }
    }
}

impl From<FestivalError> for ApiError {
    fn from(e: FestivalError) -> Self {
        match e {
            FestivalError::Catalog(e) => crate::festivals::catalog_error(e),
            FestivalError::Tickets(e) => crate::reservations::ticket_error(e),
            FestivalError::Queue(e) => crate::queues::queue_error(e),
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        match e {
            MembershipError::RoomNotFound(_) => ApiError::new(ErrorCode::ChatroomNotFound),
            MembershipError::NotJoined(_) => ApiError::new(ErrorCode::UserChatroomNotFound),
            MembershipError::Catalog(e) => crate::festivals::catalog_error(e),
            MembershipError::Database(e) => crate::app::unavailable("database", &e),
            MembershipError::Chat(e) => e.into(),
        }
    }
}

impl From<CheckInError> for ApiError {
    fn from(e: CheckInError) -> Self {
        match e {
            CheckInError::Code(_) | CheckInError::NoSuchTicket => {
                ApiError::new(ErrorCode::TicketCodeInvalid)
            }
            CheckInError::Cancelled => ApiError::new(ErrorCode::TicketCancelled),
            CheckInError::WrongDay(date) => ApiError::new(ErrorCode::TicketWrongDay)
                .with_details(serde_json::json!({ "festivalDate": date })),
            CheckInError::NotStaff => ApiError::new(ErrorCode::PermissionDenied),
            CheckInError::AlreadyCheckedIn(first, by) => {
                ApiError::new(ErrorCode::TicketAlreadyCheckedIn)
                    .with_details(crate::tickets::first_check_in(&first, by))
            }
            CheckInError::Tickets(e) => crate::reservations::ticket_error(e),
            CheckInError::Database(e) => ApiError::database(e),
        }
    }
}
