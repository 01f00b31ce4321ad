//! Two `somsom-server` processes sharing MariaDB, Redis and a Kafka-protocol broker: 100,000
//! chat messages in 100 rooms, sent through node A, reach subscribers on node B (and on A)
//! with none lost, doubled or reordered. This counts every message.
//!
//! Both nodes are in the storing consumer group, and a third node joins it and leaves again
//! while the messages flow, so partitions change owners mid-stream (twice at least): the case
//! that lost drafts on tansu until the sequencer checked each partition's offsets.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_relay::client::Client;
use chat_relay::stomp::Command;
use futures::FutureExt;
use reqwest::Method;
use serde_json::json;
use test_support::mysql::TestDatabase;
use test_support::{KAFKA, MYSQL, REDIS, require_service, unique_name};

use common::{ServerProcess, start};

const ROOMS: usize = 100;
const PER_ROOM: usize = 1_000;

/// Subscribes to every room and returns once the server confirmed each subscription.
async fn listener(node: &ServerProcess, token: &str, rooms: &[i64]) -> Client {
    let mut client = common::stomp_to(node, token).await;
    for room in rooms {
        client
            .subscribe(
                &room.to_string(),
                &format!("/topic/chat/chatRoomId{room}"),
                &[("receipt", "s")],
            )
            .await
            .unwrap();
    }
    for _ in rooms {
        let frame = client.next_frame().await.unwrap().unwrap();
        assert_eq!(frame.command, Command::Receipt, "{frame:?}");
    }
    client
}

/// Reads every message and checks each room's are `0..PER_ROOM` in order, once each.
async fn count_everything(
    mut client: Client,
    rooms: Vec<i64>,
    counted: Arc<tokio::sync::watch::Sender<usize>>,
) -> usize {
    let mut next: HashMap<i64, usize> = rooms.iter().map(|r| (*r, 0)).collect();
    let mut last_time: HashMap<i64, i64> = HashMap::new();
    let mut total = 0;
    while total < ROOMS * PER_ROOM {
        let frame = client.next_frame().await.unwrap().expect("connection open");
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        let message: serde_json::Value = serde_json::from_slice(&frame.body).unwrap();
        let room = message["chatRoomId"].as_i64().unwrap();
        let (sent_room, index) = message["content"]
            .as_str()
            .unwrap()
            .split_once(':')
            .unwrap();
        assert_eq!(sent_room, room.to_string());
        let expected = next.get_mut(&room).expect("a subscribed room");
        assert_eq!(
            index.parse::<usize>().unwrap(),
            *expected,
            "room {room}: lost, doubled or reordered"
        );
        *expected += 1;
        let time = message["sendTime"].as_i64().unwrap();
        if let Some(last) = last_time.insert(room, time) {
            assert!(time > last, "sendTime increases within room {room}");
        }
        total += 1;
        counted.send_replace(total);
    }
    assert!(next.values().all(|n| *n == PER_ROOM));
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_messages_cross_two_server_processes_intact() {
    let mysql = require_service!(MYSQL);
    let redis = require_service!(REDIS);
    let brokers = require_service!(KAFKA);
    let db = TestDatabase::create(&mysql).await.unwrap();
    let redis_prefix = format!("{}:", unique_name("chat"));
    let topic_prefix = format!("{}-", unique_name("chat"));

    // Accounts and rooms, made through an in-process node on the same database and Redis.
    let setup = start(|c| {
        c.database_url = db.url().to_owned();
        c.redis_url = Some(redis.clone());
        c.redis_key_prefix = redis_prefix.clone();
        c.auth.attempts_per_address_per_minute = 100_000;
        c.auth.signups_per_address_per_hour = 100_000;
    })
    .await;
    let admin = setup.admin_token("admin@example.com").await;
    let listener_token = setup.user_token("listener@example.com").await;
    let mut rooms = Vec::new();
    let mut senders = Vec::new();
    for i in 0..ROOMS {
        let (status, created) = setup
            .send(
                Method::POST,
                "/festivals/create",
                Some(&admin),
                Some(json!({"title": format!("방 {i}"), "description": "부하", "startDate": "2099-03-01", "endDate": "2099-03-01"})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let room = created["id"].as_i64().unwrap();
        let sender = setup.user_token(&format!("sender{i}@example.com")).await;
        for token in [&sender, &listener_token] {
            let (status, _) = setup
                .send(
                    Method::POST,
                    &format!("/festivals/chatting/{room}/join"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, 200);
        }
        rooms.push(room);
        senders.push(sender);
    }

    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("SOMSOM_DATABASE_URL", db.url()),
        ("SOMSOM_REDIS_URL", redis.as_str()),
        ("SOMSOM_REDIS_KEY_PREFIX", redis_prefix.as_str()),
        ("SOMSOM_KAFKA_BROKERS", brokers.as_str()),
        ("SOMSOM_CHAT__KAFKA_TOPIC_PREFIX", topic_prefix.as_str()),
        // The listeners below read as fast as a test can; this test is about the relay.
        ("SOMSOM_CHAT__OUTBOUND_CAPACITY", "200000"),
        // Its senders are scripts sending as fast as they can.
        ("SOMSOM_CHAT__SEND_RATE_PER_SECOND", "0"),
        // One listener follows every room on one connection.
        ("SOMSOM_CHAT__MAX_SUBSCRIPTIONS", "1000"),
    ];
    let node_a = ServerProcess::spawn(dir.path(), &envs);
    let node_b = ServerProcess::spawn(dir.path(), &envs);

    let on_b = listener(&node_b, &listener_token, &rooms).await;
    let on_a = listener(&node_a, &listener_token, &rooms).await;
    let counted = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let counting_b = tokio::spawn(count_everything(on_b, rooms.clone(), counted.clone()));
    let counting_a = tokio::spawn(count_everything(
        on_a,
        rooms.clone(),
        Arc::new(tokio::sync::watch::Sender::new(0usize)),
    ));

    // A liveness bound only; the counts are the assertion.
    let patience = Duration::from_secs(600);
    let reached = |share: usize| {
        let mut counted = counted.subscribe();
        async move {
            let _ = counted
                .wait_for(|n| *n >= ROOMS * PER_ROOM * share / 100)
                .await;
        }
    };
    // Node C joins the storing group at a quarter of the messages and leaves at 60 %.
    let churn = async {
        tokio::time::timeout(patience, reached(25)).await.ok()?;
        let node_c = ServerProcess::spawn(dir.path(), &envs);
        tokio::time::timeout(patience, reached(60)).await.ok()?;
        Some(node_c.terminate().await)
    };

    let sending = rooms.iter().zip(&senders).map(|(&room, token)| {
        let node = &node_a;
        async move {
            let mut client = common::stomp_to(node, token).await;
            for i in 0..PER_ROOM {
                let receipt = if i + 1 == PER_ROOM {
                    vec![("receipt", "done")]
                } else {
                    vec![]
                };
                client
                    .send_json(
                        "/publish/chat.send",
                        &json!({"chatRoomId": room, "content": format!("{room}:{i}")}),
                        &receipt,
                    )
                    .await
                    .unwrap();
            }
            let frame = client.next_frame().await.unwrap().unwrap();
            assert_eq!(frame.header("receipt-id"), Some("done"), "{frame:?}");
        }
    });
    let ((), churned) = tokio::join!(futures::future::join_all(sending).map(drop), churn);
    let on_b = tokio::time::timeout(patience, counting_b).await;
    let on_a = tokio::time::timeout(patience, counting_a).await;
    let (Ok(Ok(on_a)), Ok(Ok(on_b))) = (on_a, on_b) else {
        for (name, node) in [("A", &node_a), ("B", &node_b)] {
            for event in node.events.try_iter() {
                if event.to_string().contains("chat sequencer") {
                    eprintln!("node {name}: {event}");
                }
            }
        }
        panic!("a node did not deliver every message in order (its chat log lines are above)");
    };
    assert_eq!((on_a, on_b), (ROOMS * PER_ROOM, ROOMS * PER_ROOM));
    assert!(
        churned.is_some_and(|status| status.success()),
        "node C joined and left while messages flowed"
    );
    let mut rebalances = 0;
    let mut seeks = 0;
    for node in [&node_a, &node_b] {
        for event in node.events.try_iter() {
            let message = event["message"].as_str().unwrap_or_default();
            rebalances += usize::from(message == "chat sequencer rebalanced");
            seeks += usize::from(message.starts_with("chat sequencer fetch skipped drafts"));
        }
    }
    assert!(rebalances >= 2, "partitions moved while messages flowed");
    eprintln!(
        "sequencer rebalances seen on A and B: {rebalances}; seeks back over a fetch gap: {seeks}"
    );

    // And the store has every message exactly once.
    let pool = sqlx::MySqlPool::connect(db.url()).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, (ROOMS * PER_ROOM) as i64);
    pool.close().await;

    assert!(node_a.terminate().await.success());
    assert!(node_b.terminate().await.success());
    drop(setup);
    db.drop_database().await.unwrap();
}
