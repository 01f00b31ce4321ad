//! What an operator exposes: readiness without backend error text for strangers, metrics on
//! their own address, and keys that come from files instead of the database.

use std::sync::Arc;

use async_trait::async_trait;
use somsom_server::readiness::{Readiness, ReadinessCheck};
use tower::ServiceExt;

use crate::common::start;

struct Broken;

#[async_trait]
impl ReadinessCheck for Broken {
    fn name(&self) -> &'static str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        Err("error returned from database: 1045 (28000): Access denied for user 'somsom'@'10.0.3.7'".into())
    }
}

async fn readyz(app: axum::Router, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = http::Request::get("/readyz");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn readiness_shows_backend_errors_to_admins_only() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("ops@example.com").await;
    let user = ctx.user_token("someone@example.com").await;
    let mut state = ctx.state.clone();
    state.readiness = Readiness::new(vec![Arc::new(Broken)]);
    let app = somsom_server::app(state);
    for token in [None, Some(user.as_str())] {
        let (status, body) = readyz(app.clone(), token).await;
        assert_eq!(status, 503);
        assert_eq!(body["components"]["database"]["status"], "DOWN");
        let text = body.to_string();
        assert!(
            !text.contains("somsom") && !text.contains("10.0.3.7"),
            "{text}"
        );
    }
    let (status, body) = readyz(app, Some(&admin)).await;
    assert_eq!(status, 503);
    assert!(body.to_string().contains("Access denied"), "{body}");
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn metrics_can_listen_on_their_own_address_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config_in(dir.path());
    config.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = somsom_server::build(config).await.unwrap();
    let metrics = app.metrics_addr().expect("a metrics address");
    let server = crate::common::spawn(app);
    let public = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(public.status(), 404, "not on the public address");
    let private = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    assert!(
        private
            .text()
            .await
            .unwrap()
            .contains("somsom_http_requests")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn keys_can_come_from_files_and_then_never_reach_the_database() {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let signing = cognito_auth::local::test_key();
    let files = [
        ("signing.pem", signing.private_pem().to_owned()),
        ("queue.key", "q".repeat(40)),
        (
            "vapid.key",
            push_notify::send::webpush::VapidKey::generate().private_base64(),
        ),
        ("tickets.key", "t".repeat(40)),
    ];
    for (name, contents) in &files {
        std::fs::write(dir.path().join(name), contents).unwrap();
    }
    let path = |name: &str| Some(dir.path().join(name).display().to_string());
    let ctx = start(|c| {
        c.auth.signing_key_file = path("signing.pem");
        c.queue.token_secret_file = path("queue.key");
        c.tickets.code_secret_file = path("tickets.key");
        c.push.vapid_private_key_file = path("vapid.key");
    })
    .await;
    let kid = cognito_auth::jwt::SigningKey::from_operator_pem(signing.private_pem())
        .unwrap()
        .kid()
        .to_owned();
    let (_, jwks) = ctx.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    let vapid = push_notify::send::webpush::VapidKey::from_base64(&files[2].1).unwrap();
    let (_, key) = ctx.get("/notification/vapid-public-key", None).await;
    assert_eq!(key["publicKey"], vapid.public_base64().as_str());
    let somsom_server::db::Database::Sqlite(pool) = &ctx.db else {
        panic!("SQLite")
    };
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM auth_signing_keys")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    let secrets: Vec<String> = sqlx::query("SELECT name FROM server_secrets")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, 0, "the signing key stayed out of the database");
    assert!(secrets.is_empty(), "{secrets:?}");
    ctx.server.shutdown().await;
}
