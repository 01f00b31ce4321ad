//! Request and response bodies, with the seed's field names.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use ticket_lock::Reservation;
use utoipa::{IntoParams, ToSchema};

use crate::festivals::FestivalPreview;
use crate::tickets::Ticket;
use crate::tickets::codes::TicketCodes;

/// `POST /reservations`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRequest {
    /// The festival.
    pub festival_id: Option<i64>,
    /// The day, `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date)]
    pub festival_date: Option<NaiveDate>,
    /// Tickets (default 1; at most the festival's maximum per reservation).
    pub quantity: Option<u32>,
}

/// The seed's `{reservationId, createdAt}`, with quantity and status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationResult {
    /// The reservation.
    pub reservation_id: i64,
    /// When it was booked (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// The festival.
    pub festival_id: i64,
    /// The day.
    #[schema(value_type = String, format = Date)]
    pub festival_date: NaiveDate,
    /// Tickets.
    pub quantity: u32,
    /// `ACTIVE` or `CANCELLED`.
    pub status: String,
    /// One e-ticket per ticket while the reservation is active (none once cancelled).
    pub tickets: Vec<Ticket>,
}

impl ReservationResult {
    /// The answer for `r`, its tickets coded with `codes`.
    pub fn new(r: &Reservation, codes: &TicketCodes) -> Self {
        Self {
            reservation_id: r.id.0,
            created_at: r.created_at,
            festival_id: r.festival.0,
            festival_date: r.date,
            quantity: r.quantity,
            status: r.status.as_str().to_owned(),
            tickets: Ticket::all_of(r, codes),
        }
    }
}

/// One reservation in a list (the seed's `ReservationPreViewDTO`, plus quantity and status).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationItem {
    /// The reservation.
    pub id: i64,
    /// The day it was booked (KST).
    #[schema(value_type = String, format = Date)]
    pub reservation_date: NaiveDate,
    /// The festival day.
    #[schema(value_type = String, format = Date)]
    pub festival_date: NaiveDate,
    /// The festival (`null` if it no longer exists).
    pub festival_info: Option<FestivalPreview>,
    /// Tickets.
    pub quantity: u32,
    /// `ACTIVE` or `CANCELLED`.
    pub status: String,
    /// One e-ticket per ticket while the reservation is active (none once cancelled).
    pub tickets: Vec<Ticket>,
}

impl ReservationItem {
    /// The item for `r` with its festival, its tickets coded with `codes`.
    pub fn new(r: &Reservation, festival: Option<FestivalPreview>, codes: &TicketCodes) -> Self {
        Self {
            id: r.id.0,
            reservation_date: r.created_at.with_timezone(&ticket_lock::kst()).date_naive(),
            festival_date: r.date,
            festival_info: festival,
            quantity: r.quantity,
            status: r.status.as_str().to_owned(),
            tickets: Ticket::all_of(r, codes),
        }
    }
}

/// The seed's `ReservationPreViewListDTO`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationList {
    /// Newest first.
    pub reservations: Vec<ReservationItem>,
    /// Whether another page follows.
    pub has_next: bool,
    /// The cursor of the next page.
    pub last_id: Option<i64>,
}

/// `GET /reservations` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ReservationQuery {
    /// The cursor: 0 (default) for the first page.
    pub last_id: Option<i64>,
    /// Page size, 1..=100 (default 10).
    pub limit: Option<u32>,
}

/// Who the user is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// `users.id`.
    pub id: i64,
    /// E-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `USER` or `ADMIN`.
    pub role: String,
}

/// `GET /me`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyPage {
    /// Who.
    pub profile: Profile,
    /// Active reservations from today on, soonest first.
    pub upcoming_reservations: Vec<ReservationItem>,
    /// Joined chat rooms with member and unread counts, most recently joined first.
    pub chat_rooms: Vec<crate::chat::ChatRoomItem>,
}
