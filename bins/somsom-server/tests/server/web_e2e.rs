//! The web app in a real browser: `tests/web/e2e.cjs` drives Debian's Chromium through
//! playwright-core against this server on loopback (sign up → confirm → log in → search →
//! waiting room → booking → my page → chat between two browsers across a dropped connection →
//! cancel; the tickets' QR codes read back by an independent decoder, offline, and checked in
//! at the scanner page; the admin page; accessibility checks), and saves screenshots of every page at phone
//! and desktop widths under the target directory (`e2e-screenshots`).

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use cognito_auth::sender::MemorySender;
use reqwest::Method;
use serde_json::json;
use test_support::{NODE_MODULES, require_service};

/// The Chromium binary for browser tests (`/usr/bin/chromium`).
const CHROMIUM: &str = "TEST_CHROMIUM";

async fn code(
    State(codes): State<Arc<MemorySender>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<String, http::StatusCode> {
    codes
        .last_code(&q["email"])
        .ok_or(http::StatusCode::NOT_FOUND)
}

/// Reads a QR code out of a PNG with rqrr, a decoder independent of the server's encoder.
async fn decode_qr(png: axum::body::Bytes) -> Result<String, http::StatusCode> {
    let unreadable = |_| http::StatusCode::UNPROCESSABLE_ENTITY;
    let picture = image::load_from_memory(&png)
        .map_err(unreadable)?
        .to_luma8();
    let (width, height) = (picture.width() as usize, picture.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        picture.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    let grid = grids
        .first()
        .ok_or(http::StatusCode::UNPROCESSABLE_ENTITY)?;
    let (_, content) = grid
        .decode()
        .map_err(|_| http::StatusCode::UNPROCESSABLE_ENTITY)?;
    Ok(content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_works_in_a_real_browser() {
    let chromium = require_service!(CHROMIUM);
    let modules = require_service!(NODE_MODULES);
    assert!(
        std::path::Path::new(&modules)
            .join("playwright-core")
            .is_dir(),
        "{modules} has no playwright-core (scripts/services.sh installs it)"
    );
    // The system clock: the waiting room admits as real time passes.
    let ctx = common::start_on(
        |config| {
            // Every booking goes through the waiting room, which admits one person every 500 ms.
            config.queue.batch_size = 1;
            config.queue.interval_ms = 500;
            config.auth.attempts_per_address_per_minute = 10_000;
        },
        None,
    )
    .await;
    let codes = ctx.codes.clone();
    let oracle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oracle_addr: SocketAddr = oracle.local_addr().unwrap();
    let routes = axum::Router::new()
        .route("/code", axum::routing::get(code))
        .route("/decode-qr", axum::routing::post(decode_qr))
        .with_state(codes);
    tokio::spawn(async move { axum::serve(oracle, routes).await.unwrap() });

    let admin = ctx.admin_token("admin@example.com").await;
    ctx.user_token("friend@example.com").await;
    let kst_today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive();
    let date = (kst_today + chrono::Days::new(3)).to_string();
    let end = (kst_today + chrono::Days::new(5)).to_string();
    let mut id = 0;
    for title in ["록 페스티벌", "재즈 페스티벌 서울", "불꽃 축제"] {
        let (status, created) = ctx
            .send(Method::POST, "/festivals/create", Some(&admin),
                Some(json!({"title": title, "description": "e2e", "location": "서울", "startDate": date, "endDate": end, "ticketsPerDay": 20})))
            .await;
        assert_eq!(status, 201, "{created}");
        if title.starts_with("재즈") {
            id = created["id"].as_i64().unwrap();
        }
    }

    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    let festival = json!({"id": id, "name": "재즈 페스티벌 서울", "keyword": "재즈", "date": date});
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/e2e.cjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .env("NODE_PATH", &modules)
        .env("BASE", ctx.server.url(""))
        .env("ORACLE", format!("http://{oracle_addr}"))
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", &screenshots)
        .env("FESTIVAL", festival.to_string())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser run failed");
    assert!(stdout.contains("e2e: all checks passed"));
    let shots = std::fs::read_dir(&screenshots).unwrap().count();
    assert!(
        shots >= 24,
        "{shots} screenshots in {}",
        screenshots.display()
    );

    // What the browser did is what the server holds.
    let (_, detail) = ctx
        .send(Method::GET, &format!("/festivals/{id}"), None, None)
        .await;
    let day = detail["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .unwrap()
        .clone();
    assert_eq!(
        day["leftTickets"], 20,
        "booked two, then cancelled them: {day}"
    );
}
