//! The chat engine's hot paths: decoding a client's SEND frame, encoding a MESSAGE, and one
//! node's hub handing a delivery to 1,000 subscribers of a room.
//!
//! `cargo bench -p somsom-benches --bench chat`

use std::hint::black_box;
use std::sync::Arc;

use chat_relay::relay::Delivery;
use chat_relay::stomp::{Command, Frame, Limits, decode_all, to_bytes};
use chat_relay::{ChatMessage, Hub};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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

fn fan_out(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 1_000;
    let hub = Arc::new(Hub::new());
    let mut inboxes = Vec::new();
    for i in 0..SUBSCRIBERS {
        let (outbox, rx) = hub
            .connect(i as i64, 1 << 20, 1)
            .expect("one connection per user");
        hub.subscribe_room(&outbox, Arc::from(i.to_string()), 42);
        inboxes.push((outbox, rx));
    }
    let delivery = Delivery {
        message: ChatMessage {
            content: "내일 불꽃놀이 몇 시에 시작해요?".into(),
            sender_id: 7,
            sender_name: "솜솜".into(),
            chat_room_id: 42,
            send_time: 1_796_010_150_801,
        },
        unread: Vec::new(),
    };
    let mut group = c.benchmark_group("hub");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    group.bench_function("dispatch to 1,000 subscribers", |b| {
        b.iter(|| {
            hub.dispatch(black_box(&delivery));
            // Empty the outboxes so they never fill (the connections' side of the work).
            for (_, rx) in &mut inboxes {
                while rx.try_recv().is_ok() {}
            }
        })
    });
    group.finish();
}

criterion_group!(benches, codec, fan_out);
criterion_main!(benches);
