//! Reservations over a real socket: booking with quantity and Idempotency-Key, the detail's
//! remaining tickets, listing, cancelling, my page, every refusal, and concurrent buyers.

use crate::common;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Ctx, start};

/// A festival whose sale is not queued: these tests are about tickets, the waiting room has its own.
async fn festival(ctx: &Ctx, admin: &str, mut body: Value) -> i64 {
    body["saleQueued"] = json!(false);
    let (status, created) = ctx
        .send(Method::POST, "/festivals/create", Some(admin), Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

fn left(detail: &Value, date: &str) -> i64 {
    detail["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .unwrap()["leftTickets"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn book_retry_list_cancel_and_my_page() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let other = ctx.user_token("other@example.com").await;
    let id = festival(
        &ctx,
        &admin,
        json!({"title": "부산 바다축제", "description": "해운대", "startDate": "2099-07-01",
               "endDate": "2099-07-03", "ticketsPerDay": 50, "ticketsByDate": {"2099-07-03": 7}}),
    )
    .await;
    let (_, detail) = ctx
        .send(Method::GET, &format!("/festivals/{id}"), None, None)
        .await;
    assert_eq!(detail["days"].as_array().unwrap().len(), 3);
    assert_eq!(
        (left(&detail, "2099-07-01"), left(&detail, "2099-07-03")),
        (50, 7)
    );
    assert_eq!(detail["maxPerReservation"], 4);

    let book = |key: &'static str, quantity: u32| {
        let ctx = &ctx;
        let fan = fan.clone();
        async move {
            ctx.http
                .post(ctx.server.url("/reservations"))
                .bearer_auth(&fan)
                .header("Idempotency-Key", key)
                .json(
                    &json!({"festivalId": id, "festivalDate": "2099-07-01", "quantity": quantity}),
                )
                .send()
                .await
                .unwrap()
        }
    };
    let first = book("k-1", 2).await;
    assert_eq!(first.status().as_u16(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let retry = book("k-1", 2).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(first["reservationId"], retry["reservationId"]);
    assert_eq!(
        (first["quantity"].clone(), first["status"].clone()),
        (json!(2), json!("ACTIVE"))
    );
    let (_, detail) = ctx
        .send(Method::GET, &format!("/festivals/{id}"), None, None)
        .await;
    assert_eq!(left(&detail, "2099-07-01"), 48, "the retry booked nothing");
    let reused = book("k-1", 1).await;
    assert_eq!(reused.status().as_u16(), 422);

    // The seed's list shape, newest first, only the caller's.
    let (_, theirs) = ctx
        .send(
            Method::POST,
            "/reservations",
            Some(&other),
            Some(json!({"festivalId": id, "festivalDate": "2099-07-02"})),
        )
        .await;
    let (status, list) = ctx
        .send(Method::GET, "/reservations", Some(&fan), None)
        .await;
    assert_eq!(status, 200);
    let items = list["reservations"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], first["reservationId"]);
    assert_eq!(items[0]["festivalDate"], "2099-07-01");
    assert_eq!(items[0]["festivalInfo"]["name"], "부산 바다축제");
    assert_eq!(
        (list["hasNext"].clone(), list["lastId"].clone()),
        (json!(false), Value::Null)
    );

    let (status, me) = ctx.send(Method::GET, "/me", Some(&fan), None).await;
    assert_eq!(status, 200);
    assert_eq!(me["profile"]["email"], "fan@example.com");
    assert_eq!(me["upcomingReservations"][0]["id"], first["reservationId"]);

    // Only the owner cancels, once; the tickets come back.
    let path = format!("/reservations/{}", first["reservationId"]);
    let (status, answer) = ctx.send(Method::DELETE, &path, Some(&other), None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("RESERVATION_NOT_FOUND"))
    );
    let (status, cancelled) = ctx.send(Method::DELETE, &path, Some(&fan), None).await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED"))
    );
    let (status, answer) = ctx.send(Method::DELETE, &path, Some(&fan), None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("RESERVATION_ALREADY_CANCELLED"))
    );
    let (_, detail) = ctx
        .send(Method::GET, &format!("/festivals/{id}"), None, None)
        .await;
    assert_eq!(left(&detail, "2099-07-01"), 50);
    let (_, me) = ctx.send(Method::GET, "/me", Some(&fan), None).await;
    assert_eq!(me["upcomingReservations"], json!([]));
    assert!(theirs["reservationId"].is_i64());
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn every_refusal_has_its_code() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let id = festival(
        &ctx,
        &admin,
        json!({"title": "작은 공연", "startDate": "2099-01-10", "endDate": "2099-01-11",
               "ticketsPerDay": 3, "maxPerUserPerDay": 2, "maxPerReservation": 2}),
    )
    .await;
    let past = festival(
        &ctx,
        &admin,
        json!({"title": "지난 축제", "startDate": "2020-01-10", "endDate": "2020-01-10"}),
    )
    .await;
    let post = |token: Option<&str>, body: Value| {
        let ctx = &ctx;
        let token = token.map(str::to_owned);
        async move {
            ctx.send(Method::POST, "/reservations", token.as_deref(), Some(body))
                .await
        }
    };
    let day = |date: &str, quantity: u32| json!({"festivalId": id, "festivalDate": date, "quantity": quantity});

    let (status, body) = post(None, day("2099-01-10", 1)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, body) = post(Some("not-a-token"), day("2099-01-10", 1)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("TOKEN_VERIFICATION_FAILED"))
    );
    let (status, body) = post(Some(&fan), json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"].as_object().unwrap().len(), 2, "{body}");
    let (status, body) = post(
        Some(&fan),
        json!({"festivalId": "x", "festivalDate": "2099-01-10"}),
    )
    .await;
    assert_eq!(
        (status, body["errors"]["festivalId"].is_string()),
        (400, true),
        "{body}"
    );
    let (status, body) = post(
        Some(&fan),
        json!({"festivalId": id, "festivalDate": "10-01-2099"}),
    )
    .await;
    assert_eq!(
        (status, body["errors"]["festivalDate"].is_string()),
        (400, true),
        "{body}"
    );
    for quantity in [0, 3] {
        let (status, body) = post(Some(&fan), day("2099-01-10", quantity)).await;
        assert_eq!(
            (status, body["errors"]["quantity"].is_string()),
            (400, true),
            "{body}"
        );
    }
    let (status, body) = post(Some(&fan), day("2099-01-12", 1)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("TICKET_NOT_FOUND"))
    );
    let (status, body) = post(
        Some(&fan),
        json!({"festivalId": 9999, "festivalDate": "2099-01-10"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("TICKET_NOT_FOUND"))
    );
    let (status, body) = post(
        Some(&fan),
        json!({"festivalId": past, "festivalDate": "2020-01-10"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("FESTIVAL_DAY_CLOSED"))
    );

    assert_eq!(post(Some(&fan), day("2099-01-10", 2)).await.0, 200);
    let (status, body) = post(Some(&fan), day("2099-01-10", 1)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("TICKET_LIMIT_EXCEEDED"))
    );
    let rival = ctx.user_token("rival@example.com").await;
    let (status, body) = post(Some(&rival), day("2099-01-10", 2)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("TICKET_SOLD_OUT"))
    );
    assert_eq!(body["message"], "남아있는 티켓이 없습니다.");
    assert_eq!(post(Some(&rival), day("2099-01-10", 1)).await.0, 200);

    for path in ["/reservations/abc", "/reservations/999"] {
        let (status, _) = ctx.send(Method::DELETE, path, Some(&fan), None).await;
        assert_eq!(
            status,
            if path.ends_with("abc") { 400 } else { 404 },
            "{path}"
        );
    }
    let (status, body) = ctx
        .send(Method::GET, "/reservations?limit=0", Some(&fan), None)
        .await;
    assert_eq!((status, body["errors"]["limit"].is_string()), (400, true));
    let (status, _) = ctx.send(Method::GET, "/reservations", None, None).await;
    assert_eq!(status, 401);
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn concurrent_buyers_over_http_never_oversell() {
    let ctx = start(|c| c.tickets.max_per_user_per_day = 4).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let id = festival(
        &ctx,
        &admin,
        json!({"title": "인기 공연", "startDate": "2099-05-05", "endDate": "2099-05-05", "ticketsPerDay": 25}),
    )
    .await;
    let mut tokens = Vec::new();
    for i in 0..16 {
        tokens.push(ctx.user_token(&format!("buyer{i}@example.com")).await);
    }
    let sold = common::buy_concurrently(&[ctx.server.url("")], &tokens, id, "2099-05-05", 3).await;
    let (_, detail) = ctx
        .send(Method::GET, &format!("/festivals/{id}"), None, None)
        .await;
    assert!(sold <= 25, "sold {sold} of 25");
    assert_eq!(left(&detail, "2099-05-05"), 25 - sold);
    ctx.server.shutdown().await;
}
