//! Waiting rooms: the seed's five queue routes (for the caller's own e-mail only), an event
//! stream of rank changes, admin statistics and controls, and the admission check of bookings.
//!
//! A festival's queue is named `festival{id}`, as the seed's front end named it. A user's place is
//! keyed by their (normalised) e-mail, as the seed's was.

pub mod admin;
pub(crate) mod build;
mod dto;
pub mod events;
pub mod sold_out;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cognito_auth::Clock;
use http::{HeaderMap, HeaderValue};
use waiting_queue::watch::QueueWatch;
use waiting_queue::{
    Admission, AdmissionTokens, Place, QueueError, QueueName, QueueStats, WaitingQueue,
};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode, FieldIssue};
use crate::extract::Path;
use crate::festivals::Festivals;

pub use admin::{admit, pause, reset_policy, resume, set_policy, stats};
pub use dto::{
    AllowedResponse, PolicyRequest, QueueStatsResponse, RankResponse, WaitingRoomResponse,
};
pub use events::events;

/// The response header that carries an admission token, and the request header that must carry
/// it back on `POST /reservations` while the festival's sale is queued.
pub const ADMISSION_TOKEN: &str = "admission-token";

/// How long a queue's statistics are reused by one node.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// The waiting-room engine and what the server adds around it.
#[derive(Clone)]
pub struct Queues {
    engine: Arc<dyn WaitingQueue>,
    tokens: AdmissionTokens,
    watch: Arc<QueueWatch>,
    clock: Arc<dyn Clock>,
    defaults: waiting_queue::Policy,
    stats: moka::future::Cache<QueueName, Arc<QueueStats>>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// Where a user stands in a queue, with the queue's numbers: what every answer about one's
/// place (the waiting room, the rank, the event streams) is made from.
#[derive(Debug, Clone)]
pub struct Standing {
    /// Their place, if any.
    pub place: Option<Place>,
    /// The queue's numbers (at most a second old).
    pub stats: Arc<QueueStats>,
    /// When this was read.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Standing {
    /// Expected seconds until admission: for a rank, by the admission rate; in the pre-queue,
    /// the time to the opening and then the wait of someone halfway down the lottery's order.
    pub fn estimated_wait_secs(&self) -> Option<f64> {
        match self.place? {
            Place::Waiting { rank, .. } => self.stats.estimated_wait(rank).map(|d| d.as_secs_f64()),
            Place::PreQueue { opens_at, .. } => {
                let until = (opens_at - self.now).num_milliseconds().max(0) as f64 / 1000.0;
                let middle = self.stats.pre_queue / 2 + 1;
                self.stats
                    .estimated_wait(middle)
                    .map(|d| until + d.as_secs_f64())
            }
            Place::Admitted(_) => None,
        }
    }

    /// The rank while waiting.
    pub fn rank(&self) -> Option<u64> {
        match self.place? {
            Place::Waiting { rank, .. } => Some(rank),
            _ => None,
        }
    }

    /// When the sale opens, while in the pre-queue.
    pub fn opens_at(&self) -> Option<String> {
        match self.place? {
            Place::PreQueue { opens_at, .. } => Some(opens_at.to_rfc3339()),
            _ => None,
        }
    }
}

impl Queues {
    /// Wraps `engine` (whose default policy is `defaults`); rank feeds poll it every `watch_poll`.
    pub fn new(
        engine: Arc<dyn WaitingQueue>,
        tokens: AdmissionTokens,
        defaults: waiting_queue::Policy,
        watch_poll: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            watch: Arc::new(QueueWatch::new(engine.clone(), watch_poll)),
            engine,
            tokens,
            clock,
            defaults,
            stats: short_lived(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<dyn WaitingQueue> {
        &self.engine
    }

    /// The admission tokens.
    pub fn tokens(&self) -> &AdmissionTokens {
        &self.tokens
    }

    /// Stops the rank feeds' pollers (at shutdown).
    pub async fn shutdown(&self) {
        self.watch.shutdown().await;
    }

    /// `user`'s standing in `queue`, joining first when `join` (a sold-out queue refuses new
    /// joins: [`QueueError::SoldOut`]).
    pub async fn standing(
        &self,
        queue: &QueueName,
        user: &str,
        join: bool,
    ) -> Result<Standing, QueueError> {
        let place = if join {
            Some(self.engine.join(queue, user).await?)
        } else {
            self.engine.place(queue, user).await?
        };
        let stats = self.cached_stats(queue).await?;
        Ok(Standing {
            place,
            stats,
            now: self.clock.now(),
        })
    }

    async fn cached_stats(&self, queue: &QueueName) -> Result<Arc<QueueStats>, QueueError> {
        let engine = self.engine.clone();
        self.stats
            .try_get_with(queue.clone(), async move {
                engine.stats(queue).await.map(Arc::new)
            })
            .await
            .map_err(|e| match &*e {
                QueueError::SoldOut => QueueError::SoldOut,
                _ => QueueError::unavailable("waiting queue", e.clone()),
            })
    }

    fn token_header(&self, queue: &QueueName, user: &str, admission: &Admission) -> HeaderValue {
        let token = self.tokens.issue(queue, user, admission);
        HeaderValue::from_str(&token).expect("tokens are base64url and dots")
    }

    /// Forgets what this node cached about `queue` (after an admin changed it here).
    async fn forget(&self, queue: &QueueName) {
        self.stats.invalidate(queue).await;
    }

    /// The policy new queues get.
    pub fn defaults(&self) -> waiting_queue::Policy {
        self.defaults
    }
}

fn short_lived<V: Clone + Send + Sync + 'static>() -> moka::future::Cache<QueueName, V> {
    moka::future::Cache::builder()
        .time_to_live(CACHE_FOR)
        .max_capacity(100_000)
        .build()
}

/// The queue of a festival.
pub fn festival_queue(festival: i64) -> QueueName {
    QueueName::new(format!("festival{festival}")).expect("a valid queue name")
}

/// Reads a `festival{id}` queue name from a path.
fn parse_queue(raw: &str) -> Result<(QueueName, i64), ApiError> {
    let malformed = || {
        ApiError::field(
            "queue",
            FieldIssue::Malformed("festival{id}, e.g. festival15".into()),
        )
    };
    let id: i64 = raw
        .strip_prefix("festival")
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .filter(|id| *id > 0)
        .ok_or_else(malformed)?;
    Ok((festival_queue(id), id))
}

/// The caller's queue key, if `email` is the caller's own address (403 otherwise): nobody can
/// take, read or give up somebody else's place.
fn own_key(user: &Caller, email: &str) -> Result<String, ApiError> {
    let key = cognito_auth::normalize_email(email);
    if key == user.email {
        Ok(key)
    } else {
        Err(ApiError::new(ErrorCode::PermissionDenied))
    }
}

/// The queue, its festival and the caller's key, from the seed's `{queue}` and `{email}`.
fn own_place(
    user: &Caller,
    queue: &str,
    email: &str,
) -> Result<(QueueName, i64, String), ApiError> {
    let (queue, festival) = parse_queue(queue)?;
    Ok((queue, festival, own_key(user, email)?))
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        queue_error(e)
    }
}

pub(crate) fn queue_error(e: QueueError) -> ApiError {
    queue_error_ref(&e)
}

fn queue_error_ref(e: &QueueError) -> ApiError {
    match e {
        QueueError::Invalid { field, reason } => ApiError::field(
            *field,
            FieldIssue::Other {
                ko: format!("올바르지 않은 값입니다 ({reason})."),
                en: reason.clone(),
            },
        ),
        QueueError::SoldOut => ApiError::new(ErrorCode::QueueSoldOut),
        other => crate::app::unavailable("waiting queue", other),
    }
}

fn with_token(body: impl IntoResponse, token: Option<HeaderValue>) -> Response {
    let mut response = body.into_response();
    if let Some(token) = token {
        response.headers_mut().insert(ADMISSION_TOKEN, token);
    }
    response
}

/// `GET /queues/{queue}/waiting-room/users/{email}`: joins the festival's waiting room (or
/// tells where the caller already is). Admitted callers get an `Admission-Token` header.
#[utoipa::path(get, path = "/queues/{queue}/waiting-room/users/{email}", tag = "queues",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}"), ("email" = String, Path, description = "The caller's own e-mail")),
    responses((status = 200, body = WaitingRoomResponse, headers(("admission-token" = String, description = "When allowed"))),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn waiting_room(
    State(queues): State<Queues>,
    State(festivals): State<Festivals>,
    user: Caller,
    Path((queue, email)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (queue, festival, key) = own_place(&user, &queue, &email)?;
    // Only real festivals get queues: nobody can make the server hold arbitrary ones.
    let festival = festivals.catalog.get(festival).await?;
    if festival.sale.state(queues.clock.now()) == festival_catalog::SaleState::Closed {
        return Err(ApiError::new(ErrorCode::SaleClosed));
    }
    let standing = queues.standing(&queue, &key, true).await?;
    let token = match standing.place {
        Some(Place::Admitted(admission)) => Some(queues.token_header(&queue, &key, &admission)),
        _ => None,
    };
    Ok(with_token(
        Json(WaitingRoomResponse {
            allowed: token.is_some(),
            rank: standing.rank(),
            waiting_for_opening: matches!(standing.place, Some(Place::PreQueue { .. })),
            opens_at: standing.opens_at(),
            sold_out: standing.stats.sold_out,
            estimated_wait_secs: standing.estimated_wait_secs(),
        }),
        token,
    ))
}

/// `GET /queues/{queue}/users/{email}/rank`: the caller's 1-based rank, or -1 if not waiting.
#[utoipa::path(get, path = "/queues/{queue}/users/{email}/rank", tag = "queues",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}"), ("email" = String, Path, description = "The caller's own e-mail")),
    responses((status = 200, body = RankResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn rank(
    State(queues): State<Queues>,
    user: Caller,
    Path((queue, email)): Path<(String, String)>,
) -> Result<Json<RankResponse>, ApiError> {
    let (queue, _, key) = own_place(&user, &queue, &email)?;
    let standing = queues.standing(&queue, &key, false).await?;
    Ok(Json(RankResponse {
        rank: standing
            .rank()
            .map_or(-1, |r| i64::try_from(r).unwrap_or(i64::MAX)),
        waiting_for_opening: matches!(standing.place, Some(Place::PreQueue { .. })),
        opens_at: standing.opens_at(),
        sold_out: standing.stats.sold_out,
        estimated_wait_secs: standing.estimated_wait_secs(),
    }))
}

/// `GET /queues/{queue}/users/{email}/allowed`: whether the caller is admitted (with an
/// `Admission-Token` header when so).
#[utoipa::path(get, path = "/queues/{queue}/users/{email}/allowed", tag = "queues",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}"), ("email" = String, Path, description = "The caller's own e-mail")),
    responses((status = 200, body = AllowedResponse, headers(("admission-token" = String, description = "When allowed"))),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub async fn allowed(
    State(queues): State<Queues>,
    user: Caller,
    Path((queue, email)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (queue, _, key) = own_place(&user, &queue, &email)?;
    let admission = queues.engine.admission(&queue, &key).await?;
    let token = admission.map(|a| queues.token_header(&queue, &key, &a));
    Ok(with_token(
        Json(AllowedResponse {
            allowed: admission.is_some(),
        }),
        token,
    ))
}

/// `DELETE /queues/{queue}/users/{email}/leave`: leaves the line.
#[utoipa::path(delete, path = "/queues/{queue}/users/{email}/leave", tag = "queues",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}"), ("email" = String, Path, description = "The caller's own e-mail")),
    responses((status = 200, description = "Left (or was not waiting)"), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn leave(
    State(queues): State<Queues>,
    user: Caller,
    Path((queue, email)): Path<(String, String)>,
) -> Result<(), ApiError> {
    let (queue, _, key) = own_place(&user, &queue, &email)?;
    queues.engine.leave(&queue, &key).await?;
    Ok(())
}

/// `DELETE /queues/{queue}/users/{email}/leave-proceed`: ends the caller's admission (done, or
/// giving the turn away); entering again means queueing from the back.
#[utoipa::path(delete, path = "/queues/{queue}/users/{email}/leave-proceed", tag = "queues",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}"), ("email" = String, Path, description = "The caller's own e-mail")),
    responses((status = 200, description = "Admission ended (or there was none)"), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn leave_proceed(
    State(queues): State<Queues>,
    user: Caller,
    Path((queue, email)): Path<(String, String)>,
) -> Result<(), ApiError> {
    let (queue, _, key) = own_place(&user, &queue, &email)?;
    queues.engine.finish(&queue, &key).await?;
    Ok(())
}

/// The admission token a booking carries, if any.
pub fn admission_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(ADMISSION_TOKEN).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_festival_ids() {
        assert_eq!(parse_queue("festival15").unwrap().1, 15);
        for bad in [
            "festival",
            "festival0",
            "festival-1",
            "festival1a",
            "queue1",
            "festival99999999999999999999",
        ] {
            assert!(parse_queue(bad).is_err(), "{bad}");
        }
    }
}
