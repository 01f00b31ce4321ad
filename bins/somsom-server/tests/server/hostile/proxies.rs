//! Per-address limits behind a load balancer: forwarding headers are believed only from the
//! configured proxies, read from the right past them, and ignored from anyone else.

use serde_json::json;

use crate::common::{Ctx, start};

/// Sends `n` failed logins for fresh accounts, each with `forwarded` (by index); returns the
/// index of the first one refused with 429, if any.
async fn first_refused(
    ctx: &Ctx,
    n: usize,
    forwarded: impl Fn(usize) -> Option<String>,
) -> Option<usize> {
    for i in 0..n {
        let mut request = ctx
            .http
            .post(ctx.server.url("/confirm-signup"))
            .json(&json!({"email": format!("p{i}@example.com"), "code": "123456"}));
        if let Some(value) = forwarded(i) {
            request = request.header("x-forwarded-for", value);
        }
        match request.send().await.unwrap().status().as_u16() {
            429 => return Some(i),
            404 => {}
            other => panic!("unexpected {other}"),
        }
    }
    None
}

/// Without trusted proxies, `X-Forwarded-For` is anyone's to write and is ignored: one client
/// cannot make itself a thousand clients.
#[tokio::test]
async fn forwarding_headers_from_anyone_else_are_ignored() {
    let ctx = start(|_| {}).await;
    let refused = first_refused(&ctx, 70, |i| Some(format!("203.0.113.{i}"))).await;
    assert_eq!(
        refused,
        Some(60),
        "one bucket of 60 a minute, whatever the header says"
    );
    ctx.server.shutdown().await;
}

/// Behind a trusted proxy every client has its own bucket (the seed's deployment behind an ALB
/// would otherwise lock everyone out at the first rush), and what a client writes into the
/// header before the proxy appends the real address changes nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let ctx = start(|c| c.http.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    let crowd = first_refused(&ctx, 200, |i| Some(format!("198.51.100.{}", i % 200))).await;
    assert_eq!(
        crowd, None,
        "two hundred clients, none over their own limit"
    );
    let one = first_refused(&ctx, 70, |i| Some(format!("10.9.8.{i}, 203.0.113.77"))).await;
    assert_eq!(
        one,
        Some(60),
        "the spoofed part is not the client; the proxy's entry is"
    );
    ctx.server.shutdown().await;
}
