//! The [`Relay`] suite, over one or more nodes sharing a backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::relay::Delivery;
use crate::{ChatMessage, Relay, RoomId, UserId};

use super::{draft, fresh_rooms};

/// How long a suite waits for deliveries before calling them lost. A liveness bound, not a
/// performance figure: healthy backends deliver in milliseconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// Every check. `nodes` are handles on one backend as separate server nodes would hold them
/// (the same handle twice is fine for a one-process relay).
pub async fn run_all(nodes: &[Arc<dyn Relay>]) {
    every_node_gets_every_message_in_order(nodes).await;
    concurrent_senders_are_seen_in_one_order(nodes).await;
}

async fn subscribe_all(nodes: &[Arc<dyn Relay>]) -> Vec<BoxStream<'static, Delivery>> {
    let mut streams = Vec::new();
    for node in nodes {
        streams.push(node.subscribe().await.expect("subscribe"));
    }
    streams
}

/// Reads deliveries until `count` distinct messages of `rooms` have arrived; others are ignored.
/// A delivery may repeat an earlier one (a sequencer handing a room over re-sends what it finds
/// stored); subscribers drop those by `sendTime`, and so does this. Anything else arriving with
/// an older `sendTime` than the room's latest is a reordering and fails.
async fn collect(
    stream: &mut BoxStream<'static, Delivery>,
    rooms: &[RoomId],
    count: usize,
) -> HashMap<RoomId, Vec<ChatMessage>> {
    let mut by_room: HashMap<RoomId, Vec<ChatMessage>> = HashMap::new();
    let mut seen = 0;
    let read = async {
        while seen < count {
            let delivery = stream.next().await.expect("delivery stream ended");
            let message = delivery.message;
            if !rooms.contains(&message.chat_room_id) {
                continue;
            }
            let messages = by_room.entry(message.chat_room_id).or_default();
            if let Some(last) = messages.last()
                && message.send_time <= last.send_time
            {
                assert!(
                    messages.contains(&message),
                    "an unseen message arrived out of order: {message:?} after {last:?}"
                );
                continue;
            }
            seen += 1;
            messages.push(message);
        }
    };
    if tokio::time::timeout(PATIENCE, read).await.is_err() {
        panic!("only {seen} of {count} deliveries arrived");
    }
    by_room
}

fn assert_increasing(messages: &[ChatMessage]) {
    for pair in messages.windows(2) {
        assert!(
            pair[0].send_time < pair[1].send_time,
            "sendTime must increase in delivery order: {pair:?}"
        );
    }
}

/// One sender per room, publishing through the nodes in turn: every node gets every message
/// exactly once, each room's in the order sent, with increasing `sendTime`s.
pub async fn every_node_gets_every_message_in_order(nodes: &[Arc<dyn Relay>]) {
    let mut streams = subscribe_all(nodes).await;
    let base = fresh_rooms();
    let rooms: Vec<RoomId> = (0..4).map(|i| RoomId(base.0 + i)).collect();
    let per_room = 50;
    let senders = rooms.iter().map(|&room| {
        let nodes = nodes.to_vec();
        async move {
            for i in 0..per_room {
                let node = &nodes[i % nodes.len()];
                node.publish(draft(room, 1, &format!("{room}:{i}"), 1_000))
                    .await
                    .expect("publish");
            }
        }
    });
    futures::future::join_all(senders).await;
    for stream in &mut streams {
        let got = collect(stream, &rooms, rooms.len() * per_room).await;
        for room in &rooms {
            let messages = &got[room];
            let contents: Vec<_> = messages.iter().map(|m| m.content.clone()).collect();
            let expected: Vec<_> = (0..per_room).map(|i| format!("{room}:{i}")).collect();
            assert_eq!(
                contents, expected,
                "room {room}: lost, doubled or reordered"
            );
            assert_increasing(messages);
        }
    }
}

/// Senders on different nodes writing into one room at once: all nodes see the same order.
pub async fn concurrent_senders_are_seen_in_one_order(nodes: &[Arc<dyn Relay>]) {
    let mut streams = subscribe_all(nodes).await;
    let room = fresh_rooms();
    let per_sender = 30;
    let senders = (0..4).map(|sender| {
        let node = nodes[sender % nodes.len()].clone();
        async move {
            for i in 0..per_sender {
                node.publish(draft(room, sender as i64, &format!("{sender}:{i}"), 7))
                    .await
                    .expect("publish");
            }
        }
    });
    futures::future::join_all(senders).await;
    let mut orders = Vec::new();
    for stream in &mut streams {
        let mut got = collect(stream, &[room], 4 * per_sender).await;
        let messages = got.remove(&room).unwrap_or_default();
        assert_increasing(&messages);
        for sender in 0..4 {
            let own: Vec<_> = messages
                .iter()
                .filter(|m| m.sender_id == UserId(sender as i64))
                .map(|m| m.content.clone())
                .collect();
            let expected: Vec<_> = (0..per_sender).map(|i| format!("{sender}:{i}")).collect();
            assert_eq!(own, expected, "sender {sender}'s own order");
        }
        orders.push(messages);
    }
    for other in &orders[1..] {
        assert_eq!(other, &orders[0], "every node sees one order");
    }
}
