//! Festival chat over a real socket: the seed's four routes with every refusal, and STOMP at
//! `/ws-chat` with the server's own client: tokens, membership, server-set senders, unread
//! counts pushed live and shown in the room list, and resuming after a dropped connection.

use crate::common;

use chat_relay::client::Client;
use chat_relay::stomp::Command;
use reqwest::Method;
use serde_json::{Value, json};

use common::{Ctx, start};

async fn festival(ctx: &Ctx, admin: &str, name: &str) -> i64 {
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(admin),
            Some(
                json!({"title": name, "description": "축제", "startDate": "2099-05-01",
                        "endDate": "2099-05-02"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

/// Joins `room`'s chat as the holder of `token`.
async fn join(ctx: &Ctx, token: &str, room: i64) {
    let (status, body) = ctx
        .send(
            Method::POST,
            &format!("/festivals/chatting/{room}/join"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn ws_url(ctx: &Ctx) -> String {
    ctx.server.url("/ws-chat").replacen("http://", "ws://", 1)
}

async fn stomp(ctx: &Ctx, token: &str) -> Client {
    let auth = format!("Bearer {token}");
    let (client, connected) = Client::connect(&ws_url(ctx), &[("Authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    client
}

async fn next_message(client: &mut Client) -> Value {
    let frame = client.next_frame().await.unwrap().expect("open");
    assert_eq!(frame.command, Command::Message, "{frame:?}");
    serde_json::from_slice(&frame.body).unwrap()
}

async fn receipt(client: &mut Client, id: &str) {
    let frame = client.next_frame().await.unwrap().expect("open");
    assert_eq!(frame.header("receipt-id"), Some(id), "{frame:?}");
}

#[tokio::test]
async fn rooms_join_list_history_leave_and_refusals() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let fan = ctx.user_token("fan@example.com").await;
    let other = ctx.user_token("other@example.com").await;
    let room = festival(&ctx, &admin, "부산 불꽃축제").await;
    let join = format!("/festivals/chatting/{room}/join");

    for _ in 0..2 {
        let (status, body) = ctx.send(Method::POST, &join, Some(&fan), None).await;
        assert_eq!((status, body), (200, json!(room)), "join is idempotent");
    }
    let (status, _) = ctx.send(Method::POST, &join, Some(&other), None).await;
    assert_eq!(status, 200);

    let (status, list) = ctx.get("/festivals/chatting/list", Some(&fan)).await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        json!([{"id": room, "title": "부산 불꽃축제", "userCount": 2, "unReadCount": null}])
    );
    let (_, me) = ctx.get("/me", Some(&fan)).await;
    assert_eq!(me["chatRooms"][0]["id"], room);

    let (status, history) = ctx
        .get(&format!("/festivals/chatting/{room}?limit=5"), Some(&fan))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        history,
        json!({"title": "부산 불꽃축제", "messages": [], "lastEvaluatedSendTime": null})
    );

    let stranger = ctx.user_token("stranger@example.com").await;
    let refusals: Vec<(Method, String, Option<&str>, u16, &str)> = vec![
        (
            Method::POST,
            "/festivals/chatting/999999/join".into(),
            Some(&fan),
            400,
            "CHATROOM_NOT_FOUND",
        ),
        (
            Method::POST,
            "/festivals/chatting/abc/join".into(),
            Some(&fan),
            400,
            "BAD_REQUEST",
        ),
        (Method::POST, join.clone(), None, 401, "UNAUTHORIZED"),
        (
            Method::GET,
            format!("/festivals/chatting/{room}"),
            Some(&stranger),
            403,
            "CHATROOM_NOT_JOINED",
        ),
        (
            Method::GET,
            format!("/festivals/chatting/{room}"),
            None,
            401,
            "UNAUTHORIZED",
        ),
        (
            Method::GET,
            format!("/festivals/chatting/{room}?limit=0"),
            Some(&fan),
            400,
            "BAD_REQUEST",
        ),
        (
            Method::GET,
            format!("/festivals/chatting/{room}?limit=101"),
            Some(&fan),
            400,
            "BAD_REQUEST",
        ),
        (
            Method::GET,
            format!("/festivals/chatting/{room}?lastEvaluatedSendTime=x"),
            Some(&fan),
            400,
            "BAD_REQUEST",
        ),
        (
            Method::GET,
            "/festivals/chatting/999999".into(),
            Some(&fan),
            400,
            "CHATROOM_NOT_FOUND",
        ),
        (
            Method::GET,
            "/festivals/chatting/list".into(),
            None,
            401,
            "UNAUTHORIZED",
        ),
        (
            Method::DELETE,
            "/festivals/chatting/delete".into(),
            Some(&fan),
            400,
            "BAD_REQUEST",
        ),
        (
            Method::DELETE,
            format!("/festivals/chatting/delete?chatRoomId={room}"),
            Some(&stranger),
            404,
            "USER_CHATROOM_NOT_FOUND",
        ),
        (
            Method::DELETE,
            "/festivals/chatting/delete?chatRoomId=999999".into(),
            Some(&fan),
            400,
            "CHATROOM_NOT_FOUND",
        ),
    ];
    for (method, path, token, status, code) in refusals {
        let (got, body) = ctx.send(method.clone(), &path, token, None).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {body}"
        );
    }

    let (status, _) = ctx
        .send(
            Method::DELETE,
            &format!("/festivals/chatting/delete?chatRoomId={room}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, list) = ctx.get("/festivals/chatting/list", Some(&other)).await;
    assert_eq!(list, json!([]));
    let (_, list) = ctx.get("/festivals/chatting/list", Some(&fan)).await;
    assert_eq!(list[0]["userCount"], 1);
}

#[tokio::test]
async fn stomp_chat_with_server_set_senders_and_live_unread_counts() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let alice = ctx.user_token("alice@example.com").await;
    let bob = ctx.user_token("bob@example.com").await;
    let stranger = ctx.user_token("stranger@example.com").await;
    let room = festival(&ctx, &admin, "서울 재즈").await;
    for token in [&alice, &bob] {
        join(&ctx, token, room).await;
    }
    let topic = format!("/topic/chat/chatRoomId{room}");

    // Without a valid token, no session.
    let (_, refused) = Client::connect(&ws_url(&ctx), &[("Authorization", "Bearer nope")])
        .await
        .unwrap();
    assert_eq!(refused.command, Command::Error);
    let (_, refused) = Client::connect(&ws_url(&ctx), &[]).await.unwrap();
    assert_eq!(refused.command, Command::Error);

    // A non-member may not subscribe.
    let mut outsider = stomp(&ctx, &stranger).await;
    outsider.subscribe("0", &topic, &[]).await.unwrap();
    let error = outsider.next_frame().await.unwrap().unwrap();
    assert_eq!(error.command, Command::Error);
    assert!(outsider.next_frame().await.unwrap().is_none(), "closed");

    let mut a = stomp(&ctx, &alice).await;
    a.subscribe("0", &topic, &[("receipt", "in")])
        .await
        .unwrap();
    receipt(&mut a, "in").await;
    let mut b = stomp(&ctx, &bob).await;
    b.subscribe("u", "/user/queue/unread", &[("receipt", "u")])
        .await
        .unwrap();
    receipt(&mut b, "u").await;

    a.send_json(
        "/publish/chat.send",
        &json!({"chatRoomId": room, "content": "안녕!", "senderId": 1, "senderName": "관리자", "sendTime": 0}),
        &[],
    )
    .await
    .unwrap();
    let message = next_message(&mut a).await;
    let (_, alice_me) = ctx.get("/me", Some(&alice)).await;
    assert_eq!(message["content"], "안녕!");
    assert_eq!(
        message["senderId"], alice_me["profile"]["id"],
        "the server names the sender"
    );
    assert_eq!(message["senderName"], "솜솜");
    assert!(message["sendTime"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        next_message(&mut b).await,
        json!({"chatRoomId": room, "unReadCount": 1})
    );

    let (_, list) = ctx.get("/festivals/chatting/list", Some(&bob)).await;
    assert_eq!(list[0]["unReadCount"], 1);
    let (_, list) = ctx.get("/festivals/chatting/list", Some(&alice)).await;
    assert_eq!(list[0]["unReadCount"], 0, "present members are not counted");
    let (_, history) = ctx
        .get(&format!("/festivals/chatting/{room}"), Some(&bob))
        .await;
    assert_eq!(history["messages"][0], message);
}

#[tokio::test]
async fn a_dropped_connection_resumes_without_gaps_or_repeats() {
    // Bob sends a hundred messages as fast as a script can: no rate limit here.
    let ctx = start(|c| c.chat.send_rate_per_second = 0.0).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let alice = ctx.user_token("alice@example.com").await;
    let bob = ctx.user_token("bob@example.com").await;
    let room = festival(&ctx, &admin, "전주 한지").await;
    for token in [&alice, &bob] {
        ctx.send(
            Method::POST,
            &format!("/festivals/chatting/{room}/join"),
            Some(token),
            None,
        )
        .await;
    }
    let topic = format!("/topic/chat/chatRoomId{room}");
    let mut b = stomp(&ctx, &bob).await;
    let mut a = stomp(&ctx, &alice).await;
    a.subscribe("0", &topic, &[("receipt", "in")])
        .await
        .unwrap();
    receipt(&mut a, "in").await;
    let say = |i: usize| json!({"chatRoomId": room, "content": format!("m{i}")});
    for i in 0..50 {
        b.send_json("/publish/chat.send", &say(i), &[])
            .await
            .unwrap();
    }
    // Read ten, then the network drops mid-stream.
    let mut last_seen = 0;
    for i in 0..10 {
        let message = next_message(&mut a).await;
        assert_eq!(message["content"], format!("m{i}"));
        last_seen = message["sendTime"].as_i64().unwrap();
    }
    a.drop_connection().await;
    for i in 50..100 {
        b.send_json("/publish/chat.send", &say(i), &[])
            .await
            .unwrap();
    }
    let mut a = stomp(&ctx, &alice).await;
    a.subscribe("0", &topic, &[("resume-after", &last_seen.to_string())])
        .await
        .unwrap();
    b.send_json("/publish/chat.send", &say(100), &[])
        .await
        .unwrap();
    for i in 10..=100 {
        assert_eq!(next_message(&mut a).await["content"], format!("m{i}"));
    }
    b.send_json("/publish/chat.send", &say(101), &[("receipt", "last")])
        .await
        .unwrap();
    receipt(&mut b, "last").await;
    assert_eq!(next_message(&mut a).await["content"], "m101");
}

#[tokio::test]
async fn connect_frames_are_case_insensitive_about_authorization_and_accept_passcode() {
    let ctx = start(|_| {}).await;
    let token = ctx.user_token("alice@example.com").await;
    let (_, connected) = Client::connect(
        &ws_url(&ctx),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .unwrap();
    assert_eq!(connected.command, Command::Connected);
    let (_, connected) =
        Client::connect(&ws_url(&ctx), &[("login", "alice"), ("passcode", &token)])
            .await
            .unwrap();
    assert_eq!(connected.command, Command::Connected);
}

/// Redis restarted without persistence: who is present and the unread counts are gone, but
/// membership is the database's, so an absent member's unread count starts again at once
/// (when Redis held the members too, nobody was counted until a node restarted).
#[tokio::test]
async fn unread_counts_survive_a_redis_that_lost_everything() {
    let redis_url = test_support::require_service!(test_support::REDIS);
    let prefix = format!("{}:", test_support::unique_name("chat"));
    let ctx = start(|c| {
        c.redis_url = Some(redis_url.clone());
        c.redis_key_prefix = prefix.clone();
    })
    .await;
    let admin = ctx.admin_token("admin@example.com").await;
    let alice = ctx.user_token("alice@example.com").await;
    let bob = ctx.user_token("bob@example.com").await;
    let room = festival(&ctx, &admin, "통영 한산대첩").await;
    for token in [&alice, &bob] {
        join(&ctx, token, room).await;
    }

    // Everything under this deployment's prefix goes, as after a restart of an empty Redis.
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
    }

    let mut b = stomp(&ctx, &bob).await;
    b.subscribe("u", "/user/queue/unread", &[("receipt", "u")])
        .await
        .unwrap();
    receipt(&mut b, "u").await;
    let mut a = stomp(&ctx, &alice).await;
    a.send_json(
        "/publish/chat.send",
        &json!({"chatRoomId": room, "content": "아직 있어요?"}),
        &[("receipt", "sent")],
    )
    .await
    .unwrap();
    receipt(&mut a, "sent").await;
    let counted = tokio::time::timeout(std::time::Duration::from_secs(30), next_message(&mut b))
        .await
        .expect("bob's unread count was pushed");
    assert_eq!(counted, json!({"chatRoomId": room, "unReadCount": 1}));
    let (_, list) = ctx.get("/festivals/chatting/list", Some(&bob)).await;
    assert_eq!(list[0]["unReadCount"], 1);
}

/// SIGTERM with a drain delay: `/readyz` says 503 at once so a load balancer moves new traffic,
/// while the node still answers requests and its chat sockets keep working.
#[tokio::test]
async fn a_draining_node_is_unready_but_still_serves() {
    // Long enough that the test never reaches its end; the server is dropped with the test.
    let mut ctx = start(|c| c.drain_secs = 600).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let alice = ctx.user_token("alice@example.com").await;
    let room = festival(&ctx, &admin, "안동 탈춤").await;
    join(&ctx, &alice, room).await;
    let mut a = stomp(&ctx, &alice).await;
    a.subscribe(
        "0",
        &format!("/topic/chat/chatRoomId{room}"),
        &[("receipt", "in")],
    )
    .await
    .unwrap();
    receipt(&mut a, "in").await;
    assert_eq!(ctx.get("/readyz", None).await.0, 200);

    ctx.server.begin_shutdown();
    common::eventually("the node reports itself unready", || async {
        ctx.get("/readyz", None).await.0 == 503
    })
    .await;
    let (_, ready) = ctx.get("/readyz", None).await;
    assert_eq!(ready["components"]["node"]["status"], "DOWN", "{ready}");
    // Still serving: new requests and the open chat socket.
    let (status, _) = ctx.get(&format!("/festivals/{room}"), None).await;
    assert_eq!(status, 200);
    a.send_json(
        "/publish/chat.send",
        &json!({"chatRoomId": room, "content": "아직 열려 있어요"}),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(next_message(&mut a).await["content"], "아직 열려 있어요");
}

/// After the drain, chat sockets are told to reconnect (and how to continue) before they close.
#[tokio::test]
async fn a_shutdown_tells_chat_sockets_to_reconnect() {
    let mut ctx = start(|_| {}).await;
    let alice = ctx.user_token("alice@example.com").await;
    let mut a = stomp(&ctx, &alice).await;
    ctx.server.begin_shutdown();
    let frame = a
        .next_frame()
        .await
        .unwrap()
        .expect("an ERROR before the close");
    assert_eq!(frame.command, Command::Error, "{frame:?}");
    assert_eq!(frame.header("message"), Some("server shutting down"));
    let body = String::from_utf8_lossy(&frame.body);
    assert!(
        body.contains("reconnect") && body.contains("resume-after"),
        "{body}"
    );
}
