//! The whole application driven through its router with `tower::ServiceExt::oneshot`: no socket,
//! no file, no service (`Config::in_memory`), the clock a manual one. A booking from sign-up to
//! my page, and the error bodies on the way.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use cognito_auth::ManualClock;
use cognito_auth::sender::MemorySender;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use somsom_server::{Config, Overrides, build_with};
use tower::ServiceExt;

struct App {
    router: Router,
    codes: Arc<MemorySender>,
    state: somsom_server::AppState,
}

async fn app() -> App {
    let codes = Arc::new(MemorySender::new());
    let app = build_with(
        Config::in_memory(),
        Overrides {
            code_sender: Some(codes.clone()),
            clock: Some(Arc::new(ManualClock::starting_now())),
            ..Overrides::default()
        },
    )
    .await
    .unwrap();
    App {
        router: app.router(),
        codes,
        state: app.state().clone(),
    }
}

impl App {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn account(&self, email: &str) -> String {
        let credentials = json!({"email": email, "password": "Festival1!", "name": "솜솜"});
        let (status, body) = self
            .call(Method::POST, "/signup", None, Some(credentials.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let code = self.codes.last_code(email).unwrap();
        let confirm = json!({"email": email, "name": "솜솜", "code": code});
        let (status, body) = self
            .call(Method::POST, "/confirm-signup", None, Some(confirm))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .call(Method::POST, "/login", None, Some(credentials))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["accessToken"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn a_booking_from_sign_up_to_my_page_without_a_socket_or_a_file() {
    let app = app().await;
    let admin = app.account("admin@example.com").await;
    somsom_server::workflows::accounts::grant_admin(
        app.state.auth.as_ref(),
        &app.state.db,
        "admin@example.com",
    )
    .await
    .unwrap();
    let (_, login) = app
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({"email": "admin@example.com", "password": "Festival1!"})),
        )
        .await;
    let admin_token = login["accessToken"].as_str().unwrap();
    assert_ne!(admin_token, admin);

    let festival = json!({"title": "부산 바다축제", "description": "해운대", "startDate": "2099-07-01",
        "endDate": "2099-07-02", "ticketsPerDay": 5, "saleQueued": false});
    let (status, created) = app
        .call(
            Method::POST,
            "/festivals/create",
            Some(admin_token),
            Some(festival),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();

    let user = app.account("fan@example.com").await;
    let booking = json!({"festivalId": id, "festivalDate": "2099-07-01", "quantity": 2});
    let (status, booked) = app
        .call(Method::POST, "/reservations", Some(&user), Some(booking))
        .await;
    assert_eq!(status, StatusCode::OK, "{booked}");

    let (status, detail) = app
        .call(Method::GET, &format!("/api/festivals/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let first_day = &detail["days"][0];
    assert_eq!(
        (&first_day["date"], &first_day["leftTickets"]),
        (&json!("2099-07-01"), &json!(3))
    );

    let (status, me) = app.call(Method::GET, "/me", Some(&user), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["profile"]["email"], "fan@example.com");
    let upcoming = me["upcomingReservations"].as_array().unwrap();
    assert_eq!(upcoming.len(), 1, "{me}");
    assert_eq!(upcoming[0]["quantity"], 2);
}

#[tokio::test]
async fn refusals_carry_the_json_error_body_through_the_whole_middleware_stack() {
    let app = app().await;
    let (status, body) = app.call(Method::GET, "/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["code"].is_string(), "{body}");
    let (status, body) = app
        .call(Method::GET, "/festivals/search?keyword=", None, None)
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["code"].is_string(), "{body}");
    let (status, body) = app.call(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["code"].is_string(), "{body}");
    let (status, _) = app
        .call(Method::GET, "/festivals/not-a-number", None, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_database_that_went_away_answers_503_with_retry_after_not_500() {
    let app = app().await;
    let user = app.account("fan@example.com").await;
    app.state.db.close().await;
    let request = Request::builder()
        .uri("/festivals/chatting/list")
        .header(header::AUTHORIZATION, format!("Bearer {user}"))
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
}
