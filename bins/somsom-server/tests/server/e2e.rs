//! End to end over a real socket: the server built from configuration on port 0, then health,
//! readiness, error bodies, metrics, the API document, and a graceful shutdown that finishes an
//! in-flight request.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use somsom_server::extract::Json;
use somsom_server::{AppState, build};
use tokio::sync::{Notify, mpsc};

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Greeting {
    name: String,
    times: u8,
}

/// A route that accepts a typed JSON body, to exercise the bad-input paths end to end.
fn echo_routes() -> Router<AppState> {
    Router::new().route(
        "/test/echo",
        post(|Json(g): Json<Greeting>| async move { axum::Json(json!({ "hello": g.name })) }),
    )
}

#[tokio::test]
async fn server_answers_health_errors_metrics_and_docs() {
    let dir = tempfile::tempdir().unwrap();
    let app = build(common::config_in(dir.path())).await.unwrap();
    assert!(
        dir.path().join("data/somsom.db").exists(),
        "the SQLite file and its directory are created at start"
    );
    let server = common::spawn(app.with_routes(echo_routes()));
    let http = reqwest::Client::new();

    for path in [
        "/healthz",
        "/api/healthz",
        "/actuator/health",
        "/api/actuator/health",
    ] {
        let res = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers().contains_key("x-request-id"),
            "{path} has a request id"
        );
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"status": "UP"}),
            "{path}"
        );
    }

    let ready: Value = http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "UP");
    assert_eq!(ready["components"]["database"]["status"], "UP");

    // Unknown route: JSON 404, at / and under /api.
    for path in ["/no/such/route", "/api/no/such/route"] {
        let res = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], 404);
        assert_eq!(body["code"], "NOT_FOUND");
        assert_eq!(body["message"], "요청한 경로를 찾을 수 없습니다.");
    }

    // Wrong method: JSON 405 that keeps the Allow header.
    let res = http.post(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.headers().contains_key("allow"));
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "METHOD_NOT_ALLOWED"
    );

    // Malformed requests.
    let post = |body: &'static str, content_type: &'static str| {
        http.post(server.url("/api/test/echo"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let res = post(r#"{"name": "솜솜", "times": 2"#, "application/json")
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "BAD_REQUEST");
    assert!(body["errors"]["body"].is_string(), "{body}");

    let body: Value = post(r#"{"times": 2}"#, "application/json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["errors"]["name"], "필수 값입니다.", "{body}");

    let body: Value = post(r#"{"name": "a", "times": 300}"#, "application/json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], 400);
    assert!(body["errors"]["times"].is_string(), "{body}");

    let res = post(r#"{"name": "a", "times": 1}"#, "text/plain")
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "UNSUPPORTED_MEDIA_TYPE"
    );

    let ok: Value = post(
        r#"{"name": "솜솜", "times": 1, "unknown": true}"#,
        "application/json",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(ok, json!({"hello": "솜솜"}));

    // Bodies over the limit (1 MiB by default) → 413 JSON.
    let big = format!(
        r#"{{"name": "{}", "times": 1}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let res = http
        .post(server.url("/test/echo"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "PAYLOAD_TOO_LARGE"
    );

    // English on request.
    let body: Value = http
        .get(server.url("/nope"))
        .header("accept-language", "en-US,en;q=0.9")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["message"], "No such route.");

    // Metrics count requests per route template, / and /api together.
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let healthz_line = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                r#"somsom_http_requests_total{method="GET",route="/healthz",status="200"}"#,
            )
        })
        .unwrap_or_else(|| panic!("no /healthz counter in\n{metrics}"));
    assert!(healthz_line.ends_with(" 2"), "{healthz_line}");
    assert!(metrics.contains(r#"route="unmatched""#), "{metrics}");
    assert!(metrics.contains("somsom_http_request_duration_seconds_bucket"));

    // The OpenAPI document.
    let doc: Value = http
        .get(server.url("/v3/api-docs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/readyz"].is_object());

    server.shutdown().await;
}

#[tokio::test]
async fn cors_allows_configured_origins_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::spawn(build(common::config_in(dir.path())).await.unwrap());
    let http = reqwest::Client::new();
    let preflight = http
        .request(reqwest::Method::OPTIONS, server.url("/api/healthz"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );

    let foreign = http
        .get(server.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_stops_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let app = build(common::config_in(dir.path())).await.unwrap();

    // A request that stays in flight until the test releases it.
    let (started_tx, mut started) = mpsc::channel::<()>(1);
    let release = Arc::new(Notify::new());
    let release_in_handler = release.clone();
    let slow = Router::new().route(
        "/test/slow",
        post(move || {
            let started_tx = started_tx.clone();
            let release = release_in_handler.clone();
            async move {
                started_tx.send(()).await.unwrap();
                release.notified().await;
                "finished"
            }
        }),
    );
    let task_stopped = Arc::new(AtomicBool::new(false));
    let flag = task_stopped.clone();
    app.tasks().spawn("test-task", |cancel| async move {
        cancel.cancelled().await;
        flag.store(true, Ordering::SeqCst);
    });
    let mut server = common::spawn(app.with_routes(slow));
    let addr = server.addr;

    let in_flight = tokio::spawn({
        let url = server.url("/test/slow");
        async move { reqwest::Client::new().post(url).send().await?.text().await }
    });
    started
        .recv()
        .await
        .expect("the slow request reached its handler");

    server.begin_shutdown();
    // New connections are refused once shutdown has begun (bounded wait, no timing assertion).
    common::eventually("the listener refuses new connections", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(
        !server.done.is_finished(),
        "the server must wait for the in-flight request"
    );

    release.notify_one();
    let body = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completed");
    assert_eq!(body, "finished");
    server.done.await.unwrap().unwrap();
    assert!(
        task_stopped.load(Ordering::SeqCst),
        "background task was cancelled"
    );
}
