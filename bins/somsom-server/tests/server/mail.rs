//! Confirmation e-mails through the SMTP server sign-up codes use (a real SMTP sink here):
//! booking and cancellation, each once, in Korean and English, the booking's with its ticket
//! codes; and off a durable outbox, so that a server killed (SIGKILL) between the bookings and
//! their mails sends every one of them, once, after it restarts.

use crate::common;

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};
use somsom_server::db::Database;
use somsom_server::mail::outbox;
use test_support::smtp::SmtpSink;
use test_support::{PYTHON, require_service};

use common::{ServerProcess, eventually, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_and_cancellations_are_mailed_once_in_korean_and_english() {
    let python = require_service!(PYTHON);
    let sink = SmtpSink::start(&python);
    let url = sink.url();
    let ctx = start(|c| c.smtp_url = Some(url)).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(
                json!({"title": "편지 축제", "startDate": "2099-08-01", "endDate": "2099-08-01",
                        "saleQueued": false}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, booked) = ctx.book(&fan, id, "2099-08-01", 2, None).await;
    assert_eq!(status, 200, "{booked}");
    let rid = booked["reservationId"].as_i64().unwrap();
    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("/reservations/{rid}"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(status, 200);

    eventually("both confirmations are sent", || async {
        outbox::pending(&ctx.db).await.unwrap() == 0 && sink.messages().len() >= 2
    })
    .await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "one mail each: {mails:?}");
    // Sent concurrently: find each by its subject.
    let about = |word: &str| {
        mails
            .iter()
            .find(|m| m["subject"].as_str().unwrap().contains(word))
            .unwrap_or_else(|| panic!("a mail about {word}: {mails:?}"))
    };
    let booking = about("Booking confirmed");
    assert_eq!(booking["to"], json!(["fan@example.com"]));
    let subject = booking["subject"].as_str().unwrap();
    assert!(
        subject.contains("예매 완료") && subject.contains("Booking confirmed"),
        "{subject}"
    );
    let body = booking["body"].as_str().unwrap();
    assert!(
        body.contains("예매가 완료되었습니다") && body.contains("your tickets are booked"),
        "{body}"
    );
    for ticket in booked["tickets"].as_array().unwrap() {
        assert!(
            body.contains(ticket["code"].as_str().unwrap()),
            "the mail carries every ticket: {body}"
        );
    }
    let cancellation = about("Booking cancelled");
    let subject = cancellation["subject"].as_str().unwrap();
    assert!(
        subject.contains("예매 취소") && subject.contains("Booking cancelled"),
        "{subject}"
    );
}

/// The reservation each mail is about (`예매 번호: N` in its body).
fn reservation_of(mail: &Value) -> i64 {
    let body = mail["body"].as_str().unwrap();
    let at = body.find("예매 번호: ").unwrap() + "예매 번호: ".len();
    body[at..].lines().next().unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_before_it_mailed_sends_every_confirmation_once_after_restart() {
    const BUYERS: usize = 8;
    let python = require_service!(PYTHON);
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/data/somsom.db", dir.path().display());

    // Accounts and a festival, made by an in-process node on the same database.
    let setup = start(|c| c.database_url = db_url.clone()).await;
    let admin = setup.admin_token("admin@example.com").await;
    let (status, created) = setup
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(
                json!({"title": "정전 편지", "startDate": "2099-08-01", "endDate": "2099-08-01",
                        "saleQueued": false}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let festival = created["id"].as_i64().unwrap();
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        buyers.push(setup.user_token(&format!("buyer{i}@example.com")).await);
    }
    setup.server.shutdown().await;

    // The SMTP server is not up yet: the bookings commit, their mails wait in the outbox.
    let smtp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let envs = [
        ("SOMSOM_DATABASE_URL", db_url.as_str()),
        ("SOMSOM_SMTP_URL", smtp_url.as_str()),
    ];
    let mut first = ServerProcess::spawn(dir.path(), &envs);
    let http = reqwest::Client::new();
    let mut booked = Vec::new();
    for token in &buyers {
        let response = http
            .post(first.url("/reservations"))
            .bearer_auth(token)
            .json(&json!({"festivalId": festival, "festivalDate": "2099-08-01"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        booked.push(body["reservationId"].as_i64().unwrap());
    }
    let db = Database::connect(&db_url).await.unwrap();
    eventually("every booking's mail is in the outbox", || async {
        outbox::pending(&db).await.unwrap() == BUYERS as i64
    })
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    // SMTP comes up; the restarted server sends what the killed one could not, once each.
    let sink = SmtpSink::start_on(&python, smtp_port);
    let _second = ServerProcess::spawn(dir.path(), &envs);
    eventually("every confirmation is sent", || async {
        outbox::pending(&db).await.unwrap() == 0
    })
    .await;
    let mut per_reservation: HashMap<i64, usize> = HashMap::new();
    for mail in sink.messages() {
        *per_reservation.entry(reservation_of(&mail)).or_default() += 1;
    }
    let expected: HashMap<i64, usize> = booked.iter().map(|id| (*id, 1)).collect();
    assert_eq!(
        per_reservation, expected,
        "every booking mailed exactly once"
    );
}
