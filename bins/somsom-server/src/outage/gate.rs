//! The database's gate. The database sits under almost every route, so rather than wrapping each
//! engine it is guarded where requests enter: while it is known to be down, a request for a
//! route that needs it gets 503 with `Retry-After` at once, and a request that found it failing
//! (an answer carrying [`ApiError::dependency`] `"database"`) marks it down for the others.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Dependency, KnownDown, NO_BACKEND_ROUTES};
use crate::error::{ApiError, ErrorCode};

/// The name the database's [`Dependency`] and its errors carry.
pub const DATABASE: &str = "database";

/// Whether `error`, or a cause under it, says the SQL database could not be reached (rather than
/// refusing the statement: a constraint, a deadlock). A pool that had no connection free in
/// time is not an outage but a rush; the watch's probe, on a connection of its own, tells.
pub fn is_database_outage(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(sql) = e.downcast_ref::<sqlx::Error>() {
            return matches!(
                sql,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            );
        }
        cause = e.source();
    }
    false
}

/// Route middleware (needs the matched route): see the [module docs](self).
pub async fn database_gate(
    State(database): State<Arc<Dependency>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().strip_prefix("/api").unwrap_or(p.as_str()));
    let needs_database = route.is_some_and(|r| !NO_BACKEND_ROUTES.contains(&r));
    if needs_database && !database.is_up() {
        return ApiError::new(ErrorCode::ServiceUnavailable)
            .with_retry_after(1)
            .into_response();
    }
    let response = next.run(request).await;
    if response
        .extensions()
        .get::<ApiError>()
        .is_some_and(|e| e.dependency() == Some(DATABASE))
    {
        database.failed(&KnownDown(DATABASE));
    }
    response
}
