//! The router: every route at `/` and under `/api/`, and the middleware every request passes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use http::{HeaderName, HeaderValue, Method, Request, header};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::map_response_body::MapResponseBodyLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use cognito_auth::IdentityProvider;

use crate::auth::{AdminEmails, AttemptLimits};
use crate::config::HttpSettings;
use crate::db::Database;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// The engine handles and settings handlers draw on; each handler extracts only its piece.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The relational database.
    pub db: Database,
    /// `users` rows (the signed-in user's, read on every authenticated request).
    pub users: crate::auth::UserRows,
    /// Backends checked by `/readyz`.
    pub readiness: Readiness,
    /// The database's outage state, when it is a server that can go away (MySQL/MariaDB).
    pub database: Option<Arc<crate::outage::Dependency>>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// HTTP settings (limits, CORS).
    pub http: Arc<HttpSettings>,
    /// Cancelled when shutdown begins, so long-lived connections can say goodbye.
    pub shutdown: CancellationToken,
    /// The identity provider.
    pub auth: Arc<dyn IdentityProvider>,
    /// Attempt limits of the account routes.
    pub limits: Arc<AttemptLimits>,
    /// Proxies whose forwarding headers name the client.
    pub proxies: crate::client_ip::TrustedProxies,
    /// Who becomes an admin on confirmation.
    pub admins: AdminEmails,
    /// The festival catalog and its search cache.
    pub festivals: crate::festivals::Festivals,
    /// Ticket stock and reservations.
    pub tickets: Arc<dyn ticket_lock::TicketEngine>,
    /// Ticket defaults for new festivals.
    pub ticket_defaults: crate::config::TicketSettings,
    /// Waiting rooms in front of ticket sales.
    pub queues: crate::queues::Queues,
    /// Booking and cancelling, across the engines.
    pub desk: crate::workflows::BookingDesk,
    /// E-ticket codes, check-in and staff grants.
    pub gate: crate::workflows::Gate,
    /// Festival chat.
    pub chat: crate::chat::Chat,
    /// Devices, reminders and notifications.
    pub push: crate::push::Push,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API routes, without middleware, relative to `/` (they are mounted again under `/api`).
fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(crate::readiness::healthz))
        .route("/actuator/health", get(crate::readiness::actuator_health))
        .route("/readyz", get(crate::readiness::readyz))
        .route("/v3/api-docs", get(crate::openapi::api_docs))
        .route("/signup", post(crate::auth::signup))
        .route("/confirm-signup", post(crate::auth::confirm_signup))
        .route("/resend-confirmation-code", post(crate::auth::resend_code))
        .route("/forgot-password", post(crate::auth::forgot_password))
        .route("/reset-password", post(crate::auth::reset_password))
        .route("/login", post(crate::auth::login))
        .route("/signout", post(crate::auth::signout))
        .route("/verify-token", get(crate::auth::verify_token))
        .route("/refresh-token", post(crate::auth::refresh_token))
        .route("/.well-known/jwks.json", get(crate::auth::jwks))
        .route("/festivals", get(crate::festivals::list))
        .route("/festivals/create", post(crate::festivals::create))
        .route("/festivals/search", get(crate::festivals::search))
        .route(
            "/festivals/{festivalId}",
            get(crate::festivals::detail).patch(crate::festivals::update),
        )
        .route(
            "/reservations",
            post(crate::reservations::reserve).get(crate::reservations::list),
        )
        .route(
            "/reservations/{reservationId}",
            delete(crate::reservations::cancel),
        )
        .route("/me", get(crate::reservations::me))
        .route("/checkins", post(crate::tickets::check_in))
        .route("/checkins/sync", post(crate::tickets::sync))
        .route(
            "/checkins/festivals/{festivalId}/days/{date}",
            get(crate::tickets::day_list),
        )
        .route(
            "/admin/staff/{email}",
            put(crate::tickets::grant_staff).delete(crate::tickets::revoke_staff),
        )
        .route(
            "/admin/festivals/{festivalId}/report",
            get(crate::tickets::report::report),
        )
        .route("/notification/activate", post(crate::push::activate))
        .route("/notification/deactivate", post(crate::push::deactivate))
        .route(
            "/notification/vapid-public-key",
            get(crate::push::vapid_public_key),
        )
        .route("/notifications", get(crate::push::list))
        .route("/festivals/chatting/list", get(crate::chat::list))
        .route("/festivals/chatting/delete", delete(crate::chat::leave))
        .route(
            "/festivals/chatting/{chatRoomId}",
            get(crate::chat::history),
        )
        .route(
            "/festivals/chatting/{chatRoomId}/join",
            post(crate::chat::join),
        )
        .route("/ws-chat", get(crate::chat::websocket))
        .route(
            "/queues/{queue}/waiting-room/users/{email}",
            get(crate::queues::waiting_room),
        )
        .route(
            "/queues/{queue}/users/{email}/rank",
            get(crate::queues::rank),
        )
        .route(
            "/queues/{queue}/users/{email}/allowed",
            get(crate::queues::allowed),
        )
        .route(
            "/queues/{queue}/users/{email}/leave",
            delete(crate::queues::leave),
        )
        .route(
            "/queues/{queue}/users/{email}/leave-proceed",
            delete(crate::queues::leave_proceed),
        )
        .route("/queues/{queue}/events", get(crate::queues::events))
        .route(
            "/admin/queues/{queue}",
            get(crate::queues::stats)
                .put(crate::queues::set_policy)
                .delete(crate::queues::reset_policy),
        )
        .route("/admin/queues/{queue}/pause", post(crate::queues::pause))
        .route("/admin/queues/{queue}/resume", post(crate::queues::resume))
        .route("/admin/queues/{queue}/admit", post(crate::queues::admit))
}

/// The whole application for `state`.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The whole application with `extra` routes merged in (for embedding SomSom and for tests);
/// they get the same middleware and the same `/api` twin.
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    let http = state.http.clone();
    let mut routes = routes().merge(extra);
    if http.metrics_listen.is_none() {
        routes = routes.route("/metrics", get(crate::metrics::metrics));
    }
    if let Some(database) = &state.database {
        routes = routes.route_layer(from_fn_with_state(
            database.clone(),
            crate::outage::gate::database_gate,
        ));
    }
    let router = Router::new()
        .route("/", get(crate::web::index))
        .route("/sw.js", get(crate::web::service_worker))
        .route("/assets/{file}", get(crate::web::asset))
        .route("/swagger-ui", get(crate::web::swagger_ui_home))
        .route("/swagger-ui/", get(crate::web::swagger_ui_home))
        .route("/swagger-ui/{file}", get(crate::web::swagger_ui))
        .merge(routes.clone())
        .nest("/api", routes)
        .fallback(crate::error::not_found)
        // A bearer token, when present, must be valid on every route (as the seed's filter).
        .layer(from_fn_with_state(
            state.auth.clone(),
            crate::auth::check_bearer,
        ))
        // Inside the router, so the matched route template is known.
        .layer(from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(http.body_limit_bytes));

    let outer = ServiceBuilder::new()
        // Outermost: a connection counts as busy (no idle deadline) until its answer is sent.
        .layer(from_fn(crate::connections::track))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // The path only: query strings may carry personal data.
                    tracing::info_span!("request", method = %request.method(),
                        path = %request.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(cors(&http))
        .layer(from_fn(crate::error::json_errors))
        // The layers below answer with their own body types; json_errors needs axum's.
        .layer(MapResponseBodyLayer::new(axum::body::Body::new))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(http.request_timeout_secs),
        ));
    router.layer(outer).with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

/// Origins that are not valid header values.
pub fn invalid_cors_origins(http: &HttpSettings) -> Vec<String> {
    http.cors_origins
        .iter()
        .filter(|o| *o != "*" && HeaderValue::from_str(o).is_err())
        .cloned()
        .collect()
}

/// CORS from configuration: the listed origins with credentials; `*` allows any origin, without
/// credentials (browsers refuse the two together).
fn cors(http: &HttpSettings) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            HeaderName::from_static(crate::queues::ADMISSION_TOKEN),
        ])
        .max_age(Duration::from_secs(3600));
    if http.cors_origins.iter().any(|o| o == "*") {
        return base
            .allow_origin(AllowOrigin::any())
            .allow_headers(tower_http::cors::Any);
    }
    let origins: Vec<HeaderValue> = http
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    base.allow_origin(AllowOrigin::list(origins))
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true)
}

impl AppState {
    /// Whether a handler should treat the server as shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

/// A 503 for a backend that is not available right now.
pub fn unavailable(backend: &str, error: &(dyn std::error::Error + 'static)) -> ApiError {
    tracing::warn!(backend, error = %crate::error::Report(error), "backend unavailable");
    let answer = ApiError::new(ErrorCode::ServiceUnavailable).with_retry_after(1);
    if crate::outage::gate::is_database_outage(error) {
        answer.with_dependency(crate::outage::gate::DATABASE)
    } else {
        answer
    }
}
