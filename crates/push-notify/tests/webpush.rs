//! The Web Push sender against a local push endpoint, checked by independent code: Python's
//! `http_ece` (the reference RFC 8188/8291 implementation) decrypts what was sent with the
//! browser's private key, and PyJWT verifies the VAPID JWT with the public key from the
//! `Authorization` header (`TEST_PYTHON`).
#![cfg(feature = "webpush")]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use push_notify::send::endpoint::EndpointPolicy;
use push_notify::send::webpush::{VapidKey, WebPushSender};
use push_notify::{Device, DeviceType, Message, SendOutcome, Sender};
use test_support::{PYTHON, require_service};

type Captured = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn push_service(State(seen): State<Captured>, headers: HeaderMap, body: Bytes) -> StatusCode {
    seen.lock().unwrap().push((headers, body));
    StatusCode::CREATED
}

const CHECK: &str = r#"
import base64, json, sys
import http_ece, jwt
from cryptography.hazmat.primitives.asymmetric import ec

def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

args = json.load(sys.stdin)
private = ec.derive_private_key(int.from_bytes(b64d(args["ua_private"]), "big"), ec.SECP256R1())
plain = http_ece.decrypt(b64d(args["body"]), private_key=private, auth_secret=b64d(args["auth"]), version="aes128gcm")
auth = args["authorization"]
assert auth.startswith("vapid "), auth
fields = dict(part.strip().split("=", 1) for part in auth[len("vapid "):].split(","))
public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(fields["k"]))
claims = jwt.decode(fields["t"], key=public, algorithms=["ES256"], audience=args["audience"])
print(json.dumps({"payload": json.loads(plain), "claims": claims, "k": fields["k"]}))
"#;

#[tokio::test]
async fn what_is_sent_decrypts_with_an_independent_implementation() {
    let python = require_service!(PYTHON);
    let seen: Captured = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/push/{id}", post(push_service))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The browser's side of the subscription.
    let ua = p256::SecretKey::random(&mut rand::thread_rng());
    let auth: [u8; 16] = rand::random();
    let token = serde_json::json!({
        "endpoint": format!("{origin}/push/abc"),
        "keys": {
            "p256dh": B64.encode(ua.public_key().to_encoded_point(false).as_bytes()),
            "auth": B64.encode(auth),
        }
    })
    .to_string();
    let vapid = VapidKey::generate();
    // A push service on loopback: only a permissive policy sends there.
    let sender = WebPushSender::with_policy(
        vapid.clone(),
        "mailto:ops@somsom.example",
        EndpointPolicy::permissive(),
    )
    .unwrap();
    let message = Message {
        collapse_id: "r-1-2-20261224".into(),
        title: "재즈 페스티벌".into(),
        body: "2026-12-24 에 재즈 페스티벌이 시작됩니다.".into(),
    };
    let device = Device {
        user: 1,
        token,
        device_type: DeviceType::Web,
    };
    assert_eq!(sender.send(&device, &message).await, SendOutcome::Delivered);

    let (headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert_eq!(headers["topic"], "r-1-2-20261224");
    assert_eq!(headers["ttl"], "86400");
    let input = serde_json::json!({
        "ua_private": B64.encode(ua.to_bytes()),
        "auth": B64.encode(auth),
        "body": B64.encode(&body),
        "authorization": headers["authorization"].to_str().unwrap(),
        "audience": origin,
    });
    let mut child = tokio::process::Command::new(python)
        .args(["-c", CHECK])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["payload"]["title"], "재즈 페스티벌");
    assert_eq!(
        checked["payload"]["body"],
        "2026-12-24 에 재즈 페스티벌이 시작됩니다."
    );
    assert_eq!(checked["payload"]["tag"], "r-1-2-20261224");
    assert_eq!(checked["claims"]["sub"], "mailto:ops@somsom.example");
    assert_eq!(checked["k"], vapid.public_base64());
    // Two sends of one message never share a salt or an ephemeral key.
    sender.send(&device, &message).await;
    let second = seen.lock().unwrap()[1].1.clone();
    assert_ne!(body[..16], second[..16], "salt");
    assert_ne!(body[21..86], second[21..86], "ephemeral key");
}

#[tokio::test]
async fn push_service_answers_become_outcomes() {
    async fn answer(State(status): State<u16>) -> (StatusCode, [(&'static str, &'static str); 1]) {
        (
            StatusCode::from_u16(status).unwrap(),
            [("retry-after", "30")],
        )
    }
    let ua = p256::SecretKey::random(&mut rand::thread_rng());
    let sender = WebPushSender::with_policy(
        VapidKey::generate(),
        "mailto:ops@somsom.example",
        EndpointPolicy::permissive(),
    )
    .unwrap();
    let message = Message {
        collapse_id: "x".into(),
        title: "t".into(),
        body: "b".into(),
    };
    for (status, expected) in [
        (410, SendOutcome::Gone),
        (404, SendOutcome::Gone),
        (
            429,
            SendOutcome::Retry {
                after: Some(std::time::Duration::from_secs(30)),
                reason: String::new(),
            },
        ),
        (
            413,
            SendOutcome::Failed {
                reason: String::new(),
            },
        ),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/p", listener.local_addr().unwrap());
        let app = Router::new().route("/p", post(answer)).with_state(status);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let token = serde_json::json!({"endpoint": url, "keys": {
            "p256dh": B64.encode(ua.public_key().to_encoded_point(false).as_bytes()), "auth": B64.encode([7u8; 16])}})
        .to_string();
        let got = sender
            .send(
                &Device {
                    user: 1,
                    token,
                    device_type: DeviceType::Web,
                },
                &message,
            )
            .await;
        let same = match (&got, &expected) {
            (SendOutcome::Retry { after: a, .. }, SendOutcome::Retry { after: b, .. }) => a == b,
            (SendOutcome::Failed { .. }, SendOutcome::Failed { .. }) => true,
            _ => got == expected,
        };
        assert!(same, "{status}: {got:?}");
    }
    // A token that is not a usable subscription is gone for good.
    let bad = Device {
        user: 1,
        token: r#"{"endpoint":"nope"}"#.into(),
        device_type: DeviceType::Web,
    };
    assert_eq!(sender.send(&bad, &message).await, SendOutcome::Gone);
}

/// A subscription may point anywhere; the default sender only sends to public https push
/// services, follows no redirect, and keeps no more of an error answer than a line.
#[tokio::test]
async fn the_default_sender_reaches_no_private_address_and_follows_no_redirect() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    async fn redirect(
        State(hits): State<Arc<AtomicUsize>>,
    ) -> (StatusCode, [(&'static str, String); 1]) {
        hits.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(
                "location",
                "http://169.254.169.254/latest/meta-data/".to_owned(),
            )],
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/p", post(redirect))
        .with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ua = p256::SecretKey::random(&mut rand::thread_rng());
    let token = |endpoint: String| {
        serde_json::json!({"endpoint": endpoint, "keys": {
            "p256dh": B64.encode(ua.public_key().to_encoded_point(false).as_bytes()),
            "auth": B64.encode([7u8; 16])}})
        .to_string()
    };
    let message = Message {
        collapse_id: "x".into(),
        title: "t".into(),
        body: "b".into(),
    };
    let strict = WebPushSender::new(VapidKey::generate(), "mailto:ops@somsom.example").unwrap();
    for endpoint in [
        format!("http://{addr}/p"),
        format!("https://{addr}/p"),
        format!("https://localhost:{}/p", addr.port()),
    ] {
        let device = Device {
            user: 1,
            token: token(endpoint.clone()),
            device_type: DeviceType::Web,
        };
        let outcome = strict.send(&device, &message).await;
        assert!(
            !matches!(outcome, SendOutcome::Delivered),
            "{endpoint}: {outcome:?}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the private address"
    );
    // Even where private addresses are allowed, a redirect is an answer, not an instruction.
    let permissive = WebPushSender::with_policy(
        VapidKey::generate(),
        "mailto:ops@somsom.example",
        EndpointPolicy::permissive(),
    )
    .unwrap();
    let device = Device {
        user: 1,
        token: token(format!("http://{addr}/p")),
        device_type: DeviceType::Web,
    };
    let outcome = permissive.send(&device, &message).await;
    assert!(matches!(outcome, SendOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "asked once, not redirected");
}
