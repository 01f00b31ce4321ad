//! What an operator reads: a drop's numbers on `/metrics` (bookings, tickets, waiting rooms,
//! sold-out days, chat), the Grafana dashboard and the alert rules in `deploy/` naming only
//! series the server exports, and the rules' own unit tests under `promtool`.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};
use test_support::{PROMTOOL, REDIS, require_service, unique_name};

use common::{Ctx, eventually, metric, start};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

async fn festival(ctx: &Ctx, admin: &str, title: &str, queued: bool) -> i64 {
    let (status, body) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(admin),
            Some(
                json!({"title": title, "startDate": "2099-08-01", "endDate": "2099-08-01",
                        "ticketsPerDay": 1, "saleQueued": queued}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_drop_shows_on_the_metrics() {
    let ctx = start(|_| {}).await;
    let base = ctx.server.url("");
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let late = ctx.user_token("late@example.com").await;

    // A queued sale of one ticket: admitted, booked, then the used admission again.
    let queued = festival(&ctx, &admin, "줄 서는 축제", true).await;
    let admission = std::sync::Mutex::new(None);
    eventually("the fan is admitted", || async {
        let token = ctx.join(&fan, queued, "fan@example.com").await.2;
        let admitted = token.is_some();
        *admission.lock().unwrap() = token;
        admitted
    })
    .await;
    let admission = admission.into_inner().unwrap().unwrap();
    let (status, body) = ctx
        .book(&fan, queued, "2099-08-01", 1, Some(&admission))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ctx
        .book(&fan, queued, "2099-08-01", 1, Some(&admission))
        .await;
    assert_eq!(status, 409, "the admission is used: {body}");

    // An unqueued sale of one ticket: booked, sold out for the next buyer, then cancelled.
    let open = festival(&ctx, &admin, "바로 사는 축제", false).await;
    let (status, booked) = ctx.book(&fan, open, "2099-08-01", 1, None).await;
    assert_eq!(status, 200, "{booked}");
    let (status, body) = ctx.book(&late, open, "2099-08-01", 1, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("TICKET_SOLD_OUT")),
        "{body}"
    );
    let reservation = booked["reservationId"].as_i64().unwrap();
    let (status, body) = ctx
        .send(
            Method::DELETE,
            &format!("/reservations/{reservation}"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let outcome = |o: &str| format!("somsom_bookings_total{{outcome=\"{o}\"}}");
    assert_eq!(metric(&base, &outcome("booked")).await, 2);
    assert_eq!(metric(&base, &outcome("refused")).await, 1);
    assert_eq!(metric(&base, &outcome("sold_out")).await, 1);
    assert_eq!(metric(&base, "somsom_tickets_booked_total ").await, 2);
    assert_eq!(metric(&base, "somsom_cancellations_total ").await, 1);
    assert_eq!(metric(&base, "somsom_tickets_cancelled_total ").await, 1);

    // The waiting room as the sold-out watcher reads it, once a second.
    let queue = format!("{{queue=\"festival{queued}\"}}");
    eventually("the queued festival's day shows as sold out", || async {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.contains(&format!("somsom_festival_days_sold_out{queue} 1"))
    })
    .await;
    assert_eq!(
        metric(&base, &format!("somsom_queue_admissions_total{queue}")).await,
        1
    );
    assert_eq!(
        metric(&base, &format!("somsom_queue_waiting{queue}")).await,
        0
    );
    assert_eq!(
        metric(&base, &format!("somsom_queue_paused{queue}")).await,
        0
    );

    // Chat: one connection, one message delivered to its one subscriber, its lag measured.
    let (status, body) = ctx
        .send(
            Method::POST,
            &format!("/festivals/chatting/{open}/join"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut client = ctx.stomp(&fan).await;
    assert_eq!(metric(&base, "somsom_chat_connections ").await, 1);
    client
        .subscribe(
            "0",
            &format!("/topic/chat/chatRoomId{open}"),
            &[("receipt", "s")],
        )
        .await
        .unwrap();
    let frame = client.next_frame().await.unwrap().unwrap();
    assert_eq!(frame.header("receipt-id"), Some("s"), "{frame:?}");
    client
        .send_json(
            "/publish/chat.send",
            &json!({"chatRoomId": open, "content": "안녕"}),
            &[],
        )
        .await
        .unwrap();
    let frame = client.next_frame().await.unwrap().unwrap();
    assert_eq!(
        frame.command,
        chat_relay::stomp::Command::Message,
        "{frame:?}"
    );
    assert_eq!(metric(&base, "somsom_chat_deliveries_total ").await, 1);
    assert_eq!(
        metric(&base, "somsom_chat_delivery_lag_seconds_count ").await,
        1
    );
}

/// The `somsom_*` names an expression file uses, without the `_total`, `_bucket`, `_sum` and
/// `_count` suffixes the exposition adds to a family's name.
fn families_named_in(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("somsom_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(family.to_owned());
    }
    names
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_name_only_exported_series() {
    let redis = require_service!(REDIS);
    let prefix = format!("{}:", unique_name("operator"));
    let ctx = start(|c| {
        c.redis_url = Some(redis);
        c.redis_key_prefix = prefix;
    })
    .await;
    // The request families have series once a request was answered: the first scrape is one.
    let scrape = || async {
        reqwest::get(ctx.server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    scrape().await;
    let text = scrape().await;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();

    let dashboard_path = deploy().join("grafana/somsom.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard_path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "panel ids are unique"
        );
        if panel["type"] != "row" {
            assert!(
                !panel["targets"].as_array().unwrap().is_empty(),
                "{} has a query",
                panel["title"]
            );
        }
    }
    for path in [dashboard_path, deploy().join("prometheus/alerts.yml")] {
        let named = families_named_in(&path);
        assert!(
            named.len() >= 10,
            "{} names the drop's series",
            path.display()
        );
        let missing: Vec<_> = named
            .iter()
            .filter(|name| !exported.contains(name.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{} names series the server does not export: {missing:?}",
            path.display()
        );
    }
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let promtool = require_service!(PROMTOOL);
    let dir = deploy().join("prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
