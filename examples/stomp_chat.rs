//! A chat server of its own on axum, with `chat-relay` and nothing from SomSom's server: anyone
//! connects with a nickname (`login` header), every room is open, messages live in memory.
//! Any STOMP-over-WebSocket client (stompjs, stomp.py) can use it.
//!
//! ```sh
//! cargo run -p somsom-examples --example stomp_chat            # serves ws://127.0.0.1:8083/ws
//! cargo run -p somsom-examples --example stomp_chat -- --demo  # two clients talk, then exit
//! ```
//!
//! With stomp.py: `stomp.WSStompConnection([("127.0.0.1", 8083)], ws_path="/ws")`, connect with
//! `username="ana"`, subscribe to `/topic/rooms/1`, send `{"roomId": 1,
//! "content": "hi"}` to `/app/send`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::serve::{Listener, ListenerExt};
use chat_relay::client::Client;
use chat_relay::stomp::{Command, Frame};
use chat_relay::websocket::{self, Buffers};
use chat_relay::{
    ChatConfig, ChatServer, Gatekeeper, Member, MemoryMembers, MemoryPresence, MemoryRelay,
    MemoryStore, Refusal, RoomId, Sequencer, Session,
};
use serde_json::json;

/// Nicknames get ids in order of first appearance.
#[derive(Debug, Default)]
struct Nicknames(Mutex<HashMap<String, i64>>);

#[async_trait]
impl Gatekeeper for Nicknames {
    async fn authenticate(&self, connect: &Frame) -> Result<Session, Refusal> {
        let name = connect
            .header("login")
            .filter(|n| !n.trim().is_empty() && n.chars().count() <= 20)
            .ok_or_else(|| Refusal::new("a login (nickname, up to 20 characters) is required"))?;
        let mut ids = self.0.lock().unwrap();
        let next = ids.len() as i64 + 1;
        let id = *ids.entry(name.to_owned()).or_insert(next);
        Ok(Member {
            id: chat_relay::UserId(id),
            name: name.to_owned(),
        }
        .into())
    }

    async fn may_enter(&self, _: &Member, room: RoomId) -> Result<(), Refusal> {
        if room > RoomId(0) {
            Ok(())
        } else {
            Err(Refusal::new("rooms are numbered from 1"))
        }
    }
}

async fn ws(State(chat): State<ChatServer>, upgrade: WebSocketUpgrade) -> Response {
    websocket::upgrade(upgrade, chat, Buffers::default())
}

#[tokio::main]
async fn main() {
    let store = Arc::new(MemoryStore::new());
    let presence = Arc::new(MemoryPresence::new());
    // Nobody is a member of any room here, so nothing is counted unread.
    let relay = Arc::new(MemoryRelay::new(Sequencer::new(
        store.clone(),
        presence.clone(),
        Arc::new(MemoryMembers::new()),
    )));
    let chat = ChatServer::new(
        ChatConfig::default(),
        relay,
        store,
        presence,
        Arc::new(Nicknames::default()),
    );
    tokio::spawn(chat.start().await.expect("the memory relay subscribes"));
    let app = Router::new().route("/ws", get(ws)).with_state(chat);

    let demo = std::env::args().any(|a| a == "--demo");
    let addr = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8083"
    };
    // Small chat frames leave at once rather than wait for the previous one's acknowledgement.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap()
        .tap_io(|tcp| tcp.set_nodelay(true).unwrap_or_default());
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    eprintln!("STOMP over WebSocket at {url}");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if !demo {
        server.await.unwrap().unwrap();
        return;
    }

    let (mut ana, _) = Client::connect(&url, &[("login", "ana")]).await.unwrap();
    let (mut bo, _) = Client::connect(&url, &[("login", "bo")]).await.unwrap();
    for client in [&mut ana, &mut bo] {
        client
            .subscribe("0", "/topic/rooms/1", &[("receipt", "in")])
            .await
            .unwrap();
        client.next_frame().await.unwrap();
    }
    ana.send_json(
        "/app/send",
        &json!({"roomId": 1, "content": "안녕, bo!"}),
        &[],
    )
    .await
    .unwrap();
    let frame = bo.next_frame().await.unwrap().unwrap();
    assert_eq!(frame.command, Command::Message);
    eprintln!("bo received: {}", frame.body_text().unwrap());
}
