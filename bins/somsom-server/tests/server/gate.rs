//! Tickets at the gate: every booked ticket has a code in the booking answer, the reservation
//! list and my page; staff (granted per festival) and admins check tickets in exactly once, even
//! with 64 scans of one code racing over two nodes on MariaDB; forged, altered, cancelled and
//! other-day codes are refused each with their own code; gates that scan offline download the
//! day and upload later (first scan wins, conflicts come back); the organiser's report counts it
//! all, as JSON and CSV.

use crate::common;

use reqwest::Method;
use serde_json::{Value, json};
use test_support::mysql::TestDatabase;
use test_support::{MYSQL, require_service};

use common::{Ctx, start};

const DAY1: &str = "2099-08-01";
const DAY2: &str = "2099-08-02";

async fn festival(ctx: &Ctx, admin: &str) -> i64 {
    let (status, body) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(admin),
            Some(
                json!({"title": "입장 축제", "startDate": DAY1, "endDate": DAY2,
                        "ticketsPerDay": 10, "saleQueued": false}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn book(ctx: &Ctx, token: &str, festival: i64, day: &str, quantity: u32) -> Value {
    let (status, body) = ctx.book(token, festival, day, quantity, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn codes(reservation: &Value) -> Vec<String> {
    reservation["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn scan(ctx: &Ctx, token: &str, code: &str, day: &str) -> (u16, Value) {
    ctx.send(
        Method::POST,
        "/checkins",
        Some(token),
        Some(json!({"code": code, "gate": "A", "festivalDate": day})),
    )
    .await
}

async fn grant(ctx: &Ctx, admin: &str, email: &str, festival: Option<i64>) {
    let query = festival
        .map(|f| format!("?festivalId={f}"))
        .unwrap_or_default();
    let (status, body) = ctx
        .send(
            Method::PUT,
            &format!("/admin/staff/{email}{query}"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn tickets_check_in_once_and_every_bad_code_is_refused_with_its_own_code() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let staff = ctx.user_token("staff@example.com").await;
    let elsewhere = ctx.user_token("elsewhere@example.com").await;
    let id = festival(&ctx, &admin).await;
    let other = festival(&ctx, &admin).await;

    // Two tickets: two codes, in the answer, the list and my page alike.
    let booked = book(&ctx, &fan, id, DAY1, 2).await;
    let tickets = codes(&booked);
    assert_eq!(tickets.len(), 2);
    assert_ne!(tickets[0], tickets[1]);
    assert_eq!(booked["tickets"][1]["number"], 2);
    let (_, list) = ctx.get("/reservations", Some(&fan)).await;
    assert_eq!(codes(&list["reservations"][0]), tickets);
    let (_, me) = ctx.get("/me", Some(&fan)).await;
    assert_eq!(codes(&me["upcomingReservations"][0]), tickets);

    // Only staff of the festival (or an admin) let people in.
    let (status, body) = scan(&ctx, &fan, &tickets[0], DAY1).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    grant(&ctx, &admin, "staff@example.com", Some(id)).await;
    grant(&ctx, &admin, "elsewhere@example.com", Some(other)).await;
    let (status, _) = scan(&ctx, &elsewhere, &tickets[0], DAY1).await;
    assert_eq!(status, 403, "staff of another festival");

    let (status, first) = scan(&ctx, &staff, &tickets[0], DAY1).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["ticket"], 1);
    assert_eq!(first["gate"], "A");
    let (status, again) = scan(&ctx, &admin, &tickets[0], DAY1).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["code"], "TICKET_ALREADY_CHECKED_IN");
    assert_eq!(again["details"]["checkedInBy"], first["checkedInBy"]);
    assert_eq!(
        again["details"]["checkedInByEmail"], "staff@example.com",
        "who"
    );
    assert_eq!(again["details"]["gate"], "A");
    assert_eq!(again["details"]["checkedInAt"], first["checkedInAt"]);
    let (status, _) = scan(&ctx, &admin, &tickets[1], DAY1).await;
    assert_eq!(
        status, 200,
        "an admin checks in anywhere; the second ticket is its own"
    );

    // Forged, altered, other-day and cancelled codes: each refused with its own code.
    let mut forged = tickets[0].clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let altered = tickets[0].replacen(
        &format!(".{}.1.", booked["reservationId"]),
        &format!(".{}.3.", booked["reservationId"]),
        1,
    );
    assert_ne!(altered, tickets[0]);
    for (code, why) in [
        (forged.as_str(), "forged"),
        (altered.as_str(), "altered"),
        ("hello", "junk"),
    ] {
        let (status, body) = scan(&ctx, &staff, code, DAY1).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("TICKET_CODE_INVALID")),
            "{why}: {body}"
        );
    }
    let tomorrow = codes(&book(&ctx, &fan, id, DAY2, 1).await);
    let (status, body) = scan(&ctx, &staff, &tomorrow[0], DAY1).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("TICKET_WRONG_DAY")),
        "{body}"
    );
    assert_eq!(body["details"]["festivalDate"], DAY2);
    let cancelled = book(&ctx, &fan, id, DAY1, 1).await;
    let cancelled_code = codes(&cancelled).remove(0);
    let rid = cancelled["reservationId"].as_i64().unwrap();
    let (status, body) = ctx
        .send(
            Method::DELETE,
            &format!("/reservations/{rid}"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["tickets"],
        json!([]),
        "a cancelled reservation shows no tickets"
    );
    let (status, body) = scan(&ctx, &staff, &cancelled_code, DAY1).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("TICKET_CANCELLED")),
        "{body}"
    );

    // The organiser's report: day 1 sold 2 (of 3 booked, 1 cancelled), 2 in, none to come.
    let (status, report) = ctx
        .get(&format!("/admin/festivals/{id}/report"), Some(&admin))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["days"][0],
        json!({"date": DAY1, "capacity": 10, "sold": 2, "cancelled": 1, "checkedIn": 2, "toCome": 0})
    );
    assert_eq!(
        report["days"][1],
        json!({"date": DAY2, "capacity": 10, "sold": 1, "cancelled": 0, "checkedIn": 0, "toCome": 1})
    );
    let csv = ctx
        .http
        .get(
            ctx.server
                .url(&format!("/admin/festivals/{id}/report?format=csv")),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.text().await.unwrap(),
        format!(
            "festival_id,date,capacity,sold,cancelled,checked_in,to_come\n\
             {id},{DAY1},10,2,1,2,0\n{id},{DAY2},10,1,0,0,1\n"
        )
    );
    let (status, _) = ctx
        .get(&format!("/admin/festivals/{id}/report"), Some(&staff))
        .await;
    assert_eq!(status, 403, "the report is the organiser's");
}

#[tokio::test]
async fn an_offline_gate_downloads_the_day_and_uploads_its_scans_first_scan_winning() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let staff = ctx.user_token("staff@example.com").await;
    let id = festival(&ctx, &admin).await;
    grant(&ctx, &admin, "staff@example.com", None).await;
    let tickets = codes(&book(&ctx, &fan, id, DAY1, 3).await);
    let gone = book(&ctx, &fan, id, DAY1, 1).await;
    let rid = gone["reservationId"].as_i64().unwrap();
    ctx.send(
        Method::DELETE,
        &format!("/reservations/{rid}"),
        Some(&fan),
        None,
    )
    .await;
    // Online, the main gate lets ticket 1 in.
    let (status, _) = scan(&ctx, &staff, &tickets[0], DAY1).await;
    assert_eq!(status, 200);

    // The side gate downloads the day before the signal goes.
    let (status, list) = ctx
        .get(
            &format!("/checkins/festivals/{id}/days/{DAY1}"),
            Some(&staff),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let states: Vec<(String, String)> = list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["code"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.len(), 4);
    assert_eq!(states[0], (tickets[0].clone(), "CHECKED_IN".to_owned()));
    assert_eq!(states[1], (tickets[1].clone(), "VALID".to_owned()));
    assert_eq!(states[3].1, "CANCELLED");

    // Offline it scans tickets 1 (already in: a conflict), 2 and 2 again, and a forged code.
    let (status, results) = ctx
        .send(
            Method::POST,
            "/checkins/sync",
            Some(&staff),
            Some(json!({"gate": "side", "festivalDate": DAY1, "scans": [
                {"code": tickets[0], "scannedAt": "2099-08-01T01:00:00Z"},
                {"code": tickets[1], "scannedAt": "2099-08-01T01:01:00Z"},
                {"code": tickets[1], "scannedAt": "2099-08-01T01:02:00Z"},
                {"code": "T1.1.1.1.20990801.AAAAAAAAAAAAAAAAAAAAAA", "scannedAt": "2099-08-01T01:03:00Z"},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{results}");
    let outcome: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcome,
        [
            "TICKET_ALREADY_CHECKED_IN",
            "CHECKED_IN",
            "TICKET_ALREADY_CHECKED_IN",
            "TICKET_CODE_INVALID"
        ]
    );
    assert_eq!(
        results[0]["first"]["gate"], "A",
        "the conflict names the first check-in"
    );
    assert_eq!(results[2]["first"]["gate"], "side");
    let (_, list) = ctx
        .get(
            &format!("/checkins/festivals/{id}/days/{DAY1}"),
            Some(&staff),
        )
        .await;
    assert_eq!(list["tickets"][1]["status"], "CHECKED_IN");
    assert_eq!(list["tickets"][2]["status"], "VALID");

    // Uploads and gate names are bounded: 5,000 scans at most, names of 64 characters.
    let scans: Vec<Value> = (0..5_001)
        .map(|_| json!({"code": "x", "scannedAt": "2099-08-01T01:00:00Z"}))
        .collect();
    let (status, body) = ctx
        .send(
            Method::POST,
            "/checkins/sync",
            Some(&staff),
            Some(json!({"gate": "side", "festivalDate": DAY1, "scans": scans})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{body}"
    );
    let (status, body) = ctx
        .send(
            Method::POST,
            "/checkins",
            Some(&staff),
            Some(json!({"code": tickets[2], "gate": "g".repeat(65), "festivalDate": DAY1})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["gate"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_scans_of_one_code_over_two_nodes_let_it_in_once() {
    let mysql = require_service!(MYSQL);
    let db = TestDatabase::create(&mysql).await.unwrap();
    let on_mariadb = |c: &mut somsom_server::Config| c.database_url = db.url().to_owned();
    let a = start(on_mariadb).await;
    let b = start(on_mariadb).await;
    let admin = a.admin_token("admin@example.com").await;
    let fan = a.user_token("fan@example.com").await;
    let staff = a.user_token("staff@example.com").await;
    let id = festival(&a, &admin).await;
    grant(&a, &admin, "staff@example.com", Some(id)).await;
    let code = codes(&book(&a, &fan, id, DAY1, 1).await).remove(0);

    let scans = (0..64).map(|i| {
        let (node, staff, code) = (
            if i % 2 == 0 { &a } else { &b },
            staff.clone(),
            code.clone(),
        );
        async move { scan(node, &staff, &code, DAY1).await }
    });
    let answers = futures::future::join_all(scans).await;
    let admitted: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        admitted.len(),
        1,
        "exactly one scan lets the ticket in: {answers:?}"
    );
    for (status, body) in &answers {
        if *status != 200 {
            assert_eq!(*status, 409, "{body}");
            assert_eq!(body["code"], "TICKET_ALREADY_CHECKED_IN");
            assert_eq!(body["details"]["checkedInAt"], admitted[0]["checkedInAt"]);
        }
    }
}
