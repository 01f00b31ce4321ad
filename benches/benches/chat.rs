//! The chat engine's hot paths: decoding a client's SEND frame, encoding a MESSAGE, and one
//! message published through the engine reaching 1,000 subscribers of its room on one node.
//!
//! `cargo bench -p somsom-benches --bench chat`

use std::hint::black_box;
use std::sync::Arc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chat_relay::stomp::{Command, Frame, Limits, Wire, decode_all, to_bytes};
use chat_relay::{
    ChatConfig, ChatServer, Draft, Gatekeeper, Member, MemoryMembers, MemoryPresence, MemoryRelay,
    MemoryStore, Refusal, Relay, RoomId, Sequencer, Session,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use tokio::sync::Notify;

fn codec(c: &mut Criterion) {
    let send = to_bytes(
        &Frame::new(Command::Send)
            .with("destination", "/publish/chat.send")
            .with("content-type", "application/json")
            .with_body(r#"{"chatRoomId": 42, "content": "내일 불꽃놀이 몇 시에 시작해요?"}"#),
    );
    let mut group = c.benchmark_group("stomp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode SEND", |b| {
        b.iter(|| decode_all(black_box(&send), Limits::default()).unwrap())
    });
    let message = Frame::new(Command::Message)
        .with("destination", "/topic/chat/chatRoomId42")
        .with("message-id", "42-1796010150801")
        .with("subscription", "0")
        .with("content-type", "application/json")
        .with_body(r#"{"content":"내일 불꽃놀이 몇 시에 시작해요?","senderId":7,"senderName":"솜솜","chatRoomId":42,"sendTime":1796010150801}"#);
    group.bench_function("encode MESSAGE", |b| {
        b.iter(|| to_bytes(black_box(&message)))
    });
    group.finish();
}

/// Lets everyone in: `login` is `name:id`.
#[derive(Debug)]
struct Open;

#[async_trait::async_trait]
impl Gatekeeper for Open {
    async fn authenticate(&self, connect: &Frame) -> Result<Session, Refusal> {
        let (name, id) = connect
            .header("login")
            .and_then(|l| l.split_once(':'))
            .ok_or_else(|| Refusal::new("login name:id"))?;
        let id = id.parse().map_err(|_| Refusal::new("bad id"))?;
        Ok(Member {
            id,
            name: name.to_owned(),
        }
        .into())
    }

    async fn may_enter(&self, _: &Member, _: RoomId) -> Result<(), Refusal> {
        Ok(())
    }
}

/// One message published through the engine's relay (stored, sequenced, handed to the node's
/// subscribers) until each of 1,000 connections subscribed to its room has its MESSAGE frame.
fn fan_out(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 1_000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(Notify::new());
    let relay = runtime.block_on(async {
        let store = Arc::new(MemoryStore::new());
        let presence = Arc::new(MemoryPresence::new());
        let relay = Arc::new(MemoryRelay::new(Sequencer::new(
            store.clone(),
            presence.clone(),
            Arc::new(MemoryMembers::new()),
        )));
        let chat = ChatServer::new(
            ChatConfig::default(),
            relay.clone(),
            store,
            presence,
            Arc::new(Open),
        );
        tokio::spawn(chat.start().await.unwrap());
        let room = chat_relay::Destinations::default().room(RoomId(42));
        for i in 0..SUBSCRIBERS {
            let (to_server, incoming) = mpsc::unbounded();
            let (outgoing, mut from_server) = mpsc::channel::<Wire>(1024);
            let served = chat.clone();
            tokio::spawn(async move { served.serve(incoming, outgoing.sink_map_err(drop)).await });
            let frames = [
                Frame::new(Command::Connect)
                    .with("accept-version", "1.2")
                    .with("login", format!("user:{i}")),
                Frame::new(Command::Subscribe)
                    .with("id", "0")
                    .with("destination", room.clone())
                    .with("receipt", "in"),
            ];
            for frame in frames {
                to_server.unbounded_send(Ok(Wire::Frame(frame))).unwrap();
            }
            let (received, arrived) = (received.clone(), arrived.clone());
            tokio::spawn(async move {
                let _keep = to_server;
                while let Some(wire) = from_server.next().await {
                    if let Wire::Frame(frame) = wire
                        && matches!(frame.command, Command::Message | Command::Receipt)
                    {
                        received.fetch_add(1, Ordering::Relaxed);
                        arrived.notify_one();
                    }
                }
            });
        }
        wait_for(&received, &arrived, SUBSCRIBERS).await;
        relay
    });
    let mut group = c.benchmark_group("chat engine");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    group.bench_function("publish one message to 1,000 subscribers", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let target = received.load(Ordering::Relaxed) + SUBSCRIBERS;
                    relay.publish(draft()).await.unwrap();
                    wait_for(&received, &arrived, target).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn draft() -> Draft {
    Draft {
        chat_room_id: RoomId(42),
        sender_id: chat_relay::UserId(7),
        sender_name: "솜솜".into(),
        content: "내일 불꽃놀이 몇 시에 시작해요?".into(),
        accepted_at: 1_796_010_150_801,
        seq: None,
    }
}

async fn wait_for(count: &AtomicUsize, arrived: &Notify, target: usize) {
    while count.load(Ordering::Relaxed) < target {
        arrived.notified().await;
    }
}

criterion_group!(benches, codec, fan_out);
criterion_main!(benches);
