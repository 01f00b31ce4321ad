//! Waiting rooms over a real socket: the seed's five routes for the caller's own e-mail, the
//! admission token that gated bookings need, rank events pushed over SSE, admin controls, and
//! the driver admitting in batches.

use crate::common;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Ctx, start, start_with_clock};

async fn festival(ctx: &Ctx, admin: &str) -> i64 {
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(admin),
            Some(
                json!({"title": "대기열 축제", "startDate": "2099-05-01", "endDate": "2099-05-02",
                        "ticketsPerDay": 100}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

async fn book(ctx: &Ctx, token: &str, festival: i64, admission: Option<&str>) -> (u16, Value) {
    let mut req = ctx
        .http
        .post(ctx.server.url("/reservations"))
        .bearer_auth(token)
        .json(&json!({"festivalId": festival, "festivalDate": "2099-05-01"}));
    if let Some(admission) = admission {
        req = req.header("Admission-Token", admission);
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// The seed's fields of a waiting-room, rank or allowed answer (ours add the drop's state).
fn seed(body: &Value) -> Value {
    let mut kept = serde_json::Map::new();
    for key in ["allowed", "rank"] {
        if let Some(v) = body.get(key) {
            kept.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(kept)
}

async fn admin_post(ctx: &Ctx, admin: &str, path: &str) -> Value {
    let (status, body) = ctx.send(Method::POST, path, Some(admin), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn the_seeds_routes_answer_for_the_callers_own_place_only() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let ana = ctx.user_token("ana@example.com").await;
    let ben = ctx.user_token("ben@example.com").await;
    let id = festival(&ctx, &admin).await;
    let q = format!("/queues/festival{id}");
    // Paused, so that the driver admits nobody while ranks are checked.
    admin_post(&ctx, &admin, &format!("/admin/queues/festival{id}/pause")).await;

    let (status, body) = ctx
        .get(
            &format!("{q}/waiting-room/users/ana@example.com"),
            Some(&ana),
        )
        .await;
    assert_eq!(
        (status, seed(&body)),
        (200, json!({"allowed": false, "rank": 1}))
    );
    let (_, body) = ctx
        .get(
            &format!("{q}/waiting-room/users/ben@example.com"),
            Some(&ben),
        )
        .await;
    assert_eq!(seed(&body), json!({"allowed": false, "rank": 2}));
    let (_, body) = ctx
        .get(
            &format!("/api{q}/waiting-room/users/ana@example.com"),
            Some(&ana),
        )
        .await;
    assert_eq!(
        seed(&body),
        json!({"allowed": false, "rank": 1}),
        "joining again keeps the place"
    );
    let (_, body) = ctx
        .get(&format!("{q}/users/ben@example.com/rank"), Some(&ben))
        .await;
    assert_eq!(seed(&body), json!({"rank": 2}));

    // Nobody acts for somebody else, or anonymously.
    for path in [
        format!("{q}/waiting-room/users/ana@example.com"),
        format!("{q}/users/ana@example.com/rank"),
        format!("{q}/users/ana@example.com/allowed"),
    ] {
        let (status, body) = ctx.get(&path, Some(&ben)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("PERMISSION_DENIED")),
            "{path}"
        );
        let (status, _) = ctx.get(&path, None).await;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("{q}/users/ana@example.com/leave"),
            Some(&ben),
            None,
        )
        .await;
    assert_eq!(status, 403);
    // Names that are not a festival's queue, and festivals that do not exist.
    let (status, body) = ctx
        .get("/queues/queue1/users/ana@example.com/rank", Some(&ana))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")));
    let (status, body) = ctx
        .get(
            "/queues/festival999999/waiting-room/users/ana@example.com",
            Some(&ana),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("FESTIVAL_NOT_FOUND"))
    );

    // Ana leaves: Ben moves up; Ana is "not waiting".
    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("{q}/users/ana@example.com/leave"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = ctx
        .get(&format!("{q}/users/ana@example.com/rank"), Some(&ana))
        .await;
    assert_eq!(seed(&body), json!({"rank": -1}));
    let (_, body) = ctx
        .get(&format!("{q}/users/ben@example.com/rank"), Some(&ben))
        .await;
    assert_eq!(seed(&body), json!({"rank": 1}));

    // Admitted by hand: allowed, with a token; the waiting room answers the seed's shape.
    let (_, allowed, token) = ctx
        .get_admission(&format!("{q}/users/ben@example.com/allowed"), &ben)
        .await;
    assert_eq!((seed(&allowed), token), (json!({"allowed": false}), None));
    admin_post(
        &ctx,
        &admin,
        &format!("/admin/queues/festival{id}/admit?count=1"),
    )
    .await;
    let (_, allowed, token) = ctx
        .get_admission(&format!("{q}/users/ben@example.com/allowed"), &ben)
        .await;
    assert_eq!(seed(&allowed), json!({"allowed": true}));
    assert!(token.unwrap().starts_with("wq2."));
    let (_, body, token) = ctx
        .get_admission(&format!("{q}/waiting-room/users/ben@example.com"), &ben)
        .await;
    assert_eq!(seed(&body), json!({"allowed": true, "rank": null}));
    assert!(token.is_some());
    let (_, body) = ctx
        .get(&format!("{q}/users/ben@example.com/rank"), Some(&ben))
        .await;
    assert_eq!(
        seed(&body),
        json!({"rank": -1}),
        "admitted users are not waiting"
    );

    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("{q}/users/ben@example.com/leave-proceed"),
            Some(&ben),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = ctx
        .get(&format!("{q}/users/ben@example.com/allowed"), Some(&ben))
        .await;
    assert_eq!(seed(&body), json!({"allowed": false}));
}

#[tokio::test]
async fn every_booking_needs_its_own_single_use_admission() {
    let clock = cognito_auth::ManualClock::starting_now();
    let ctx = start_with_clock(|_| {}, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let other = ctx.user_token("other@example.com").await;
    let id = festival(&ctx, &admin).await;
    let q = format!("/queues/festival{id}");

    let (status, body) = book(&ctx, &fan, id, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("QUEUE_ADMISSION_REQUIRED")),
        "gated by default"
    );
    let (status, body) = book(&ctx, &fan, id, Some("wq2.forged.token")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("QUEUE_ADMISSION_INVALID"))
    );

    // Nobody waits, so the waiting room admits at once.
    let (status, body, token) = ctx
        .get_admission(&format!("{q}/waiting-room/users/fan@example.com"), &fan)
        .await;
    assert_eq!((status, body["allowed"].as_bool()), (200, Some(true)));
    let token = token.expect("admitted with a token");
    assert!(token.starts_with("wq2."), "{token}");
    let (status, body) = book(&ctx, &other, id, Some(&token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("QUEUE_ADMISSION_INVALID")),
        "a token is its holder's only"
    );
    assert_eq!(book(&ctx, &fan, id, Some(&token)).await.0, 200);
    let (status, body) = book(&ctx, &fan, id, Some(&token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("QUEUE_ADMISSION_USED")),
        "used once"
    );
    let (_, body) = ctx
        .get(&format!("{q}/users/fan@example.com/allowed"), Some(&fan))
        .await;
    assert_eq!(body["allowed"], false, "the used admission is over");

    // A festival whose sale is marked "no queue" books without one.
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(json!({"title": "줄 없는 축제", "startDate": "2099-05-01",
                        "endDate": "2099-05-02", "ticketsPerDay": 100, "saleQueued": false})),
        )
        .await;
    assert_eq!(
        (status, created["saleQueued"].as_bool()),
        (201, Some(false))
    );
    let open = created["id"].as_i64().unwrap();
    assert_eq!(book(&ctx, &other, open, None).await.0, 200);

    // An admission that is not used in time expires.
    let (_, _, token) = ctx
        .get_admission(&format!("{q}/waiting-room/users/other@example.com"), &other)
        .await;
    let token = token.expect("admitted");
    clock.advance(chrono::TimeDelta::minutes(11));
    let (status, body) = book(&ctx, &other, id, Some(&token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("QUEUE_ADMISSION_INVALID")),
        "expired"
    );

    // Resetting the policy keeps the gate: only the sale's "no queue" lifts it.
    let (status, stats) = ctx
        .send(
            Method::DELETE,
            &format!("/admin/queues/festival{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((status, stats["gated"].as_bool()), (200, Some(true)));
    assert_eq!(book(&ctx, &fan, id, None).await.0, 403);
}

/// Reads server-sent events until `want` events named `name` arrived (or another one ends it).
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(ctx: &Ctx, path: &str) -> Self {
        let response = ctx.http.get(ctx.server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's name and data.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
                        name = v.to_owned();
                    } else if let Some(v) =
                        line.strip_prefix("data: ").or(line.strip_prefix("data:"))
                    {
                        data.push_str(v);
                    }
                }
                if name.is_empty() && data.is_empty() {
                    continue; // a keep-alive comment
                }
                return (name, serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()
                .expect("the stream is still open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// A gated festival whose paused queue holds a, b and c in that order: (admin token, the three
/// users' tokens, festival id, `/queues/festival{id}`).
async fn three_waiting(ctx: &Ctx) -> (String, Vec<String>, i64, String) {
    let admin = ctx.admin_token("admin@example.com").await;
    let mut users = Vec::new();
    for name in ["a", "b", "c"] {
        users.push(ctx.user_token(&format!("{name}@example.com")).await);
    }
    let id = festival(ctx, &admin).await;
    let (status, _) = ctx
        .send(
            Method::PUT,
            &format!("/admin/queues/festival{id}"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    admin_post(ctx, &admin, &format!("/admin/queues/festival{id}/pause")).await;
    let q = format!("/queues/festival{id}");
    for (name, token) in ["a", "b", "c"].iter().zip(&users) {
        ctx.get(
            &format!("{q}/waiting-room/users/{name}@example.com"),
            Some(token),
        )
        .await;
    }
    (admin, users, id, q)
}

/// a, first in line, leaves it.
async fn first_leaves(ctx: &Ctx, q: &str, users: &[String]) {
    let (status, body) = ctx
        .send(
            Method::DELETE,
            &format!("{q}/users/a@example.com/leave"),
            Some(&users[0]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn ranks_and_admission_are_pushed_as_server_sent_events() {
    let ctx = start(|c| c.queue.watch_poll_ms = 20).await;
    let (admin, users, id, q) = three_waiting(&ctx).await;
    // EventSource cannot set headers: the token comes in the query.
    let mut events = Events::open(&ctx, &format!("{q}/events?access_token={}", users[2])).await;
    let (name, first) = events.next().await;
    assert_eq!(name, "rank");
    assert_eq!(
        (
            first["rank"].as_i64(),
            first["ahead"].as_u64(),
            first["waiting"].as_u64()
        ),
        (Some(3), Some(2), Some(3))
    );
    assert!(first["estimatedWaitSecs"].is_null(), "paused: no estimate");

    first_leaves(&ctx, &q, &users).await;
    let (name, moved) = events.next().await;
    assert_eq!((name.as_str(), moved["rank"].as_i64()), ("rank", Some(2)));

    admin_post(
        &ctx,
        &admin,
        &format!("/admin/queues/festival{id}/admit?count=2"),
    )
    .await;
    let (name, admitted) = events.next().await;
    assert_eq!(name, "admitted");
    assert_eq!(admitted["allowed"], true);
    let token = admitted["admissionToken"].as_str().unwrap();
    assert_eq!(book(&ctx, &users[2], id, Some(token)).await.0, 200);

    // Without credentials there is no stream.
    let res = ctx
        .http
        .get(ctx.server.url(&format!("{q}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_driver_admits_a_batch_per_interval() {
    let clock = cognito_auth::ManualClock::starting_now();
    // Nobody is admitted at join, even into an empty line: only ticks admit.
    let ctx = start_with_clock(|c| c.queue.admit_when_idle = false, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let id = festival(&ctx, &admin).await;
    let (status, _) = ctx
        .send(
            Method::PUT,
            &format!("/admin/queues/festival{id}"),
            Some(&admin),
            Some(json!({"batchSize": 2, "intervalMs": 60000})),
        )
        .await;
    assert_eq!(status, 200);
    let stat = |field: &'static str| {
        let (ctx, admin) = (&ctx, admin.clone());
        async move {
            let (_, stats) = ctx
                .get(&format!("/admin/queues/festival{id}"), Some(&admin))
                .await;
            stats[field].as_u64().unwrap()
        }
    };
    // Waits for the background driver (the queue's clock does not move by itself).
    let until = |field: &'static str, want: u64| async move {
        common::eventually(field, || async { stat(field).await >= want }).await;
        stat(field).await
    };
    // The configured queue's first tick comes at once, with nobody waiting yet.
    assert_eq!(until("tick", 1).await, 1);
    for i in 0..5 {
        let email = format!("u{i}@example.com");
        let token = ctx.user_token(&email).await;
        ctx.get(
            &format!("/queues/festival{id}/waiting-room/users/{email}"),
            Some(&token),
        )
        .await;
    }
    assert_eq!(stat("admittedTotal").await, 0, "not before the interval");
    clock.advance(chrono::TimeDelta::seconds(60));
    assert_eq!(until("admittedTotal", 2).await, 2, "one batch per tick");
    clock.advance(chrono::TimeDelta::seconds(59));
    assert_eq!(stat("admittedTotal").await, 2, "not before the interval");
    clock.advance(chrono::TimeDelta::seconds(1));
    assert_eq!(until("admittedTotal", 4).await, 4);
    let (_, stats) = ctx
        .get(&format!("/admin/queues/festival{id}"), Some(&admin))
        .await;
    assert_eq!(
        (stats["waiting"].as_u64(), stats["admitted"].as_u64()),
        (Some(1), Some(4))
    );
}

#[tokio::test]
async fn admin_routes_are_for_admins_and_check_their_input() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let (status, body) = ctx.get("/admin/queues/festival1", Some(&admin)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("FESTIVAL_NOT_FOUND")),
        "no queue for a festival that does not exist"
    );
    let id = festival(&ctx, &admin).await;
    assert_eq!(id, 1);
    let (status, _) = ctx.get("/admin/queues/festival1", Some(&fan)).await;
    assert_eq!(status, 403);
    let (status, stats) = ctx.get("/admin/queues/festival1", Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (stats["waiting"].as_u64(), stats["batchSize"].as_u64()),
        (Some(0), Some(10))
    );
    let (status, body) = ctx
        .send(
            Method::PUT,
            "/admin/queues/festival1",
            Some(&admin),
            Some(json!({"batchSize": 0})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = ctx
        .send(
            Method::PUT,
            "/admin/queues/festival1",
            Some(&admin),
            Some(json!({"batch": 3})),
        )
        .await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let (status, _) = ctx
        .send(
            Method::POST,
            "/admin/queues/festival1/admit?count=0",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqs_driver_admits_through_tick_messages() {
    let endpoint = test_support::require_service!(test_support::AWS);
    let sqs_queue = test_support::unique_name("ticks");
    let ctx = start(|c| {
        c.aws.endpoint_url = Some(endpoint.clone());
        c.aws.region = Some("ap-northeast-2".into());
        c.queue.driver = somsom_server::config::QueueDriver::Sqs;
        c.queue.sqs_queue = sqs_queue.clone();
        // No delay between tick messages, so the test does not wait for SQS delays.
        c.queue.interval_ms = 0;
        c.queue.batch_size = 2;
        c.queue.admit_when_idle = false;
    })
    .await;
    let admin = ctx.admin_token("admin@example.com").await;
    let id = festival(&ctx, &admin).await;
    let mut fans = Vec::new();
    for i in 0..5 {
        let email = format!("fan{i}@example.com");
        let token = ctx.user_token(&email).await;
        fans.push((email, token));
    }
    for (email, token) in &fans {
        let (_, body) = ctx
            .get(
                &format!("/queues/festival{id}/waiting-room/users/{email}"),
                Some(token),
            )
            .await;
        assert_eq!(body["allowed"], false);
    }
    // Waits for the chain of tick messages (kicked within a few seconds, then one per tick).
    let stats = || async {
        ctx.get(&format!("/admin/queues/festival{id}"), Some(&admin))
            .await
            .1
    };
    common::eventually("five admitted through SQS", || async {
        stats().await["admittedTotal"] == 5
    })
    .await;
    let stats = stats().await;
    assert_eq!(stats["admittedTotal"], 5, "{stats}");
    // At most a batch per tick (a chain may also have started between two joins).
    assert!(stats["tick"].as_u64().unwrap() >= 3, "{stats}");
    for (email, token) in &fans {
        let (_, body) = ctx
            .get(
                &format!("/queues/festival{id}/users/{email}/allowed"),
                Some(token),
            )
            .await;
        assert_eq!(body, json!({"allowed": true}));
    }
}

#[tokio::test]
async fn ranks_and_admission_are_pushed_over_the_chat_stomp_connection() {
    use chat_relay::client::Client;
    use chat_relay::stomp::Command;

    let ctx = start(|c| c.queue.watch_poll_ms = 20).await;
    let (admin, users, id, q) = three_waiting(&ctx).await;
    async fn next(client: &mut Client) -> Value {
        let frame = tokio::time::timeout(Duration::from_secs(30), client.next_frame())
            .await
            .expect("a frame within 30 s")
            .unwrap()
            .expect("open");
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        assert_eq!(frame.header("subscription"), Some("rank"));
        serde_json::from_slice::<Value>(&frame.body).unwrap()
    }

    // c's own place, on c's connection: the destination names the queue, never the user.
    let mut c = ctx.stomp(&users[2]).await;
    c.subscribe("rank", &format!("/user/queue/rank/festival{id}"), &[])
        .await
        .unwrap();
    let first = next(&mut c).await;
    assert_eq!(
        (
            first["event"].as_str(),
            first["rank"].as_i64(),
            first["ahead"].as_u64(),
            first["waiting"].as_u64()
        ),
        (Some("rank"), Some(3), Some(2), Some(3))
    );

    first_leaves(&ctx, &q, &users).await;
    let moved = next(&mut c).await;
    assert_eq!(
        (moved["event"].as_str(), moved["rank"].as_i64()),
        (Some("rank"), Some(2))
    );

    admin_post(
        &ctx,
        &admin,
        &format!("/admin/queues/festival{id}/admit?count=2"),
    )
    .await;
    let admitted = next(&mut c).await;
    assert_eq!(admitted["event"], "admitted");
    assert_eq!(admitted["allowed"], true);
    let token = admitted["admissionToken"].as_str().unwrap();
    assert_eq!(book(&ctx, &users[2], id, Some(token)).await.0, 200);

    // A malformed queue name is refused with an ERROR frame.
    let mut b = ctx.stomp(&users[1]).await;
    b.subscribe("rank", "/user/queue/rank/festivalX", &[])
        .await
        .unwrap();
    let refused = b.next_frame().await.unwrap().expect("an ERROR frame");
    assert_eq!(refused.command, Command::Error, "{refused:?}");
    assert_eq!(
        refused.header("message"),
        Some("ranks are /user/queue/rank/festival{id}")
    );
}

/// A node shutting down ends its event streams with a `reconnect` event, so pages reconnect
/// (to another node) at once instead of waiting for the browser's retry.
#[tokio::test]
async fn a_shutdown_tells_event_streams_to_reconnect() {
    let mut ctx = start(|c| c.queue.watch_poll_ms = 20).await;
    let (_admin, users, _id, q) = three_waiting(&ctx).await;
    let mut events = Events::open(&ctx, &format!("{q}/events?access_token={}", users[2])).await;
    assert_eq!(events.next().await.0, "rank");
    ctx.server.begin_shutdown();
    let (name, body) = events.next().await;
    assert_eq!(name, "reconnect", "{body}");
    assert_eq!(body["reason"], "server shutting down");
}
