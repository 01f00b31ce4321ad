//! Admin routes: a queue's statistics (with its drop: the pre-queue, the lottery's seed,
//! admissions issued and used), its policy, pause and resume, and admitting people by hand.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::{PolicyRequest, QueueStatsResponse, Queues, parse_queue};
use crate::auth::CurrentUser;
use crate::error::{ApiError, FieldIssue};
use crate::extract::{Json as JsonBody, Path, Query};
use crate::festivals::Festivals;

async fn stats_of(
    queues: &Queues,
    festivals: &Festivals,
    raw: &str,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    let (queue, festival) = parse_queue(raw)?;
    let festival = festivals.catalog.get(festival).await?;
    queues.forget(&queue).await;
    let stats = queues.engine.stats(&queue).await?;
    Ok(Json(QueueStatsResponse::new(
        &queue,
        &stats,
        festival.sale.queued,
    )))
}

/// `GET /admin/queues/{queue}`: the queue's numbers.
#[utoipa::path(get, path = "/admin/queues/{queue}", tag = "queues", security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}")),
    responses((status = 200, body = QueueStatsResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn stats(
    State(queues): State<Queues>,
    State(festivals): State<Festivals>,
    user: CurrentUser,
    Path(queue): Path<String>,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    user.require_admin()?;
    stats_of(&queues, &festivals, &queue).await
}

/// `PUT /admin/queues/{queue}`: sets the queue's policy.
#[utoipa::path(put, path = "/admin/queues/{queue}", tag = "queues", security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}")), request_body = PolicyRequest,
    responses((status = 200, body = QueueStatsResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn set_policy(
    State(queues): State<Queues>,
    State(festivals): State<Festivals>,
    user: CurrentUser,
    Path(queue): Path<String>,
    JsonBody(body): JsonBody<PolicyRequest>,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    user.require_admin()?;
    let (name, _) = parse_queue(&queue)?;
    let policy = body.apply(queues.defaults());
    queues.engine.configure(&name, Some(policy)).await?;
    stats_of(&queues, &festivals, &queue).await
}

/// `DELETE /admin/queues/{queue}`: back to the default policy.
#[utoipa::path(delete, path = "/admin/queues/{queue}", tag = "queues", security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}")),
    responses((status = 200, body = QueueStatsResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn reset_policy(
    State(queues): State<Queues>,
    State(festivals): State<Festivals>,
    user: CurrentUser,
    Path(queue): Path<String>,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    user.require_admin()?;
    let (name, _) = parse_queue(&queue)?;
    queues.engine.configure(&name, None).await?;
    stats_of(&queues, &festivals, &queue).await
}

async fn set_paused(
    queues: &Queues,
    festivals: &Festivals,
    user: &CurrentUser,
    queue: &str,
    paused: bool,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    user.require_admin()?;
    let (name, _) = parse_queue(queue)?;
    queues.engine.set_paused(&name, paused).await?;
    stats_of(queues, festivals, queue).await
}

/// `POST /admin/queues/{queue}/pause`: stops admitting (people can still join and see ranks).
#[utoipa::path(post, path = "/admin/queues/{queue}/pause", tag = "queues", security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}")),
    responses((status = 200, body = QueueStatsResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn pause(
    State(queues): State<Queues>,
    State(festivals): State<Festivals>,
    user: CurrentUser,
    Path(queue): Path<String>,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    set_paused(&queues, &festivals, &user, &queue, true).await
}

/// `POST /admin/queues/{queue}/resume`: admits again.
#[utoipa::path(post, path = "/admin/queues/{queue}/resume", tag = "queues", security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}")),
    responses((status = 200, body = QueueStatsResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn resume(
    State(queues): State<Queues>,
    State(festivals): State<Festivals>,
    user: CurrentUser,
    Path(queue): Path<String>,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    set_paused(&queues, &festivals, &user, &queue, false).await
}

/// How many to admit by hand.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AdmitQuery {
    /// 1 to 10,000.
    pub count: u32,
}

/// `POST /admin/queues/{queue}/admit?count=N`: admits the next N now (within the cap), paused
/// or not.
#[utoipa::path(post, path = "/admin/queues/{queue}/admit", tag = "queues", security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}"), AdmitQuery),
    responses((status = 200, body = QueueStatsResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn admit(
    State(queues): State<Queues>,
    State(festivals): State<Festivals>,
    user: CurrentUser,
    Path(queue): Path<String>,
    Query(query): Query<AdmitQuery>,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    user.require_admin()?;
    if !(1..=10_000).contains(&query.count) {
        return Err(ApiError::field(
            "count",
            FieldIssue::OutOfRange {
                min: 1,
                max: 10_000,
            },
        ));
    }
    let (name, _) = parse_queue(&queue)?;
    queues.engine.admit(&name, query.count).await?;
    stats_of(&queues, &festivals, &queue).await
}
