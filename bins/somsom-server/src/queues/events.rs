//! `GET /queues/{queue}/events`: the caller's rank, pushed as Server-Sent Events whenever it
//! changes, then an `admitted` event with the admission token, so nobody has to poll.
//!
//! Events: `rank` (`QueueEvent` with the rank, the people ahead and an estimated wait), then
//! either `admitted` (with `admissionToken`) or `left` (rank -1: not waiting any more); the
//! stream ends after either. An open stream counts as a sign of life for idle timeouts.
//! Browsers' `EventSource` cannot send headers, so the access token may also come as the
//! `access_token` query parameter (RFC 6750 §2.3).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use cognito_auth::extract::Authenticated;
use futures::Stream;
use http::request::Parts;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use waiting_queue::QueueName;

use super::dto::QueueEvent;
use super::{Queues, parse_queue, queue_error};
use crate::app::AppState;
use crate::auth::{Caller, auth_error};
use crate::error::ApiError;
use crate::extract::{Path, Query};

/// Without changes, the rank is checked again this often (keeps the waiter alive for idle
/// timeouts, and catches a change a poll missed).
const RECHECK: Duration = Duration::from_secs(10);

/// The optional query token.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// An access token, for clients that cannot set the `Authorization` header.
    pub access_token: Option<String>,
}

/// `GET /queues/{queue}/events`.
#[utoipa::path(get, path = "/queues/{queue}/events", tag = "queues", security(("bearer" = [])),
    params(("queue" = String, Path, description = "festival{id}"), EventsQuery),
    responses((status = 200, description = "text/event-stream of QueueEvent: `rank`, then `admitted` or `left`", body = QueueEvent),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Query(query): Query<EventsQuery>,
    mut parts: Parts,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (queue, _) = parse_queue(&queue)?;
    if parts.extensions.get::<Authenticated>().is_none()
        && let Some(token) = query.access_token
    {
        let claims = state.auth.verify(&token).await.map_err(auth_error)?;
        parts.extensions.insert(Authenticated { claims, token });
    }
    let user = Caller::from_request_parts(&mut parts, &state).await?;
    let key = user.email;
    let queues = state.queues.clone();
    // Fail now, with a status, if the backend is down.
    queues
        .engine
        .rank(&queue, &key)
        .await
        .map_err(queue_error)?;
    let feed = Feed {
        changes: queues.watch.subscribe(&queue),
        queues,
        queue,
        user: key,
        last_rank: None,
        first: true,
        done: false,
        shutdown: state.shutdown.clone(),
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Feed {
    queues: Queues,
    queue: QueueName,
    user: String,
    changes: watch::Receiver<u64>,
    last_rank: Option<u64>,
    first: bool,
    done: bool,
    shutdown: CancellationToken,
}

impl Feed {
    /// The next event to send, or `None` to end the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.done {
                return None;
            }
            if !self.first {
                tokio::select! {
                    changed = self.changes.changed() => changed.ok()?,
                    () = tokio::time::sleep(RECHECK) => {}
                    () = self.shutdown.cancelled() => return None,
                }
            }
            self.first = false;
            match self.check().await {
                Ok(Some(event)) => return Some(event),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(queue = %self.queue, error = %e, "queue event stream ended");
                    return None;
                }
            }
        }
    }

    async fn check(&mut self) -> Result<Option<Event>, waiting_queue::QueueError> {
        let engine = &self.queues.engine;
        if let Some(rank) = engine.rank(&self.queue, &self.user).await? {
            if self.last_rank == Some(rank) {
                return Ok(None);
            }
            self.last_rank = Some(rank);
            let stats = self.queues.cached_stats(&self.queue).await.ok();
            let body = QueueEvent {
                allowed: false,
                rank: i64::try_from(rank).unwrap_or(i64::MAX),
                ahead: rank - 1,
                waiting: stats.as_ref().map_or(rank, |s| s.waiting.max(rank)),
                estimated_wait_secs: stats
                    .and_then(|s| s.estimated_wait(rank))
                    .map(|d| d.as_secs_f64()),
                admission_token: None,
                expires_at: None,
            };
            return Ok(Some(event("rank", &body)));
        }
        self.done = true;
        let body = match engine.admission(&self.queue, &self.user).await? {
            Some(admission) => {
                let token = self
                    .queues
                    .tokens
                    .issue(&self.queue, &self.user, admission.expires_at);
                return Ok(Some(event(
                    "admitted",
                    &QueueEvent {
                        allowed: true,
                        rank: -1,
                        ahead: 0,
                        waiting: 0,
                        estimated_wait_secs: None,
                        admission_token: Some(token),
                        expires_at: Some(admission.expires_at.to_rfc3339()),
                    },
                )));
            }
            None => QueueEvent {
                allowed: false,
                rank: -1,
                ahead: 0,
                waiting: 0,
                estimated_wait_secs: None,
                admission_token: None,
                expires_at: None,
            },
        };
        Ok(Some(event("left", &body)))
    }
}

fn event(name: &str, body: &QueueEvent) -> Event {
    Event::default()
        .event(name)
        .json_data(body)
        .expect("QueueEvent serialises")
}
