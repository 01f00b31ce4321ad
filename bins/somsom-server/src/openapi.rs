//! The OpenAPI 3 document, generated from the handlers and served at `/v3/api-docs` (the seed's
//! springdoc path). `docs/openapi.json` is a checked-in copy kept current by a test.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SomSom API",
        description = "Festival reservations: festivals, tickets, a fair waiting room, chat and \
                       reminders. Every route also answers under `/api`. Errors share one JSON body \
                       (`ErrorBody`) for every status.",
    ),
    paths(
        crate::readiness::healthz,
        crate::readiness::actuator_health,
        crate::readiness::readyz,
        crate::metrics::metrics,
        api_docs,
        crate::auth::signup,
        crate::auth::confirm_signup,
        crate::auth::resend_code,
        crate::auth::forgot_password,
        crate::auth::reset_password,
        crate::auth::login,
        crate::auth::signout,
        crate::auth::verify_token,
        crate::auth::refresh_token,
        crate::auth::jwks,
        crate::festivals::create,
        crate::festivals::update,
        crate::festivals::list,
        crate::festivals::detail,
        crate::festivals::search,
        crate::reservations::reserve,
        crate::reservations::list,
        crate::reservations::cancel,
        crate::reservations::me,
        crate::tickets::check_in,
        crate::tickets::sync,
        crate::tickets::day_list,
        crate::tickets::grant_staff,
        crate::tickets::revoke_staff,
        crate::tickets::report::report,
        crate::chat::join,
        crate::chat::history,
        crate::chat::list,
        crate::chat::leave,
        crate::queues::waiting_room,
        crate::queues::rank,
        crate::queues::allowed,
        crate::queues::leave,
        crate::queues::leave_proceed,
        crate::queues::events::events,
        crate::queues::admin::stats,
        crate::queues::admin::set_policy,
        crate::queues::admin::reset_policy,
        crate::queues::admin::pause,
        crate::queues::admin::resume,
        crate::queues::admin::admit,
        crate::push::activate,
        crate::push::deactivate,
        crate::push::vapid_public_key,
        crate::push::list,
    ),
    components(schemas(ErrorBody, ErrorCode)),
    modifiers(&BearerAuth, &CommonAnswers),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "auth", description = "Accounts, tokens and sessions"),
        (name = "festivals", description = "Festivals: create, list, detail and keyword search"),
        (name = "reservations", description = "Booking tickets, cancelling, and my page"),
        (name = "gate", description = "E-tickets at the gate: check-in by staff (once per ticket), offline gates, staff grants, the organiser's report"),
        (name = "chat", description = "Festival chat rooms; live messages over STOMP at /ws-chat"),
        (name = "queues", description = "Waiting rooms: join, rank, admission, events; admin statistics and controls"),
        (name = "notifications", description = "Devices for the day-before reminder, and the reminders delivered"),
    ),
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme (`Authorization: Bearer <access token>`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Adds to every operation what the middleware and the extractors can answer whatever its
/// handler does, so the document lists every status a client can get (checked by the fuzzer in
/// `tests/server/api_fuzz.rs`):
///
/// - 401 everywhere: a bearer token, when sent, must be valid on every route;
/// - 408 everywhere: the request timeout;
/// - 400, 413 and 415 where there is a body (malformed, too large, not JSON);
/// - 400 where there are parameters (a path or query value of the wrong type);
/// - 503 wherever the database or Redis is used (an outage answers at once).
struct CommonAnswers;

fn error_answer(why: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(why)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .build(),
    )
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let uses_backend = !crate::outage::NO_BACKEND_ROUTES.contains(&path.as_str());
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let body = operation.request_body.is_some();
                let params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let answers = &mut operation.responses.responses;
                let mut add = |status: &str, why: &str| {
                    answers
                        .entry(status.to_owned())
                        .or_insert_with(|| error_answer(why));
                };
                add("401", "The bearer token sent is not valid");
                add(
                    "408",
                    "The request took longer than the server's request timeout",
                );
                if body || params {
                    add("400", "The request is malformed");
                }
                if body {
                    add("413", "The body is larger than the server accepts");
                    add(
                        "415",
                        "The body is not of a content type this operation reads",
                    );
                }
                if uses_backend {
                    add(
                        "503",
                        "A service this operation needs is down or overloaded; try again after Retry-After",
                    );
                }
            }
        }
    }
}

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

static DOCUMENT: LazyLock<String> = LazyLock::new(document);

/// `GET /v3/api-docs`
#[utoipa::path(get, path = "/v3/api-docs", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3 document", content_type = "application/json")))]
pub async fn api_docs() -> Response {
    let mut response = DOCUMENT.as_str().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
