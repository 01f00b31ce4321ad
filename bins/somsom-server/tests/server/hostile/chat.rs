//! Chat sockets against hostile clients, through the server: they close when their session
//! ends on any node, when their user leaves the room on any node, and at the caps.

use chat_relay::client::Client;
use chat_relay::stomp::{Command, Frame};
use reqwest::Method;
use serde_json::json;

use crate::common::{Ctx, start};

async fn festival(ctx: &Ctx, admin: &str) -> i64 {
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(admin),
            Some(
                json!({"title": "보안 축제", "description": "축제", "startDate": "2099-05-01",
                        "endDate": "2099-05-02"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

/// The ERROR frame that ends a connection (skipping anything before it).
async fn closing_error(client: &mut Client) -> Frame {
    loop {
        match client.next_frame().await {
            Ok(Some(frame)) if frame.command == Command::Error => return frame,
            Ok(Some(_)) => {}
            other => panic!("closed without an ERROR frame: {other:?}"),
        }
    }
}

async fn join(ctx: &Ctx, token: &str, room: i64) {
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

/// Two nodes on one database: a socket on node B closes when its user signs out on node A, or
/// leaves the room on node A; another user's socket stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_close_when_their_session_ends_or_their_user_leaves_on_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/shared.db", dir.path().display());
    let a = start({
        let database = database.clone();
        move |c| c.database_url = database
    })
    .await;
    let b = start(move |c| c.database_url = database).await;
    let admin = a.admin_token("admin@example.com").await;
    let room = festival(&a, &admin).await;
    let leaver = a.user_token("leaver@example.com").await;
    let quitter = a.user_token("quitter@example.com").await;
    let stayer = a.user_token("stayer@example.com").await;
    for token in [&leaver, &quitter, &stayer] {
        join(&a, token, room).await;
    }
    let topic = format!("/topic/chat/chatRoomId{room}");
    let mut on_b = Vec::new();
    for token in [&leaver, &quitter, &stayer] {
        let mut client = b.stomp(token).await;
        client
            .subscribe("0", &topic, &[("receipt", "in")])
            .await
            .unwrap();
        let receipt = client.next_frame().await.unwrap().unwrap();
        assert_eq!(receipt.command, Command::Receipt);
        on_b.push(client);
    }
    let mut stayer_socket = on_b.pop().unwrap();
    let mut quitter_socket = on_b.pop().unwrap();
    let mut leaver_socket = on_b.pop().unwrap();

    let (status, _) = a
        .send(
            Method::DELETE,
            &format!("/festivals/chatting/delete?chatRoomId={room}"),
            Some(&leaver),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let error = closing_error(&mut leaver_socket).await;
    assert_eq!(
        error.header("message"),
        Some(format!("you left chat room {room}").as_str())
    );

    let (status, _) = a.send(Method::POST, "/signout", Some(&quitter), None).await;
    assert_eq!(status, 200);
    let error = closing_error(&mut quitter_socket).await;
    assert!(
        error
            .header("message")
            .unwrap_or_default()
            .contains("session ended"),
        "{error:?}"
    );

    // The stayer is still there and hears the room.
    stayer_socket
        .send_json(
            "/publish/chat.send",
            &json!({"chatRoomId": room, "content": "아직 있어요"}),
            &[("receipt", "sent")],
        )
        .await
        .unwrap();
    // The receipt and the message come in either order.
    let (mut heard, mut receipted) = (false, false);
    while !(heard && receipted) {
        let frame = stayer_socket
            .next_frame()
            .await
            .unwrap()
            .expect("still open");
        heard |= frame.command == Command::Message;
        receipted |= frame.header("receipt-id") == Some("sent");
    }
    a.server.shutdown().await;
    b.server.shutdown().await;
}

/// A member cannot subscribe without limit, nor flood a room.
#[tokio::test]
async fn a_connection_cannot_subscribe_or_send_without_limit() {
    let ctx = start(|c| {
        c.chat.max_subscriptions = 5;
        c.chat.send_rate_per_second = 1.0;
        c.chat.send_burst = 5;
    })
    .await;
    let admin = ctx.admin_token("admin@example.com").await;
    let room = festival(&ctx, &admin).await;
    let user = ctx.user_token("member@example.com").await;
    join(&ctx, &user, room).await;
    let topic = format!("/topic/chat/chatRoomId{room}");

    let mut subscriber = ctx.stomp(&user).await;
    for i in 0..6 {
        subscriber
            .subscribe(&i.to_string(), &topic, &[])
            .await
            .unwrap();
    }
    let error = closing_error(&mut subscriber).await;
    assert_eq!(error.header("message"), Some("too many subscriptions"));

    let mut flooder = ctx.stomp(&user).await;
    for i in 0..50 {
        let sent = flooder
            .send_json(
                "/publish/chat.send",
                &json!({"chatRoomId": room, "content": format!("spam {i}")}),
                &[],
            )
            .await;
        if sent.is_err() {
            break;
        }
    }
    let error = closing_error(&mut flooder).await;
    assert_eq!(error.header("message"), Some("too many messages"));
    let (_, history) = ctx
        .get(
            &format!("/festivals/chatting/{room}?limit=100"),
            Some(&user),
        )
        .await;
    let stored = history["messages"].as_array().unwrap().len();
    assert!(stored <= 6, "{stored} of 50 were stored");
    ctx.server.shutdown().await;
}
