//! Reminders end to end in one server: device routes and their refusals, reminders planned from
//! reservations (once per user and day, none after a cancellation), sent when due to every
//! active device, listed at `/notifications`; at once inside the window; repaired at start.

use crate::common;

use push_notify::ReminderKey;
use reqwest::Method;
use serde_json::{Value, json};

use common::{Ctx, eventually, start, start_with_clock};

fn clock_at(at: &str) -> cognito_auth::ManualClock {
    cognito_auth::ManualClock::new(at.parse().unwrap())
}

async fn festival(ctx: &Ctx, admin: &str, title: &str, start: &str, end: &str) -> i64 {
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(admin),
            Some(
                json!({"title": title, "startDate": start, "endDate": end, "ticketsPerDay": 50,
                        "saleQueued": false}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

async fn book(ctx: &Ctx, token: &str, festival: i64, date: &str, quantity: u32) -> Value {
    let (status, body) = ctx
        .send(
            Method::POST,
            "/reservations",
            Some(token),
            Some(json!({"festivalId": festival, "festivalDate": date, "quantity": quantity})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn activate(ctx: &Ctx, token: &str, device: &str, kind: &str) {
    let (status, body) = ctx
        .send(
            Method::POST,
            "/notification/activate",
            Some(token),
            Some(json!({"token": device, "deviceType": kind})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"message": "FCM 토큰이 활성화되었습니다."}));
}

async fn pending(ctx: &Ctx, user: i64, festival: i64, date: &str) -> Option<push_notify::Reminder> {
    let key = ReminderKey {
        user,
        festival,
        date: date.parse().unwrap(),
    };
    ctx.state
        .push
        .context
        .scheduler
        .pending(&key)
        .await
        .unwrap()
}

async fn user_id(ctx: &Ctx, token: &str) -> i64 {
    ctx.get("/me", Some(token)).await.1["profile"]["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn device_routes_refuse_bad_input() {
    let ctx = start(|_| {}).await;
    let fan = ctx.user_token("fan@example.com").await;
    let (status, _) = ctx
        .send(
            Method::POST,
            "/notification/activate",
            None,
            Some(json!({"token": "t", "deviceType": "WEB"})),
        )
        .await;
    assert_eq!(status, 401);
    for (body, field) in [
        (json!({"deviceType": "WEB"}), "token"),
        (json!({"token": "", "deviceType": "WEB"}), "token"),
        (
            json!({"token": "x".repeat(4097), "deviceType": "WEB"}),
            "token",
        ),
        (json!({"token": "a\u{0}b", "deviceType": "MOBILE"}), "token"),
        (json!({"token": "t"}), "deviceType"),
        (json!({"token": "t", "deviceType": "TABLET"}), "deviceType"),
        (json!({"token": 5, "deviceType": "WEB"}), "token"),
    ] {
        let (status, error) = ctx
            .send(
                Method::POST,
                "/notification/activate",
                Some(&fan),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body} → {error}");
        assert_eq!(error["code"], "BAD_REQUEST", "{error}");
        assert!(error["errors"].get(field).is_some(), "{body} → {error}");
    }
    activate(&ctx, &fan, "phone-token", "MOBILE").await;
    activate(&ctx, &fan, "phone-token", "MOBILE").await;
    let (status, body) = ctx
        .send(
            Method::POST,
            "/notification/deactivate",
            Some(&fan),
            Some(json!({"token": "never-seen"})),
        )
        .await;
    assert_eq!(status, 200, "the seed answers 200 for an unknown token");
    assert_eq!(body, json!({"message": "FCM 토큰이 비활성화되었습니다."}));
    let (status, error) = ctx
        .send(
            Method::POST,
            "/notification/deactivate",
            Some(&fan),
            Some(json!({"token": ""})),
        )
        .await;
    assert_eq!((status, error["code"].as_str()), (400, Some("BAD_REQUEST")));
    let (status, body) = ctx.get("/notification/vapid-public-key", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["publicKey"].as_str().unwrap().len(),
        87,
        "65 bytes, Base64url"
    );
    let (status, _) = ctx.get("/notifications?limit=0", Some(&fan)).await;
    assert_eq!(status, 400);
    let (status, _) = ctx.get("/notifications", None).await;
    assert_eq!(status, 401);
    assert_eq!(ctx.get("/notifications", Some(&fan)).await.1, json!([]));
}

#[tokio::test]
async fn reminders_follow_reservations_and_reach_every_active_device_once() {
    // 2099-06-28 09:00 KST.
    let clock = clock_at("2099-06-28T00:00:00Z");
    let ctx = start_with_clock(|_| {}, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let other = ctx.user_token("other@example.com").await;
    let (fan_id, other_id) = (user_id(&ctx, &fan).await, user_id(&ctx, &other).await);
    let id = festival(&ctx, &admin, "부산 바다축제", "2099-07-01", "2099-07-03").await;
    activate(&ctx, &fan, "fan-phone", "MOBILE").await;
    activate(&ctx, &fan, "fan-laptop", "WEB").await;
    activate(&ctx, &fan, "fan-old", "WEB").await;
    let (status, _) = ctx
        .send(
            Method::POST,
            "/notification/deactivate",
            Some(&fan),
            Some(json!({"token": "fan-old"})),
        )
        .await;
    assert_eq!(status, 200);
    activate(&ctx, &other, "other-phone", "MOBILE").await;

    // Two bookings of one day: one reminder, the evening before at 09:00 KST.
    book(&ctx, &fan, id, "2099-07-01", 2).await;
    book(&ctx, &fan, id, "2099-07-01", 1).await;
    eventually("the fan's reminder is planned", || async {
        pending(&ctx, fan_id, id, "2099-07-01").await.is_some()
    })
    .await;
    let reminder = pending(&ctx, fan_id, id, "2099-07-01").await.unwrap();
    assert_eq!(
        reminder.due,
        "2099-06-30T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(reminder.title, "부산 바다축제");
    assert_eq!(reminder.body, "2099-07-01 에 부산 바다축제이 시작됩니다.");

    // Booked and cancelled: no reminder.
    let booked = book(&ctx, &other, id, "2099-07-02", 1).await;
    let rid = booked["reservationId"].as_i64().unwrap();
    eventually("the other reminder is planned", || async {
        pending(&ctx, other_id, id, "2099-07-02").await.is_some()
    })
    .await;
    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("/reservations/{rid}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, 200);
    eventually("the cancelled reminder is gone", || async {
        pending(&ctx, other_id, id, "2099-07-02").await.is_none()
    })
    .await;

    assert!(ctx.pushes.is_empty(), "nothing is due yet");
    // An hour past the due time, as after an outage of the senders.
    clock.advance(chrono::Duration::days(2) + chrono::Duration::hours(1));
    eventually("both of the fan's active devices are reminded", || async {
        ctx.pushes.len() >= 2
    })
    .await;
    // One reminder (two devices), delivered an hour late: in the 3,600 s bucket, not below.
    let base = ctx.server.url("");
    let delivered = r#"somsom_reminders_total{outcome="delivered"}"#;
    eventually("the round is counted", || async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains(&format!("{delivered} 1"))
    })
    .await;
    let bucket = |le: &str| format!("somsom_reminder_lateness_seconds_bucket{{le=\"{le}\"}}");
    assert_eq!(common::metric(&base, &bucket("1800.0")).await, 0);
    assert_eq!(common::metric(&base, &bucket("3600.0")).await, 1);
    let mut to: Vec<_> = ctx
        .pushes
        .sent()
        .into_iter()
        .map(|(d, m)| (d.token, m.title, m.collapse_id))
        .collect();
    to.sort();
    let collapse = ReminderKey {
        user: fan_id,
        festival: id,
        date: "2099-07-01".parse().unwrap(),
    }
    .id();
    assert_eq!(
        to,
        vec![
            (
                "fan-laptop".to_owned(),
                "부산 바다축제".to_owned(),
                collapse.clone()
            ),
            ("fan-phone".to_owned(), "부산 바다축제".to_owned(), collapse),
        ]
    );
    // Past the other user's would-be due time: still only those two.
    clock.advance(chrono::Duration::days(1));
    let fan = ctx.login("fan@example.com").await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the fan's list shows the reminder", || async {
        ctx.get("/notifications", Some(&fan))
            .await
            .1
            .as_array()
            .is_some_and(|l| l.len() == 1)
    })
    .await;
    let list = ctx.get("/notifications", Some(&fan)).await.1;
    assert_eq!(list[0]["festivalId"], id);
    assert_eq!(list[0]["festivalDate"], "2099-07-01");
    assert_eq!(list[0]["title"], "부산 바다축제");
    let other = ctx.login("other@example.com").await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ctx.get("/notifications", Some(&other)).await.1, json!([]));
    assert_eq!(
        ctx.pushes.len(),
        2,
        "sent once each, nothing for the cancelled booking"
    );
}

#[tokio::test]
async fn a_booking_after_the_reminder_time_is_reminded_at_once() {
    // 14:00 KST on the eve of the festival.
    let clock = clock_at("2099-06-30T05:00:00Z");
    let ctx = start_with_clock(|_| {}, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let id = festival(&ctx, &admin, "Jazz", "2099-07-01", "2099-07-01").await;
    activate(&ctx, &fan, "fan-phone", "MOBILE").await;
    book(&ctx, &fan, id, "2099-07-01", 1).await;
    eventually("the reminder goes out", || async { ctx.pushes.len() == 1 }).await;
    assert_eq!(
        ctx.pushes.sent()[0].1.body,
        "2099-07-01 에 Jazz이 시작됩니다."
    );
    // Booked after the reminder time: due at once, so not late.
    let base = ctx.server.url("");
    eventually("the round is counted", || async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("somsom_reminder_lateness_seconds_count 1")
    })
    .await;
    let on_time = r#"somsom_reminder_lateness_seconds_bucket{le="1.0"}"#;
    assert_eq!(common::metric(&base, on_time).await, 1);
}

#[tokio::test]
async fn reconciliation_plans_reminders_lost_before_planning() {
    let clock = clock_at("2099-06-01T00:00:00Z");
    let ctx = start_with_clock(|_| {}, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let fan_id = user_id(&ctx, &fan).await;
    let id = festival(&ctx, &admin, "Rock", "2099-07-01", "2099-07-02").await;
    book(&ctx, &fan, id, "2099-07-01", 1).await;
    book(&ctx, &fan, id, "2099-07-02", 1).await;
    eventually("both planned", || async {
        pending(&ctx, fan_id, id, "2099-07-02").await.is_some()
    })
    .await;
    // As if the server died between a booking's commit and its planning.
    let key = ReminderKey {
        user: fan_id,
        festival: id,
        date: "2099-07-01".parse().unwrap(),
    };
    assert!(ctx.state.push.context.scheduler.cancel(&key).await.unwrap());
    assert_eq!(
        somsom_server::push::reconcile(&ctx.state.push.context)
            .await
            .unwrap(),
        1
    );
    assert!(pending(&ctx, fan_id, id, "2099-07-01").await.is_some());
    assert_eq!(
        somsom_server::push::reconcile(&ctx.state.push.context)
            .await
            .unwrap(),
        0,
        "idempotent"
    );
}
