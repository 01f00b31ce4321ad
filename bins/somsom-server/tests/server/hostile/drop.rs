//! The ticket drop: a sale that opens at a set time, a pre-queue put in a random order at the
//! opening, admissions that allow one booking each, and a line that closes when the tickets are
//! gone. Every way to skip the line is tried, and the stock is read back afterwards.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::mysql::TestDatabase;
use test_support::{MYSQL, REDIS, require_service, unique_name};

use crate::common::{Ctx, start_with_clock};

/// Creates a festival on 2099-05-01..02 with `tickets` per day and `extra` fields.
async fn festival(ctx: &Ctx, admin: &str, tickets: u32, extra: Value) -> i64 {
    let mut body = json!({"title": "드롭 축제", "startDate": "2099-05-01", "endDate": "2099-05-02",
                          "ticketsPerDay": tickets});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = ctx
        .send(Method::POST, "/festivals/create", Some(admin), Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

fn at(clock: &cognito_auth::ManualClock, ahead: TimeDelta) -> String {
    use cognito_auth::Clock;
    (clock.now() + ahead).to_rfc3339()
}

async fn stats(ctx: &Ctx, admin: &str, id: i64) -> Value {
    let (status, stats) = ctx
        .get(&format!("/admin/queues/festival{id}"), Some(admin))
        .await;
    assert_eq!(status, 200, "{stats}");
    stats
}

async fn admin_post(ctx: &Ctx, admin: &str, path: &str) {
    let (status, body) = ctx.send(Method::POST, path, Some(admin), None).await;
    assert_eq!(status, 200, "{path}: {body}");
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

/// `n` confirmed users: (e-mail, access token).
async fn users(ctx: &Ctx, prefix: &str, n: usize) -> Vec<(String, String)> {
    let mut users = Vec::new();
    for i in 0..n {
        let email = format!("{prefix}{i}@example.com");
        let token = ctx.user_token(&email).await;
        users.push((email, token));
    }
    users
}

/// Each user's rank, by asking each (the API's own answer).
async fn ranks(ctx: &Ctx, id: i64, users: &[(String, String)]) -> Vec<(i64, String)> {
    let mut ranks = Vec::new();
    for (email, token) in users {
        let (status, body) = ctx
            .get(
                &format!("/queues/festival{id}/users/{email}/rank"),
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ranks.push((body["rank"].as_i64().unwrap(), email.clone()));
    }
    ranks.sort();
    ranks
}

#[tokio::test]
async fn nobody_books_before_the_opening_and_early_arrivals_are_put_in_a_random_order() {
    let clock = cognito_auth::ManualClock::starting_now();
    let ctx = start_with_clock(|_| {}, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    // Within the access tokens' lifetime, so nobody has to log in again.
    let opens = at(&clock, TimeDelta::minutes(10));
    let id = festival(&ctx, &admin, 100, json!({"saleOpensAt": opens})).await;
    let (_, detail) = ctx
        .send(Method::GET, &format!("/festivals/{id}"), None, None)
        .await;
    assert_eq!(detail["saleState"], "UPCOMING");

    let early = users(&ctx, "early", 12).await;
    // Booking before the opening: refused with its code, and told when to come back.
    let res = ctx
        .http
        .post(ctx.server.url("/reservations"))
        .bearer_auth(&early[0].1)
        .json(&json!({"festivalId": id, "festivalDate": "2099-05-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "SALE_NOT_OPEN");

    // Everyone who comes before the opening waits for it, without a rank.
    for (email, token) in &early {
        let (status, body, admission) = ctx.join(token, id, email).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (
                body["allowed"].as_bool(),
                body["waitingForOpening"].as_bool(),
                body["rank"].is_null(),
                admission
            ),
            (Some(false), Some(true), true, None)
        );
        let opens_at: DateTime<Utc> = body["opensAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(opens_at, opens.parse::<DateTime<Utc>>().unwrap());
        assert!(
            body["estimatedWaitSecs"].as_f64().unwrap() >= 599.0,
            "{body}"
        );
    }
    // Leaving and coming back before the opening does not re-roll anyone's place.
    let (email, token) = &early[3];
    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("/queues/festival{id}/users/{email}/leave"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ctx.join(token, id, email).await.1["waitingForOpening"],
        true
    );
    let before = stats(&ctx, &admin, id).await;
    assert_eq!(
        (before["preQueue"].as_u64(), before["shuffleSeed"].is_null()),
        (Some(12), true),
        "the seed stays secret until the opening: {before}"
    );
    // Nobody is admitted during the opening while the ranks are read.
    admin_post(&ctx, &admin, &format!("/admin/queues/festival{id}/pause")).await;

    clock.advance(TimeDelta::minutes(11));
    let late = users(&ctx, "late", 2).await;
    for (i, (email, token)) in late.iter().enumerate() {
        let (_, body, _) = ctx.join(token, id, email).await;
        assert_eq!(
            (body["waitingForOpening"].as_bool(), body["rank"].as_i64()),
            (Some(false), Some(13 + i as i64)),
            "later arrivals queue behind the whole pre-queue: {body}"
        );
    }
    let after = stats(&ctx, &admin, id).await;
    let seed: u64 = after["shuffleSeed"].as_str().unwrap().parse().unwrap();
    assert_eq!(after["preQueue"], 0);
    // The order is the lottery's for the recorded seed: anyone can check it.
    let emails: Vec<&str> = early.iter().map(|(e, _)| e.as_str()).collect();
    let expected = waiting_queue::lottery::order(seed, &emails);
    let got = ranks(&ctx, id, &early).await;
    assert_eq!(
        got.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    assert_eq!(
        got.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        expected
    );
    assert_ne!(expected, emails, "not the order of arrival");
}

#[tokio::test]
async fn an_admission_allows_one_booking_by_its_holder() {
    let clock = cognito_auth::ManualClock::starting_now();
    let ctx = start_with_clock(|_| {}, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let id = festival(&ctx, &admin, 20, json!({})).await;
    let people = users(&ctx, "fan", 3).await;
    let ((fan, fan_token), (other, other_token)) = (&people[0], &people[1]);

    let (_, _, admission) = ctx.join(fan_token, id, fan).await;
    let admission = admission.expect("a quiet line admits at once");
    // The same admission, fired eight times at once: one booking.
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (ctx_http, url) = (ctx.http.clone(), ctx.server.url("/reservations"));
        let (token, admission) = (fan_token.clone(), admission.clone());
        tries.spawn(async move {
            let res = ctx_http
                .post(url)
                .bearer_auth(token)
                .header("Admission-Token", admission)
                .json(&json!({"festivalId": id, "festivalDate": "2099-05-01", "quantity": 2}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = tries.join_next().await {
        let (status, body) = done.unwrap();
        answers.push((status, body["code"].as_str().map(str::to_owned)));
    }
    answers.sort();
    assert_eq!(answers[0], (200, None));
    assert!(
        answers[1..]
            .iter()
            .all(|a| *a == (409, Some("QUEUE_ADMISSION_USED".to_owned()))),
        "{answers:?}"
    );
    // Used: not for another day either, nor by anyone it is handed to.
    let again = ctx
        .book(fan_token, id, "2099-05-02", 1, Some(&admission))
        .await;
    assert_eq!(code(&again), (409, Some("QUEUE_ADMISSION_USED")));
    let shared = ctx
        .book(other_token, id, "2099-05-02", 1, Some(&admission))
        .await;
    assert_eq!(code(&shared), (403, Some("QUEUE_ADMISSION_INVALID")));

    // Two admissions by ending one and joining again: only the newest counts.
    let (_, _, first) = ctx.join(other_token, id, other).await;
    let first = first.unwrap();
    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("/queues/festival{id}/users/{other}/leave-proceed"),
            Some(other_token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, _, second) = ctx.join(other_token, id, other).await;
    let second = second.unwrap();
    let old = ctx
        .book(other_token, id, "2099-05-01", 1, Some(&first))
        .await;
    assert_eq!(code(&old), (403, Some("QUEUE_ADMISSION_INVALID")));
    // Joining again while admitted keeps the same admission.
    let (_, _, same) = ctx.join(other_token, id, other).await;
    assert_eq!(same.as_deref(), Some(second.as_str()));
    assert_eq!(
        ctx.book(other_token, id, "2099-05-01", 1, Some(&second))
            .await
            .0,
        200
    );

    // A refused booking gives its admission back, to try again while it lasts.
    let (third, third_token) = &people[2];
    let (_, _, admission) = ctx.join(third_token, id, third).await;
    let admission = admission.unwrap();
    let refused = ctx
        .book(third_token, id, "2099-06-01", 1, Some(&admission))
        .await;
    assert_eq!(code(&refused), (404, Some("TICKET_NOT_FOUND")));
    assert_eq!(
        ctx.book(third_token, id, "2099-05-02", 1, Some(&admission))
            .await
            .0,
        200
    );

    let s = stats(&ctx, &admin, id).await;
    assert_eq!(s["admissionsConsumed"], 3, "{s}");
    assert_eq!(
        ctx.left(id).await,
        [("2099-05-01".into(), 17), ("2099-05-02".into(), 19)],
        "exactly the three bookings were sold"
    );
}

#[tokio::test]
async fn a_closed_sale_refuses_bookings_and_joins() {
    let clock = cognito_auth::ManualClock::starting_now();
    let ctx = start_with_clock(|_| {}, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let (opens, closes) = (
        at(&clock, TimeDelta::minutes(1)),
        at(&clock, TimeDelta::minutes(20)),
    );
    let id = festival(
        &ctx,
        &admin,
        10,
        json!({"saleOpensAt": opens, "saleClosesAt": closes}),
    )
    .await;
    let fan = ctx.user_token("fan@example.com").await;
    // A sale that closes before it opens is refused, at creation and by a change.
    let (status, body) = ctx
        .send(
            Method::PATCH,
            &format!("/festivals/{id}"),
            Some(&admin),
            Some(json!({"saleClosesAt": at(&clock, TimeDelta::seconds(30))})),
        )
        .await;
    assert_eq!(
        (status, body["errors"]["saleClosesAt"].is_string()),
        (400, true),
        "{body}"
    );
    clock.advance(TimeDelta::minutes(2));
    let (_, _, admission) = ctx.join(&fan, id, "fan@example.com").await;
    let admission = admission.expect("open, and nobody waits");
    // The opening took effect: it cannot move any more.
    let (status, body) = ctx
        .send(
            Method::PATCH,
            &format!("/festivals/{id}"),
            Some(&admin),
            Some(json!({"saleOpensAt": at(&clock, TimeDelta::minutes(10))})),
        )
        .await;
    assert_eq!(
        (status, body["errors"]["saleOpensAt"].is_string()),
        (400, true),
        "{body}"
    );

    // Past the close (and within the tokens' 30 minutes).
    clock.advance(TimeDelta::minutes(19));
    let late = ctx.book(&fan, id, "2099-05-01", 1, Some(&admission)).await;
    assert_eq!(code(&late), (403, Some("SALE_CLOSED")));
    let (status, body, _) = ctx.join(&fan, id, "fan@example.com").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("SALE_CLOSED")));
    let (_, detail) = ctx
        .send(Method::GET, &format!("/festivals/{id}"), None, None)
        .await;
    assert_eq!(detail["saleState"], "CLOSED");
    assert_eq!(ctx.left(id).await[0].1, 10, "nothing sold");
}

/// Reads one server-sent event (name, data) from `response`, skipping keep-alives.
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> (String, Value) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut name, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() {
                return (name, serde_json::from_str(&data).unwrap());
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .expect("the stream is still open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn sold_out_closes_the_line_tells_the_waiters_and_reopens_on_cancellation() {
    let clock = cognito_auth::ManualClock::starting_now();
    let ctx = start_with_clock(|c| c.queue.watch_poll_ms = 20, clock.clone()).await;
    let admin = ctx.admin_token("admin@example.com").await;
    // One day of two tickets.
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(
                json!({"title": "매진", "startDate": "2099-05-01", "endDate": "2099-05-01",
                        "ticketsPerDay": 2}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_i64().unwrap();
    let people = users(&ctx, "buyer", 4).await;
    let (_, _, first) = ctx.join(&people[0].1, id, &people[0].0).await;
    let first = first.unwrap();
    admin_post(&ctx, &admin, &format!("/admin/queues/festival{id}/pause")).await;
    for (email, token) in &people[1..3] {
        assert_eq!(ctx.join(token, id, email).await.1["allowed"], false);
    }
    let (waiter, waiter_token) = &people[2];
    let mut stream = ctx
        .http
        .get(ctx.server.url(&format!("/queues/festival{id}/events")))
        .bearer_auth(waiter_token)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let (name, body) = next_event(&mut stream, &mut buffer).await;
    assert_eq!((name.as_str(), body["rank"].as_i64()), ("rank", Some(2)));

    let booked = ctx
        .book(&people[0].1, id, "2099-05-01", 2, Some(&first))
        .await;
    assert_eq!(booked.0, 200, "{}", booked.1);
    // Every waiter is told, on every channel: the stream, the polling answers; newcomers are
    // turned away.
    let (name, body) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(
        (name.as_str(), body["soldOut"].as_bool()),
        ("soldOut", Some(true)),
        "{body}"
    );
    let (_, rank) = ctx
        .get(
            &format!("/queues/festival{id}/users/{waiter}/rank"),
            Some(waiter_token),
        )
        .await;
    assert_eq!(
        (rank["soldOut"].as_bool(), rank["rank"].as_i64()),
        (Some(true), Some(2))
    );
    let (newcomer, newcomer_token) = &people[3];
    let (status, body, _) = ctx.join(newcomer_token, id, newcomer).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("QUEUE_SOLD_OUT"))
    );
    admin_post(&ctx, &admin, &format!("/admin/queues/festival{id}/resume")).await;
    admin_post(
        &ctx,
        &admin,
        &format!("/admin/queues/festival{id}/admit?count=5"),
    )
    .await;
    let s = stats(&ctx, &admin, id).await;
    assert_eq!(
        (s["soldOut"].as_bool(), s["waiting"].as_u64()),
        (Some(true), Some(2)),
        "{s}"
    );

    // A cancellation brings tickets back: admission resumes, in order.
    let reservation = booked.1["reservationId"].as_i64().unwrap();
    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("/reservations/{reservation}"),
            Some(&people[0].1),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let s = stats(&ctx, &admin, id).await;
    assert_eq!(s["soldOut"], false, "{s}");
    clock.advance(TimeDelta::seconds(2));
    loop {
        let (name, body) = next_event(&mut stream, &mut buffer).await;
        if name == "admitted" {
            let token = body["admissionToken"].as_str().unwrap();
            let waiter_booking = ctx
                .book(waiter_token, id, "2099-05-01", 1, Some(token))
                .await;
            assert_eq!(waiter_booking.0, 200, "{}", waiter_booking.1);
            break;
        }
        assert!(name == "rank", "{name}: {body}");
        assert_eq!(body["soldOut"], false, "{body}");
    }
    let (_, ahead) = ctx
        .get(
            &format!("/queues/festival{id}/users/{}/allowed", people[1].0),
            Some(&people[1].1),
        )
        .await;
    assert_eq!(ahead["allowed"], true, "the one ahead was admitted first");
    assert_eq!(ctx.left(id).await[0].1, 1);
}

/// Two nodes on one MariaDB and one Redis, on one clock.
async fn two_nodes(
    mysql: &str,
    redis: &str,
    clock: &cognito_auth::ManualClock,
) -> (Ctx, Ctx, TestDatabase) {
    let db = TestDatabase::create(mysql).await.unwrap();
    let prefix = format!("{}:", unique_name("drop"));
    let tweak = |c: &mut somsom_server::Config| {
        c.database_url = db.url().to_owned();
        c.redis_url = Some(redis.to_owned());
        c.redis_key_prefix = prefix.clone();
    };
    let a = start_with_clock(tweak, clock.clone()).await;
    let b = start_with_clock(tweak, clock.clone()).await;
    (a, b, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_hold_one_lottery_and_one_admission_per_user() {
    let mysql = require_service!(MYSQL);
    let redis = require_service!(REDIS);
    let clock = cognito_auth::ManualClock::starting_now();
    let (a, b, _db) = two_nodes(&mysql, &redis, &clock).await;
    let admin = a.admin_token("admin@example.com").await;
    let opens = at(&clock, TimeDelta::minutes(10));
    let id = festival(&a, &admin, 5, json!({"saleOpensAt": opens})).await;
    let people = users(&a, "node", 10).await;
    // Joins alternate between the nodes, and each user joins through both at once.
    let mut joins = tokio::task::JoinSet::new();
    for (i, (email, token)) in people.iter().enumerate() {
        for node in [&a, &b] {
            let (http, url) = (
                node.http.clone(),
                node.server
                    .url(&format!("/queues/festival{id}/waiting-room/users/{email}")),
            );
            let token = token.clone();
            joins.spawn(async move {
                let res = http.get(url).bearer_auth(token).send().await.unwrap();
                (i, res.json::<Value>().await.unwrap())
            });
        }
    }
    while let Some(done) = joins.join_next().await {
        let (i, body) = done.unwrap();
        assert_eq!(body["waitingForOpening"], true, "user {i}: {body}");
    }
    assert_eq!(stats(&b, &admin, id).await["preQueue"], 10);
    admin_post(&b, &admin, &format!("/admin/queues/festival{id}/pause")).await;

    clock.advance(TimeDelta::minutes(10));
    // Both nodes see the one shuffle.
    crate::common::eventually("the shuffle", || async {
        stats(&a, &admin, id).await["shuffleSeed"].is_string()
    })
    .await;
    let seed: u64 = stats(&a, &admin, id).await["shuffleSeed"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let emails: Vec<&str> = people.iter().map(|(e, _)| e.as_str()).collect();
    let expected = waiting_queue::lottery::order(seed, &emails);
    for node in [&a, &b] {
        let got: Vec<String> = ranks(node, id, &people)
            .await
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(got, expected);
    }

    // The first in line is admitted; their admission is fired at both nodes at once.
    admin_post(
        &a,
        &admin,
        &format!("/admin/queues/festival{id}/admit?count=1"),
    )
    .await;
    let winner = people.iter().find(|(e, _)| *e == expected[0]).unwrap();
    let (_, _, admission) = b.join(&winner.1, id, &winner.0).await;
    let admission = admission.expect("admitted");
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (http, url) = (node.http.clone(), node.server.url("/reservations"));
        let (token, admission) = (winner.1.clone(), admission.clone());
        tries.spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .header("Admission-Token", admission)
                .json(&json!({"festivalId": id, "festivalDate": "2099-05-01"}))
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(done) = tries.join_next().await {
        statuses.push(done.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409]);
    // Somebody else in line, without an admission, through either node: refused.
    let loser = people.iter().find(|(e, _)| *e == expected[1]).unwrap();
    for node in [&a, &b] {
        let refused = node.book(&loser.1, id, "2099-05-01", 1, None).await;
        assert_eq!(code(&refused), (403, Some("QUEUE_ADMISSION_REQUIRED")));
        let borrowed = node
            .book(&loser.1, id, "2099-05-01", 1, Some(&admission))
            .await;
        assert_eq!(code(&borrowed), (403, Some("QUEUE_ADMISSION_INVALID")));
    }
    assert_eq!(
        a.left(id).await,
        [("2099-05-01".into(), 4), ("2099-05-02".into(), 5)],
        "one ticket sold, once"
    );
}
