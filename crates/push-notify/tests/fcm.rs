//! The FCM HTTP v1 sender against a local server that plays Google's token and send endpoints
//! and checks what it is sent: the assertion's RS256 signature and claims, the bearer token,
//! and the message's shape.
#![cfg(feature = "fcm")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use push_notify::send::fcm::{FcmSender, SCOPE, ServiceAccount};
use push_notify::{
    Clock, Device, DeviceRegistry, DeviceType, Dispatcher, ManualClock, MemoryLedger,
    MemoryRegistry, MemorySchedule, Message, Planner, ReminderKey, Scheduler, SendOutcome, Sender,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

#[derive(Default)]
struct Google {
    public_pem: String,
    token_uri: String,
    issued: Vec<String>,
    revoked: Vec<String>,
    messages: Vec<Value>,
    /// Per device token: how many sends it has seen.
    seen: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Google>>;

async fn token(State(g): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut g = g.lock().unwrap();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(g.public_pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[g.token_uri.clone()]);
    validation.set_issuer(&["push@somsom-test.iam.gserviceaccount.com"]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let Ok(data) = jsonwebtoken::decode::<Value>(&form["assertion"], &key, &validation) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    assert_eq!(data.claims["scope"], SCOPE);
    assert_eq!(data.header.kid.as_deref(), Some("key-1"));
    let exp = data.claims["exp"].as_i64().unwrap();
    let iat = data.claims["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 3600);
    let access = format!("at-{}", g.issued.len() + 1);
    g.issued.push(access.clone());
    Json(json!({"access_token": access, "expires_in": 3600, "token_type": "Bearer"}))
        .into_response()
}

fn fcm_error(status: StatusCode, code: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": code, "status": code,
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}});
    (status, Json(body)).into_response()
}

async fn send(State(g): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut g = g.lock().unwrap();
    let bearer = headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    if !g.issued.contains(&bearer) || g.revoked.contains(&bearer) {
        return fcm_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    }
    let device = body["message"]["token"].as_str().unwrap().to_owned();
    let seen = {
        let n = g.seen.entry(device.clone()).or_default();
        *n += 1;
        *n
    };
    g.messages.push(body);
    match device.as_str() {
        "gone" => fcm_error(StatusCode::NOT_FOUND, "UNREGISTERED"),
        "invalid" => fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        "busy" if seen == 1 => {
            let mut r = fcm_error(StatusCode::TOO_MANY_REQUESTS, "QUOTA_EXCEEDED");
            r.headers_mut().insert("retry-after", "7".parse().unwrap());
            r
        }
        "broken" => fcm_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        _ => Json(json!({"name": format!("projects/somsom-test/messages/{}", g.messages.len())}))
            .into_response(),
    }
}

struct Fixture {
    google: Shared,
    sender: FcmSender,
    clock: ManualClock,
}

async fn fixture() -> Fixture {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let google = Arc::new(Mutex::new(Google {
        public_pem,
        token_uri: format!("{base}/token"),
        ..Google::default()
    }));
    let app = Router::new()
        .route("/token", post(token))
        .route("/v1/projects/somsom-test/messages:send", post(send))
        .with_state(google.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let account = ServiceAccount::from_json(
        &json!({
            "type": "service_account",
            "project_id": "somsom-test",
            "private_key_id": "key-1",
            "private_key": private_pem,
            "client_email": "push@somsom-test.iam.gserviceaccount.com",
            "token_uri": format!("{base}/token"),
        })
        .to_string(),
    )
    .unwrap();
    let clock = ManualClock::starting_now();
    let sender = FcmSender::new(account, &base)
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    Fixture {
        google,
        sender,
        clock,
    }
}

fn device(token: &str) -> Device {
    Device {
        user: 1,
        token: token.into(),
        device_type: DeviceType::Mobile,
    }
}

fn message() -> Message {
    Message {
        collapse_id: "r-1-2-20261224".into(),
        title: "Jazz".into(),
        body: "2026-12-24 에 Jazz이 시작됩니다.".into(),
    }
}

#[tokio::test]
async fn messages_have_the_v1_shape_and_tokens_are_cached_until_near_expiry() {
    let f = fixture().await;
    for _ in 0..3 {
        assert_eq!(
            f.sender.send(&device("phone"), &message()).await,
            SendOutcome::Delivered
        );
    }
    assert_eq!(
        f.google.lock().unwrap().issued.len(),
        1,
        "one access token for three sends"
    );
    let sent = f.google.lock().unwrap().messages[0].clone();
    assert_eq!(sent["message"]["token"], "phone");
    assert_eq!(
        sent["message"]["notification"],
        json!({"title": "Jazz", "body": "2026-12-24 에 Jazz이 시작됩니다."})
    );
    assert_eq!(sent["message"]["android"]["collapse_key"], "r-1-2-20261224");
    assert_eq!(
        sent["message"]["apns"]["headers"]["apns-collapse-id"],
        "r-1-2-20261224"
    );
    assert_eq!(
        sent["message"]["webpush"]["headers"]["Topic"],
        "r-1-2-20261224"
    );
    // A minute before expiry the token is renewed.
    f.clock.advance(chrono::Duration::seconds(3600 - 61));
    f.sender.send(&device("phone"), &message()).await;
    assert_eq!(f.google.lock().unwrap().issued.len(), 1);
    f.clock.advance(chrono::Duration::seconds(2));
    f.sender.send(&device("phone"), &message()).await;
    assert_eq!(f.google.lock().unwrap().issued.len(), 2);
}

#[tokio::test]
async fn provider_answers_become_outcomes() {
    let f = fixture().await;
    assert_eq!(
        f.sender.send(&device("gone"), &message()).await,
        SendOutcome::Gone
    );
    assert_eq!(
        f.sender.send(&device("invalid"), &message()).await,
        SendOutcome::Gone
    );
    match f.sender.send(&device("busy"), &message()).await {
        SendOutcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(7)));
            assert!(reason.contains("QUOTA_EXCEEDED"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.sender.send(&device("busy"), &message()).await,
        SendOutcome::Delivered
    );
    assert!(matches!(
        f.sender.send(&device("broken"), &message()).await,
        SendOutcome::Retry { after: None, .. }
    ));
}

#[tokio::test]
async fn a_revoked_access_token_is_replaced_at_once() {
    let f = fixture().await;
    f.sender.send(&device("phone"), &message()).await;
    let first = f.google.lock().unwrap().issued[0].clone();
    f.google.lock().unwrap().revoked.push(first);
    assert_eq!(
        f.sender.send(&device("phone"), &message()).await,
        SendOutcome::Delivered
    );
    assert_eq!(f.google.lock().unwrap().issued.len(), 2);
}

#[tokio::test]
async fn unreachable_endpoints_are_retried() {
    let f = fixture().await;
    let account = ServiceAccount {
        project_id: "p".into(),
        client_email: "x@y".into(),
        private_key: String::new(),
        private_key_id: None,
        token_uri: "http://127.0.0.1:1/token".into(),
    };
    assert!(
        FcmSender::new(account, "http://127.0.0.1:1").is_err(),
        "no key"
    );
    drop(f);
}

/// Through the dispatcher: the gone token is deactivated, the rate-limited one is retried after
/// Retry-After, and each device gets the reminder once.
#[tokio::test]
async fn the_dispatcher_sends_through_fcm() {
    let f = fixture().await;
    let clock = f.clock.clone();
    let registry = Arc::new(MemoryRegistry::new());
    for token in ["phone", "gone", "busy"] {
        registry.activate(device(token)).await.unwrap();
    }
    let schedule = Arc::new(MemorySchedule::new().with_clock(Arc::new(clock.clone())));
    let today = clock
        .now()
        .with_timezone(&chrono_tz::Asia::Seoul)
        .date_naive();
    let key = ReminderKey {
        user: 1,
        festival: 2,
        date: today + chrono::Days::new(2),
    };
    let reminder = Planner::default()
        .reminder(key, "Jazz", clock.now())
        .unwrap();
    schedule.schedule(&reminder).await.unwrap();
    // To its due time, not a day on: the reminder is due at a fixed hour of the day before, which
    // a day from the test clock's start (real now) has not reached during part of every day.
    clock.advance(reminder.due - clock.now());
    let dispatcher = Dispatcher::new(
        schedule.clone(),
        registry.clone(),
        Arc::new(MemoryLedger::new()),
        Arc::new(f.sender.clone()),
    )
    .with_clock(Arc::new(clock.clone()));
    let round = dispatcher.round().await.unwrap();
    assert_eq!(
        (round.sends, round.gone, round.retried),
        (1, 1, 1),
        "{round:?}"
    );
    let left: Vec<_> = registry
        .devices(&[1])
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(left, vec!["busy".to_owned(), "phone".to_owned()]);
    clock.advance(chrono::Duration::seconds(8));
    let round = dispatcher.round().await.unwrap();
    assert_eq!((round.sends, round.delivered), (1, 1), "{round:?}");
    let seen = f.google.lock().unwrap().seen.clone();
    assert_eq!((seen["phone"], seen["busy"], seen["gone"]), (1, 2, 1));
}
