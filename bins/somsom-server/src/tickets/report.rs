//! The organiser's report: per festival day, tickets sold (active), cancelled, checked in and
//! still to come, as JSON or CSV. Read fresh on every request, so an admin page polling it
//! follows the gate rush.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use http::{HeaderValue, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Path, Query};
use crate::workflows::Gate;

use super::store;

/// One day of the report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayReport {
    /// The day.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Tickets on sale in all.
    pub capacity: u32,
    /// Tickets in active reservations.
    pub sold: u32,
    /// Tickets in cancelled reservations.
    pub cancelled: u32,
    /// Tickets let in.
    pub checked_in: u32,
    /// Sold and not yet let in.
    pub to_come: u32,
}

/// `GET /admin/festivals/{festivalId}/report`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FestivalReport {
    /// The festival.
    pub festival_id: i64,
    /// Day by day.
    pub days: Vec<DayReport>,
}

/// Report parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// Builds the report of `festival`.
pub async fn build(gate: &Gate, festival: i64) -> Result<FestivalReport, ApiError> {
    let inventory = gate
        .tickets
        .inventory(ticket_lock::FestivalId(festival))
        .await?;
    let checked: std::collections::HashMap<NaiveDate, i64> = store::counts(&gate.db, festival)
        .await
        .map_err(ApiError::database)?
        .into_iter()
        .collect();
    let mut days = Vec::with_capacity(inventory.days.len());
    for day in &inventory.days {
        let mut cancelled = 0u32;
        let mut after = ticket_lock::ReservationId(0);
        loop {
            let page = gate
                .tickets
                .day_reservations(inventory.festival, day.date, after, 1_000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            cancelled += page
                .iter()
                .filter(|r| r.status == ticket_lock::Status::Cancelled)
                .map(|r| r.quantity)
                .sum::<u32>();
        }
        let sold = day.total - day.left;
        let checked_in = u32::try_from(checked.get(&day.date).copied().unwrap_or(0)).unwrap_or(0);
        days.push(DayReport {
            date: day.date,
            capacity: day.total,
            sold,
            cancelled,
            checked_in,
            to_come: sold.saturating_sub(checked_in),
        });
    }
    Ok(FestivalReport {
        festival_id: festival,
        days,
    })
}

/// The report as CSV (one header line, one line per day).
pub fn csv(report: &FestivalReport) -> String {
    let mut out = String::from("festival_id,date,capacity,sold,cancelled,checked_in,to_come\n");
    for d in &report.days {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            report.festival_id, d.date, d.capacity, d.sold, d.cancelled, d.checked_in, d.to_come
        ));
    }
    out
}

/// `GET /admin/festivals/{festivalId}/report`: per day, tickets sold, cancelled, checked in and
/// still to come (admins only); `?format=csv` for a spreadsheet.
#[utoipa::path(get, path = "/admin/festivals/{festivalId}/report", tag = "gate",
    params(("festivalId" = i64, Path), ReportQuery), security(("bearer" = [])),
    responses((status = 200, body = FestivalReport, content_type = "application/json"),
              (status = 200, body = String, content_type = "text/csv", description = "With format=csv"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn report(
    State(gate): State<Gate>,
    user: CurrentUser,
    Path(festival): Path<i64>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let report = build(&gate, festival).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("csv") => {
            let mut response = csv(&report).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            response.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!(
                    "attachment; filename=\"festival-{festival}-report.csv\""
                ))
                .map_err(ApiError::internal)?,
            );
            Ok(response)
        }
        Some(_) => Err(ApiError::field(
            "format",
            crate::error::FieldIssue::Other {
                ko: "json 또는 csv 여야 합니다.".into(),
                en: "json or csv".into(),
            },
        )),
    }
}
