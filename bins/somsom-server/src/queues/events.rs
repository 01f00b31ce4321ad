//! `GET /queues/{queue}/events`: the caller's rank, pushed as Server-Sent Events whenever it
//! changes, then an `admitted` event with the admission token, so nobody has to poll.
//!
//! Events: `prequeue` (before the opening: `waitingForOpening`, `opensAt`, an estimated wait),
//! `rank` (`QueueEvent` with the rank, the people ahead and an estimated wait), `soldOut` (the
//! line is closed: `soldOut: true`; ranks follow again if tickets come back), then either
//! `admitted` (with `admissionToken`) or `left` (rank -1: not waiting any more); the stream ends
//! after either. An open stream counts as a sign of life for idle timeouts.
//! Browsers' `EventSource` cannot send headers, so the access token may also come as the
//! `access_token` query parameter (RFC 6750 §2.3).
//!
//! The same events reach a STOMP client of `/ws-chat` that subscribes to
//! `/user/queue/rank/festival{id}` ([`RankFeeds`]): one MESSAGE per event, its JSON body the
//! `QueueEvent` with an `event` field (`rank`, `admitted`, `left`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use cognito_auth::extract::Authenticated;
use futures::{Stream, StreamExt};
use http::request::Parts;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use waiting_queue::{Place, QueueName};

use super::dto::QueueEvent;
use super::{Queues, parse_queue};
use crate::app::AppState;
use crate::auth::Caller;
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
        let claims = state.auth.verify(&token).await?;
        parts.extensions.insert(Authenticated { claims, token });
    }
    let user = Caller::from_request_parts(&mut parts, &state).await?;
    let key = user.email;
    let queues = state.queues.clone();
    // Fail now, with a status, if the backend is down.
    queues.engine.place(&queue, &key).await?;
    let shutdown = state.shutdown.clone();
    let stream = Feed::new(queues, queue, key, state.shutdown.clone())
        .events()
        .map(|(name, body)| Ok(event(name, &body)))
        // A stream ended by the node's shutdown says so, so the page reconnects at once.
        .chain(
            futures::stream::once(async move {
                shutdown.is_cancelled().then(|| {
                    Ok(Event::default()
                        .event("reconnect")
                        .json_data(serde_json::json!({"reason": "server shutting down"}))
                        .expect("a JSON object serialises"))
                })
            })
            .filter_map(std::future::ready),
        );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// STOMP destinations `/user/queue/rank/festival{id}` on `/ws-chat`: the subscriber's own place
/// in that festival's waiting room, as the SSE stream gives it.
pub struct RankFeeds {
    queues: Queues,
    db: crate::db::Database,
    shutdown: CancellationToken,
}

/// The prefix of [`RankFeeds`]' destinations.
pub const RANK_DESTINATION: &str = "/user/queue/rank/";

impl std::fmt::Debug for RankFeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RankFeeds").finish_non_exhaustive()
    }
}

impl RankFeeds {
    /// Ranks from `queues`; members' e-mail addresses (their queue keys) from `db`.
    pub fn new(queues: Queues, db: crate::db::Database, shutdown: CancellationToken) -> Self {
        Self {
            queues,
            db,
            shutdown,
        }
    }
}

/// A STOMP body: the event's name beside its fields.
#[derive(serde::Serialize)]
struct Named<'a> {
    event: &'a str,
    #[serde(flatten)]
    body: &'a QueueEvent,
}

#[async_trait::async_trait]
impl chat_relay::Feeds for RankFeeds {
    async fn open(
        &self,
        member: &chat_relay::Member,
        destination: &str,
    ) -> Result<Option<chat_relay::FeedStream>, chat_relay::Refusal> {
        let Some(queue) = destination.strip_prefix(RANK_DESTINATION) else {
            return Ok(None);
        };
        let (queue, _) = parse_queue(queue).map_err(|_| {
            chat_relay::Refusal::new(format!("ranks are {RANK_DESTINATION}festival{{id}}"))
        })?;
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "rank feed not opened");
            chat_relay::Refusal::new("temporarily unavailable")
        };
        // The subscriber's own key, from their account: nobody can watch another's place.
        let user = crate::auth::users::by_id(&self.db, member.id.0)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| chat_relay::Refusal::new("unknown user"))?;
        let key = cognito_auth::normalize_email(&user.email);
        self.queues
            .engine
            .place(&queue, &key)
            .await
            .map_err(|e| unavailable(&e))?;
        let stream = Feed::new(self.queues.clone(), queue, key, self.shutdown.clone())
            .events()
            .map(|(event, body)| {
                let json = serde_json::to_vec(&Named { event, body: &body })
                    .expect("QueueEvent serialises");
                bytes::Bytes::from(json)
            });
        Ok(Some(stream.boxed()))
    }
}

struct Feed {
    queues: Queues,
    queue: QueueName,
    user: String,
    changes: watch::Receiver<u64>,
    /// The last event sent, to send only changes.
    last: Option<(&'static str, Option<u64>)>,
    first: bool,
    done: bool,
    shutdown: CancellationToken,
}

impl Feed {
    fn new(queues: Queues, queue: QueueName, user: String, shutdown: CancellationToken) -> Self {
        Self {
            changes: queues.watch.subscribe(&queue),
            queues,
            queue,
            user,
            last: None,
            first: true,
            done: false,
            shutdown,
        }
    }

    /// Each event, named, until the caller is admitted or leaves (or the server stops).
    fn events(self) -> impl Stream<Item = (&'static str, QueueEvent)> + Send + 'static {
        futures::stream::unfold(self, |mut feed| async move {
            let event = feed.next().await?;
            Some((event, feed))
        })
    }

    /// The next event to send, or `None` to end the stream.
    async fn next(&mut self) -> Option<(&'static str, QueueEvent)> {
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
                    tracing::warn!(queue = %self.queue, error = %crate::error::Report(&e), "queue event stream ended");
                    return None;
                }
            }
        }
    }

    async fn check(
        &mut self,
    ) -> Result<Option<(&'static str, QueueEvent)>, waiting_queue::QueueError> {
        let standing = self.queues.standing(&self.queue, &self.user, false).await?;
        let stats = &standing.stats;
        let quiet = QueueEvent {
            allowed: false,
            rank: -1,
            ahead: 0,
            waiting: stats.waiting,
            estimated_wait_secs: standing.estimated_wait_secs(),
            admission_token: None,
            expires_at: None,
            waiting_for_opening: false,
            opens_at: None,
            sold_out: stats.sold_out,
        };
        let (name, body) = match standing.place {
            Some(Place::Admitted(admission)) => {
                self.done = true;
                let token = self
                    .queues
                    .tokens
                    .issue(&self.queue, &self.user, &admission);
                let body = QueueEvent {
                    allowed: true,
                    waiting: 0,
                    estimated_wait_secs: None,
                    admission_token: Some(token),
                    expires_at: Some(admission.expires_at.to_rfc3339()),
                    ..quiet
                };
                return Ok(Some(("admitted", body)));
            }
            None => {
                self.done = true;
                return Ok(Some(("left", quiet)));
            }
            Some(Place::PreQueue { .. }) => (
                "prequeue",
                QueueEvent {
                    waiting_for_opening: true,
                    opens_at: standing.opens_at(),
                    waiting: stats.pre_queue,
                    ..quiet
                },
            ),
            Some(Place::Waiting { rank, .. }) => (
                if stats.sold_out { "soldOut" } else { "rank" },
                QueueEvent {
                    rank: i64::try_from(rank).unwrap_or(i64::MAX),
                    ahead: rank - 1,
                    waiting: stats.waiting.max(rank),
                    ..quiet
                },
            ),
        };
        let key = (name, standing.rank());
        if self.last == Some(key) {
            return Ok(None);
        }
        self.last = Some(key);
        Ok(Some((name, body)))
    }
}

fn event(name: &str, body: &QueueEvent) -> Event {
    Event::default()
        .event(name)
        .json_data(body)
        .expect("QueueEvent serialises")
}
