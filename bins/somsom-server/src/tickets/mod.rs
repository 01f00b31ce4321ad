//! Tickets at the gate: e-ticket codes ([`codes`]), check-in by staff (`POST /checkins`, one
//! success per ticket across every node), a day's ticket list for gates that scan offline and
//! the upload of their scans, staff grants, and the organiser's report per festival day.

pub mod codes;
pub mod report;
pub mod store;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use axum::Json;
use axum::extract::State;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldIssue};
use crate::extract::{Json as JsonBody, Path, Query};
use crate::workflows::checkin::{GATE_MAX, Scan, Scanner};
use crate::workflows::{CheckInError, Gate};
use codes::TicketCodes;
use store::CheckIn;

/// One e-ticket: its number in the reservation and the code its QR carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// 1, 2, … up to the reservation's quantity.
    pub number: u32,
    /// What the gate scans.
    pub code: String,
    /// The code as a QR code (an SVG document), on my page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
}

impl Ticket {
    /// Every ticket of `r` while it is active; none once cancelled.
    pub fn all_of(r: &ticket_lock::Reservation, codes: &TicketCodes) -> Vec<Self> {
        if r.status != ticket_lock::Status::Active {
            return Vec::new();
        }
        codes
            .tickets(r.id.0, r.festival.0, r.date, r.quantity)
            .into_iter()
            .map(|(number, code)| Self {
                number,
                code,
                qr_svg: None,
            })
            .collect()
    }

    /// With its QR code drawn.
    #[must_use]
    pub fn with_qr(mut self) -> Self {
        self.qr_svg = qr_svg(&self.code);
        self
    }
}

/// `code` as a QR code: an SVG document of black modules on white with the standard quiet zone,
/// at least 240 px square (scannable from a phone screen held to a gate's camera).
pub fn qr_svg(code: &str) -> Option<String> {
    use qrcode::render::svg;
    let qr =
        qrcode::QrCode::with_error_correction_level(code.as_bytes(), qrcode::EcLevel::M).ok()?;
    let document = qr
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build();
    // Inline in a page: the XML declaration has no place there.
    let start = document.find("<svg")?;
    Some(document[start..].to_owned())
}

/// A check-in as answered: the ticket, who let it in, where and when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckInRecord {
    /// The reservation.
    pub reservation_id: i64,
    /// The ticket's number.
    pub ticket: u32,
    /// The festival.
    pub festival_id: i64,
    /// The day.
    #[schema(value_type = String, format = Date)]
    pub festival_date: NaiveDate,
    /// The staff member's `users.id`.
    pub checked_in_by: i64,
    /// Their e-mail, when the answer is about someone else's scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_in_by_email: Option<String>,
    /// The gate.
    pub gate: String,
    /// When it was scanned.
    #[schema(value_type = String, format = DateTime)]
    pub checked_in_at: DateTime<Utc>,
}

impl From<&CheckIn> for CheckInRecord {
    fn from(c: &CheckIn) -> Self {
        Self {
            reservation_id: c.reservation_id,
            ticket: u32::try_from(c.ticket_no).unwrap_or_default(),
            festival_id: c.festival_id,
            festival_date: c.festival_date,
            checked_in_by: c.staff_user_id,
            checked_in_by_email: None,
            gate: c.gate.clone(),
            checked_in_at: DateTime::from_timestamp_millis(c.scanned_at).unwrap_or_default(),
        }
    }
}

/// The `details` of a `TICKET_ALREADY_CHECKED_IN` answer: the first check-in, and who made it.
pub fn first_check_in(first: &CheckIn, by: Option<String>) -> serde_json::Value {
    let record = CheckInRecord {
        checked_in_by_email: by,
        ..CheckInRecord::from(first)
    };
    serde_json::to_value(record).unwrap_or_default()
}

/// `POST /checkins`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckInRequest {
    /// The scanned or typed code.
    pub code: Option<String>,
    /// The gate's name (default `main`, at most 64 characters).
    pub gate: Option<String>,
    /// The day being let in (default today in Korea).
    #[schema(value_type = Option<String>, format = Date)]
    pub festival_date: Option<NaiveDate>,
}

fn scanner(user: &CurrentUser) -> Scanner {
    Scanner {
        user: user.user.id,
        role: user.role,
    }
}

fn today(gate: &Gate) -> NaiveDate {
    gate.clock
        .now()
        .with_timezone(&ticket_lock::kst())
        .date_naive()
}

fn gate_name(name: Option<String>) -> Result<String, ApiError> {
    let name = name.unwrap_or_else(|| "main".to_owned());
    if name.trim().is_empty()
        || name.chars().count() > GATE_MAX
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::field(
            "gate",
            FieldIssue::Other {
                ko: format!("1~{GATE_MAX}자의 이름이어야 합니다."),
                en: format!("1 to {GATE_MAX} printable characters"),
            },
        ));
    }
    Ok(name)
}

/// `POST /checkins`: lets one ticket in (staff of its festival, or an admin). A ticket checks in
/// once across every node; a second scan answers 409 with the first check-in in `details`.
#[utoipa::path(post, path = "/checkins", tag = "gate", request_body = CheckInRequest,
    security(("bearer" = [])),
    responses((status = 200, body = CheckInRecord, description = "Let in"),
              (status = 400, body = ErrorBody, description = "TICKET_CODE_INVALID: forged, altered or not a ticket"),
              (status = 403, body = ErrorBody, description = "Not staff of the ticket's festival"),
              (status = 409, body = ErrorBody, description = "TICKET_ALREADY_CHECKED_IN (details: the first check-in), TICKET_CANCELLED or TICKET_WRONG_DAY")))]
pub async fn check_in(
    State(gate): State<Gate>,
    user: CurrentUser,
    JsonBody(body): JsonBody<CheckInRequest>,
) -> Result<Json<CheckInRecord>, ApiError> {
    let code = body
        .code
        .ok_or_else(|| ApiError::field("code", FieldIssue::Required))?;
    let scan = Scan {
        code,
        gate: gate_name(body.gate)?,
        day: body.festival_date.unwrap_or_else(|| today(&gate)),
        scanned_at: None,
    };
    let admitted = gate.check_in(&scanner(&user), scan).await?;
    Ok(Json(CheckInRecord::from(&admitted.check_in)))
}

/// One ticket of a day's list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayTicket {
    /// What its QR carries.
    pub code: String,
    /// The reservation.
    pub reservation_id: i64,
    /// The ticket's number.
    pub number: u32,
    /// `VALID`, `CHECKED_IN` or `CANCELLED`.
    pub status: String,
}

/// `GET /checkins/festivals/{festivalId}/days/{date}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayList {
    /// The festival.
    pub festival_id: i64,
    /// The day.
    #[schema(value_type = String, format = Date)]
    pub festival_date: NaiveDate,
    /// Every ticket of the day, in reservation order.
    pub tickets: Vec<DayTicket>,
}

/// How many reservations one read of a day's list takes at a time.
const PAGE: u32 = 1_000;

/// `GET /checkins/festivals/{festivalId}/days/{date}`: every ticket of a day with its state, for
/// a gate with bad signal to download before the doors open and scan offline.
#[utoipa::path(get, path = "/checkins/festivals/{festivalId}/days/{date}", tag = "gate",
    params(("festivalId" = i64, Path), ("date" = String, Path, format = Date)),
    security(("bearer" = [])),
    responses((status = 200, body = DayList), (status = 403, body = ErrorBody)))]
pub async fn day_list(
    State(gate): State<Gate>,
    user: CurrentUser,
    Path((festival, date)): Path<(i64, NaiveDate)>,
) -> Result<Json<DayList>, ApiError> {
    if !gate
        .may_check_in(&scanner(&user), festival)
        .await
        .map_err(ApiError::database)?
    {
        return Err(ApiError::new(ErrorCode::PermissionDenied));
    }
    let checked: std::collections::HashSet<(i64, i32)> = store::of_day(&gate.db, festival, date)
        .await
        .map_err(ApiError::database)?
        .into_iter()
        .map(|c| (c.reservation_id, c.ticket_no))
        .collect();
    let mut tickets = Vec::new();
    let mut after = ticket_lock::ReservationId(0);
    loop {
        let page = gate
            .tickets
            .day_reservations(ticket_lock::FestivalId(festival), date, after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for r in &page {
            let cancelled = r.status == ticket_lock::Status::Cancelled;
            for (number, code) in gate.codes.tickets(r.id.0, festival, date, r.quantity) {
                let status = if cancelled {
                    "CANCELLED"
                } else if checked.contains(&(r.id.0, i32::try_from(number).unwrap_or(-1))) {
                    "CHECKED_IN"
                } else {
                    "VALID"
                };
                tickets.push(DayTicket {
                    code,
                    reservation_id: r.id.0,
                    number,
                    status: status.to_owned(),
                });
            }
        }
    }
    Ok(Json(DayList {
        festival_id: festival,
        festival_date: date,
        tickets,
    }))
}

/// One scan made offline.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflineScan {
    /// The code read.
    pub code: String,
    /// When it was read.
    #[schema(value_type = String, format = DateTime)]
    pub scanned_at: DateTime<Utc>,
}

/// `POST /checkins/sync`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// The gate that scanned.
    pub gate: Option<String>,
    /// The day being let in.
    #[schema(value_type = String, format = Date)]
    pub festival_date: NaiveDate,
    /// The scans, in the order they were made (at most 5,000).
    pub scans: Vec<OfflineScan>,
}

/// What became of one uploaded scan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// The code uploaded.
    pub code: String,
    /// `CHECKED_IN`, or the error code that refused it (`TICKET_ALREADY_CHECKED_IN`, …).
    pub result: String,
    /// For `TICKET_ALREADY_CHECKED_IN`: the check-in that came first (a conflict).
    pub first: Option<CheckInRecord>,
}

/// The most scans one upload may carry.
pub const SYNC_MAX: usize = 5_000;

/// `POST /checkins/sync`: uploads scans made offline. Each is checked in as if scanned then; the
/// first check-in of a ticket anywhere wins, and every later one comes back as a conflict with
/// the first.
#[utoipa::path(post, path = "/checkins/sync", tag = "gate", request_body = SyncRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SyncResult>, description = "One result per scan, in order")))]
pub async fn sync(
    State(gate): State<Gate>,
    user: CurrentUser,
    JsonBody(body): JsonBody<SyncRequest>,
) -> Result<Json<Vec<SyncResult>>, ApiError> {
    if body.scans.len() > SYNC_MAX {
        return Err(ApiError::field(
            "scans",
            FieldIssue::Other {
                ko: format!("한 번에 {SYNC_MAX}건까지 올릴 수 있습니다."),
                en: format!("at most {SYNC_MAX} per upload"),
            },
        ));
    }
    let name = gate_name(body.gate)?;
    let who = scanner(&user);
    let mut results = Vec::with_capacity(body.scans.len());
    for scan in body.scans {
        let outcome = gate
            .check_in(
                &who,
                Scan {
                    code: scan.code.clone(),
                    gate: name.clone(),
                    day: body.festival_date,
                    scanned_at: Some(scan.scanned_at),
                },
            )
            .await;
        let (result, first) = match outcome {
            Ok(_) => ("CHECKED_IN".to_owned(), None),
            Err(CheckInError::AlreadyCheckedIn(first, by)) => (
                "TICKET_ALREADY_CHECKED_IN".to_owned(),
                Some(CheckInRecord {
                    checked_in_by_email: by,
                    ..CheckInRecord::from(&*first)
                }),
            ),
            Err(CheckInError::Database(e)) => return Err(ApiError::database(e)),
            Err(CheckInError::Tickets(e)) if e.is_retryable() => {
                return Err(crate::reservations::ticket_error(e));
            }
            Err(other) => {
                let code = serde_json::to_value(ApiError::from(other).code())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (code, None)
            }
        };
        results.push(SyncResult {
            code: scan.code,
            result,
            first,
        });
    }
    Ok(Json(results))
}

/// `PUT` and `DELETE /admin/staff/{email}` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct StaffQuery {
    /// The festival; absent: every festival.
    pub festival_id: Option<i64>,
}

/// The answer of a grant or a revocation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaffGrant {
    /// The staff member.
    pub email: String,
    /// The festival (`null`: every festival).
    pub festival_id: Option<i64>,
    /// Whether this call changed anything.
    pub changed: bool,
}

async fn staff_user(state: &crate::AppState, email: &str) -> Result<i64, ApiError> {
    match crate::auth::users::by_email(&state.db, &cognito_auth::normalize_email(email)).await {
        Ok(Some(user)) => Ok(user.id),
        Ok(None) => Err(ApiError::new(ErrorCode::UserNotFound)),
        Err(e) => Err(ApiError::database(e)),
    }
}

/// `PUT /admin/staff/{email}`: lets the user check tickets in (admins only).
#[utoipa::path(put, path = "/admin/staff/{email}", tag = "gate", params(("email" = String, Path), StaffQuery),
    security(("bearer" = [])),
    responses((status = 200, body = StaffGrant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn grant_staff(
    State(state): State<crate::AppState>,
    user: CurrentUser,
    Path(email): Path<String>,
    Query(query): Query<StaffQuery>,
) -> Result<Json<StaffGrant>, ApiError> {
    change_staff(&state, &user, email, query, true).await
}

/// Grants (`grant`) or revokes check-in for the user with `email`, as the admin `user`.
async fn change_staff(
    state: &crate::AppState,
    user: &CurrentUser,
    email: String,
    query: StaffQuery,
    grant: bool,
) -> Result<Json<StaffGrant>, ApiError> {
    user.require_admin()?;
    let id = staff_user(state, &email).await?;
    let festival = query.festival_id.unwrap_or(store::EVERY_FESTIVAL);
    let changed = if grant {
        let now = state.desk.clock.now().timestamp_millis();
        store::grant(&state.db, id, festival, now).await
    } else {
        store::revoke(&state.db, id, festival).await
    }
    .map_err(ApiError::database)?;
    Ok(Json(StaffGrant {
        email,
        festival_id: query.festival_id,
        changed,
    }))
}

/// `DELETE /admin/staff/{email}`: takes a grant back (admins only).
#[utoipa::path(delete, path = "/admin/staff/{email}", tag = "gate", params(("email" = String, Path), StaffQuery),
    security(("bearer" = [])),
    responses((status = 200, body = StaffGrant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_staff(
    State(state): State<crate::AppState>,
    user: CurrentUser,
    Path(email): Path<String>,
    Query(query): Query<StaffQuery>,
) -> Result<Json<StaffGrant>, ApiError> {
    change_staff(&state, &user, email, query, false).await
}
