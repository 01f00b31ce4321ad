//! Reservations: book (with an `Idempotency-Key`), list, cancel, and the signed-in user's page.

mod dto;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderMap, HeaderValue};
use ticket_lock::{TicketEngine, TicketError, Window};

use crate::workflows::BookingRequest;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorCode, FieldIssue};
use crate::extract::{Json as JsonBody, Path, Query};
use crate::festivals::{FestivalPreview, Festivals, catalog_error};

pub use dto::{
    MyPage, Profile, ReservationItem, ReservationList, ReservationQuery, ReservationRequest,
    ReservationResult,
};

/// The header that makes a booking safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        ticket_error(e)
    }
}

/// Maps ticket errors onto the API's codes.
pub fn ticket_error(e: TicketError) -> ApiError {
    match e {
        TicketError::NotFound => ApiError::new(ErrorCode::TicketNotFound),
        TicketError::SoldOut { .. } => ApiError::new(ErrorCode::TicketSoldOut),
        TicketError::LimitExceeded { limit, held } => ApiError::new(ErrorCode::TicketLimitExceeded)
            .with_field(
                "quantity",
                FieldIssue::Other {
                    ko: format!("하루 최대 {limit}장까지 예매할 수 있습니다 (현재 {held}장)."),
                    en: format!("at most {limit} tickets a day; {held} held"),
                },
            ),
        TicketError::ReservationNotFound => ApiError::new(ErrorCode::ReservationNotFound),
        TicketError::AlreadyProcessed => ApiError::new(ErrorCode::ReservationAlreadyCancelled),
        TicketError::KeyReused => ApiError::new(ErrorCode::IdempotencyKeyReused),
        TicketError::DayClosed => ApiError::new(ErrorCode::FestivalDayClosed),
        TicketError::Invalid { field, reason } => ApiError::field(
            field,
            FieldIssue::Other {
                ko: format!("올바르지 않은 값입니다 ({reason})."),
                en: reason,
            },
        ),
        other => crate::app::unavailable("tickets", &other),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                ApiError::field("Idempotency-Key", FieldIssue::Malformed("not ASCII".into()))
            })
        })
        .transpose()
}

/// `POST /reservations`: books `quantity` (default 1) tickets for one festival day.
#[utoipa::path(post, path = "/reservations", tag = "reservations", request_body = ReservationRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key book once"),
           ("Admission-Token" = Option<String>, Header, description = "From the festival's waiting room; required unless its sale is not queued; used once")),
    responses((status = 200, body = ReservationResult), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn reserve(
    State(desk): State<crate::workflows::BookingDesk>,
    State(gate): State<crate::workflows::Gate>,
    user: CurrentUser,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ReservationRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (Some(festival), Some(date)) = (body.festival_id, body.festival_date) else {
        let mut error = ApiError::new(ErrorCode::BadRequest);
        if body.festival_id.is_none() {
            error = error.with_field("festivalId", FieldIssue::Required);
        }
        if body.festival_date.is_none() {
            error = error.with_field("festivalDate", FieldIssue::Required);
        }
        return Err(error);
    };
    let booked = desk
        .book(BookingRequest {
            user: user.user.id,
            email: cognito_auth::normalize_email(&user.user.email),
            festival,
            date,
            quantity: body.quantity.unwrap_or(1),
            idempotency_key: idempotency_key(&headers)?,
            admission_token: crate::queues::admission_token(&headers).map(str::to_owned),
        })
        .await?;
    let mut response =
        Json(ReservationResult::new(&booked.reservation, &gate.codes)).into_response();
    if booked.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /reservations`: the caller's reservations, newest first.
#[utoipa::path(get, path = "/reservations", tag = "reservations", params(ReservationQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ReservationList), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(tickets): State<Arc<dyn TicketEngine>>,
    State(festivals): State<Festivals>,
    State(gate): State<crate::workflows::Gate>,
    user: CurrentUser,
    Query(query): Query<ReservationQuery>,
) -> Result<Json<ReservationList>, ApiError> {
    let window = Window::new(query.last_id.unwrap_or(0), query.limit.unwrap_or(10))?;
    let page = tickets
        .reservations(ticket_lock::UserId(user.user.id), window)
        .await?;
    let items = with_festivals(&festivals, &page.reservations, &gate.codes).await?;
    Ok(Json(ReservationList {
        reservations: items,
        has_next: page.has_next,
        last_id: page.last_id.map(i64::from),
    }))
}

/// Each reservation with its festival's preview (one catalog read per distinct festival).
async fn with_festivals(
    festivals: &Festivals,
    reservations: &[ticket_lock::Reservation],
    codes: &crate::tickets::codes::TicketCodes,
) -> Result<Vec<ReservationItem>, ApiError> {
    let mut previews: HashMap<i64, Option<FestivalPreview>> = HashMap::new();
    for r in reservations {
        if previews.contains_key(&r.festival.0) {
            continue;
        }
        let preview = match festivals.catalog.get(r.festival.0).await {
            Ok(f) => Some(FestivalPreview::new(&f, festivals.clock.now())),
            Err(festival_catalog::CatalogError::NotFound(_)) => None,
            Err(e) => return Err(catalog_error(e)),
        };
        previews.insert(r.festival.0, preview);
    }
    Ok(reservations
        .iter()
        .map(|r| ReservationItem::new(r, previews.get(&r.festival.0).cloned().flatten(), codes))
        .collect())
}

/// `DELETE /reservations/{reservationId}`: cancels the caller's reservation.
#[utoipa::path(delete, path = "/reservations/{reservationId}", tag = "reservations",
    params(("reservationId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = ReservationResult), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn cancel(
    State(desk): State<crate::workflows::BookingDesk>,
    State(gate): State<crate::workflows::Gate>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> Result<Json<ReservationResult>, ApiError> {
    let cancelled = desk
        .cancel(user.user.id, ticket_lock::ReservationId(id))
        .await?;
    Ok(Json(ReservationResult::new(&cancelled, &gate.codes)))
}

/// `GET /me`: the signed-in user's profile, upcoming reservations and chat rooms.
#[utoipa::path(get, path = "/me", tag = "reservations", security(("bearer" = [])),
    responses((status = 200, body = MyPage), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(
    State(tickets): State<Arc<dyn TicketEngine>>,
    State(festivals): State<Festivals>,
    State(gate): State<crate::workflows::Gate>,
    State(db): State<crate::db::Database>,
    State(chat): State<crate::chat::Chat>,
    user: CurrentUser,
) -> Result<Json<MyPage>, ApiError> {
    let today = festivals
        .clock
        .now()
        .with_timezone(&ticket_lock::kst())
        .date_naive();
    // Upcoming: active, from today on; the newest 100 bookings are scanned.
    let page = tickets
        .reservations(ticket_lock::UserId(user.user.id), Window::new(0, 100)?)
        .await?;
    let mut upcoming: Vec<_> = page
        .reservations
        .into_iter()
        .filter(|r| r.status == ticket_lock::Status::Active && r.date >= today)
        .collect();
    upcoming.sort_by_key(|r| (r.date, r.id));
    let mut upcoming = with_festivals(&festivals, &upcoming, &gate.codes).await?;
    // My page shows each upcoming ticket as a QR code.
    for item in &mut upcoming {
        item.tickets = std::mem::take(&mut item.tickets)
            .into_iter()
            .map(crate::tickets::Ticket::with_qr)
            .collect();
    }
    let chat_rooms = crate::chat::rooms_of(&db, &festivals, &chat, user.user.id).await?;
    Ok(Json(MyPage {
        profile: Profile {
            id: user.user.id,
            email: user.user.email.clone(),
            name: user.user.name.clone(),
            role: user.role.as_str().to_owned(),
        },
        upcoming_reservations: upcoming,
        chat_rooms,
    }))
}
