//! Web Push endpoints are chosen by the browser, that is, by whoever is signed in: the server
//! must not be made to post into its own network, nor keep unlimited devices for one user.

use reqwest::Method;
use serde_json::json;

use crate::common::start;

fn subscription(endpoint: &str) -> String {
    json!({
        "endpoint": endpoint,
        "keys": {
            "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
            "auth": "tBHItJI5svbpez7KI4CCXg"
        }
    })
    .to_string()
}

#[tokio::test]
async fn subscriptions_to_private_or_plain_http_endpoints_are_refused() {
    let ctx = start(|_| {}).await;
    let user = ctx.user_token("pusher@example.com").await;
    for endpoint in [
        "https://127.0.0.1/push",
        "https://[::1]/push",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/push",
        "https://192.168.0.1/push",
        "https://localhost/push",
        "http://8.8.8.8/push",
    ] {
        let (status, body) = ctx
            .send(
                Method::POST,
                "/notification/activate",
                Some(&user),
                Some(json!({"token": subscription(endpoint), "deviceType": "WEB"})),
            )
            .await;
        assert_eq!(status, 400, "{endpoint}: {body}");
        assert_eq!(body["code"], "BAD_REQUEST", "{endpoint}: {body}");
    }
    // A public https push service is fine (an address, so no lookup is needed here).
    let (status, body) = ctx
        .send(
            Method::POST,
            "/notification/activate",
            Some(&user),
            Some(json!({"token": subscription("https://8.8.8.8/push/abc"), "deviceType": "WEB"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn a_user_keeps_at_most_ten_devices() {
    let ctx = start(|_| {}).await;
    let user = ctx.user_token("collector@example.com").await;
    let me = ctx.get("/me", Some(&user)).await.1;
    let id = me["profile"]["id"].as_i64().expect("a user id");
    for i in 0..25 {
        let (status, _) = ctx
            .send(
                Method::POST,
                "/notification/activate",
                Some(&user),
                Some(json!({"token": format!("fcm-token-{i}"), "deviceType": "MOBILE"})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let devices = ctx.state.push.registry.devices(&[id]).await.unwrap();
    assert_eq!(devices.len(), 10);
    assert!(
        devices.iter().any(|d| d.token == "fcm-token-24"),
        "the newest is kept"
    );
    ctx.server.shutdown().await;
}
