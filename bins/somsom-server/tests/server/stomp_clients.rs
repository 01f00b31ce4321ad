//! Third-party STOMP clients against `/ws-chat`: stomp.py (PyPI, `TEST_PYTHON`) and
//! @stomp/stompjs on Node.js (`TEST_NODE_MODULES`). Each connects with a bearer token,
//! subscribes, sends, and receives both its own message and one sent by a Rust client, with the
//! sender named by the server.

use crate::common;

use std::process::Stdio;

use chat_relay::client::Client;
use chat_relay::stomp::Command;
use reqwest::Method;
use serde_json::{Value, json};
use test_support::{NODE_MODULES, PYTHON, require_service};
use tokio::io::{AsyncBufReadExt, BufReader};

use common::{Ctx, start};

/// A festival room joined by a third-party client's user and a Rust client's user; returns
/// (room, their token, our client).
async fn room_with_two_members(ctx: &Ctx) -> (i64, String, Client) {
    let admin = ctx.admin_token("admin@example.com").await;
    let (_, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(json!({"title": "클라이언트 축제", "description": "호환성", "startDate": "2099-01-01", "endDate": "2099-01-01"})),
        )
        .await;
    let room = created["id"].as_i64().unwrap();
    let theirs = ctx.user_token("them@example.com").await;
    let ours = ctx.user_token("us@example.com").await;
    for token in [&theirs, &ours] {
        let (status, _) = ctx
            .send(
                Method::POST,
                &format!("/festivals/chatting/{room}/join"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    let url = ctx.server.url("/ws-chat").replacen("http://", "ws://", 1);
    let (client, connected) =
        Client::connect(&url, &[("Authorization", &format!("Bearer {ours}"))])
            .await
            .unwrap();
    assert_eq!(connected.command, Command::Connected);
    (room, theirs, client)
}

/// Runs the client, sends our message once it says READY, and returns its JSON report.
async fn converse(mut command: tokio::process::Command, room: i64, ours: &mut Client) -> Value {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the client");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the client ended before READY");
        if line.trim() == "READY" {
            break;
        }
    }
    ours.send_json(
        "/publish/chat.send",
        &json!({"chatRoomId": room, "content": "from rust"}),
        &[],
    )
    .await
    .unwrap();
    let report = lines.next_line().await.unwrap().expect("a report line");
    assert!(child.wait().await.unwrap().success());
    serde_json::from_str(&report).unwrap()
}

fn check(report: &Value, own: &str) {
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["finished"], true, "{report}");
    let received = report["received"].as_array().unwrap();
    let mut contents: Vec<_> = received
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    contents.sort_unstable();
    let mut expected = vec![own, "from rust"];
    expected.sort_unstable();
    assert_eq!(contents, expected, "{report}");
    for message in received {
        assert_eq!(message["senderName"], "솜솜");
        assert!(message["senderId"].as_i64().unwrap() > 0);
        assert!(message["sendTime"].as_i64().unwrap() > 1_700_000_000_000);
    }
    let senders: std::collections::HashSet<_> =
        received.iter().map(|m| m["senderId"].clone()).collect();
    assert_eq!(senders.len(), 2, "two different senders: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_py_connects_subscribes_sends_and_receives() {
    let python = require_service!(PYTHON);
    let ctx = start(|_| {}).await;
    let (room, theirs, mut ours) = room_with_two_members(&ctx).await;
    let addr = ctx.server.url("");
    let host_port = addr.trim_start_matches("http://").trim_end_matches('/');
    let (host, port) = host_port.rsplit_once(':').unwrap();
    let mut command = tokio::process::Command::new(python);
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/stomp_py.py"
        ))
        .args([host, port, &theirs, &room.to_string()]);
    let report = converse(command, room, &mut ours).await;
    check(&report, "from stomp.py");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stompjs_connects_subscribes_sends_and_receives() {
    let modules = require_service!(NODE_MODULES);
    let ctx = start(|_| {}).await;
    let (room, theirs, mut ours) = room_with_two_members(&ctx).await;
    let url = ctx.server.url("/ws-chat").replacen("http://", "ws://", 1);
    let mut command = tokio::process::Command::new("node");
    command
        .env("NODE_PATH", modules)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/stompjs.cjs"
        ))
        .args([&url, &theirs, &room.to_string()]);
    let report = converse(command, room, &mut ours).await;
    check(&report, "from stompjs");
}
