//! The connection engine over channels (no sockets): protocol rules, server-assigned senders,
//! receipts, heart-beats, slow consumers, resuming, unread pushes, shutdown, and SENDs in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chat_relay::relay::Delivery;
use chat_relay::stomp::{Command, Frame, ParseError, Wire};
use chat_relay::{
    ChatConfig, ChatError, ChatServer, Draft, Gatekeeper, Member, MemoryMembers, MemoryPresence,
    MemoryRelay, MemoryStore, MessageStore, Presence, Refusal, Relay, RoomId, Sequencer, Session,
    UserId,
};
use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};

/// `login: name:id`; rooms below 100 are open to everyone, others to nobody.
#[derive(Debug)]
struct Gate;

#[async_trait]
impl Gatekeeper for Gate {
    async fn authenticate(&self, connect: &Frame) -> Result<Session, Refusal> {
        let login = connect
            .header("login")
            .ok_or_else(|| Refusal::new("login required"))?;
        let (name, id) = login
            .split_once(':')
            .ok_or_else(|| Refusal::new("bad login"))?;
        Ok(Member {
            id: id.parse().map_err(|_| Refusal::new("bad id"))?,
            name: name.to_owned(),
        }
        .into())
    }

    async fn may_enter(&self, _: &Member, room: RoomId) -> Result<(), Refusal> {
        if room < RoomId(100) {
            Ok(())
        } else {
            Err(Refusal::new(format!("not a member of {room}")))
        }
    }
}

/// The presence and the membership record behind a test server.
struct Rooms {
    presence: Arc<MemoryPresence>,
    members: Arc<MemoryMembers>,
}

fn server(config: ChatConfig) -> (ChatServer, Rooms) {
    let store = Arc::new(MemoryStore::new());
    let presence = Arc::new(MemoryPresence::new());
    let members = Arc::new(MemoryMembers::new());
    let relay = Arc::new(MemoryRelay::new(Sequencer::new(
        store.clone(),
        presence.clone(),
        members.clone(),
    )));
    (
        ChatServer::new(config, relay, store, presence.clone(), Arc::new(Gate)),
        Rooms { presence, members },
    )
}

async fn started(config: ChatConfig) -> (ChatServer, Rooms) {
    let (chat, rooms) = server(config);
    tokio::spawn(chat.start().await.unwrap());
    (chat, rooms)
}

struct Conn {
    to_server: mpsc::UnboundedSender<Result<Wire, ParseError>>,
    from_server: mpsc::Receiver<Wire>,
}

impl Conn {
    /// A connection whose outgoing side holds `buffer` frames before the server's writes block.
    fn open_with(chat: &ChatServer, buffer: usize) -> Self {
        let (to_server, incoming) = mpsc::unbounded();
        let (outgoing, from_server) = mpsc::channel(buffer);
        let chat = chat.clone();
        tokio::spawn(async move { chat.serve(incoming, outgoing.sink_map_err(drop)).await });
        Self {
            to_server,
            from_server,
        }
    }

    fn open(chat: &ChatServer) -> Self {
        Self::open_with(chat, 10_000)
    }

    async fn connected(chat: &ChatServer, login: &str) -> Self {
        let mut conn = Self::open(chat);
        conn.send(
            Frame::new(Command::Connect)
                .with("accept-version", "1.2")
                .with("login", login),
        );
        let frame = conn.frame().await;
        assert_eq!(frame.command, Command::Connected, "{frame:?}");
        conn
    }

    fn send(&mut self, frame: Frame) {
        self.to_server
            .unbounded_send(Ok(Wire::Frame(frame)))
            .unwrap();
    }

    fn subscribe(&mut self, id: &str, destination: &str, extra: &[(&str, &str)]) {
        let mut frame = Frame::new(Command::Subscribe)
            .with("id", id)
            .with("destination", destination);
        for (k, v) in extra {
            frame = frame.with(*k, *v);
        }
        self.send(frame);
    }

    fn say(&mut self, room: RoomId, content: &str, receipt: Option<&str>) {
        let mut frame = Frame::new(Command::Send).with("destination", "/app/send");
        if let Some(receipt) = receipt {
            frame = frame.with("receipt", receipt);
        }
        self.send(
            frame.with_body(
                serde_json::json!({"roomId": room, "content": content,
                               "senderId": 666, "senderName": "mallory", "sentAt": 1})
                .to_string(),
            ),
        );
    }

    /// Whether the server has sent nothing more so far (and not closed).
    fn nothing_yet(&mut self) -> bool {
        matches!(self.from_server.try_recv(), Err(mpsc::TryRecvError::Empty))
    }

    /// The next frame, skipping heart-beats.
    async fn frame(&mut self) -> Frame {
        loop {
            match self.from_server.next().await.expect("connection closed") {
                Wire::Frame(frame) => return frame,
                Wire::Heartbeat => {}
            }
        }
    }

    async fn message(&mut self) -> serde_json::Value {
        let frame = self.frame().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        serde_json::from_slice(&frame.body).unwrap()
    }

    /// An ERROR frame with `message`, then the end of the connection.
    async fn error_and_close(&mut self, message: &str) -> Frame {
        let frame = self.frame().await;
        assert_eq!(frame.command, Command::Error, "{frame:?}");
        assert_eq!(frame.header("message"), Some(message), "{frame:?}");
        while let Some(item) = self.from_server.next().await {
            assert!(
                matches!(item, Wire::Heartbeat),
                "nothing after ERROR but the close: {item:?}"
            );
        }
        frame
    }
}

const ROOM: &str = "/topic/rooms/";

#[tokio::test]
async fn connected_agrees_version_and_heartbeats() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut conn = Conn::open(&chat);
    conn.send(
        Frame::new(Command::Stomp)
            .with("accept-version", "1.0,1.1")
            .with("heart-beat", "0,5000")
            .with("login", "alice:1"),
    );
    let connected = conn.frame().await;
    assert_eq!(connected.header("version"), Some("1.1"));
    assert_eq!(connected.header("heart-beat"), Some("10000,0"));
    assert_eq!(connected.header("user-name"), Some("1"));
}

/// STOMP 1.2: a CONNECT without `accept-version` is a 1.0 client; a server that does not speak
/// a client's versions answers ERROR with a `version` header listing its own.
#[tokio::test]
async fn a_stomp_1_0_client_is_told_which_versions_to_use_and_why() {
    let (chat, _) = started(ChatConfig::default()).await;
    for (accept, why) in [(None, "STOMP 1.0"), (Some("1.0"), "1.2 and 1.1")] {
        let mut conn = Conn::open(&chat);
        let mut connect = Frame::new(Command::Connect).with("login", "a:1");
        if let Some(accept) = accept {
            connect = connect.with("accept-version", accept);
        }
        conn.send(connect);
        let error = conn.error_and_close("unsupported protocol version").await;
        assert_eq!(error.header("version"), Some("1.2,1.1"), "{error:?}");
        let body = error.body_text().unwrap_or_default();
        assert!(body.contains(why), "{body}");
    }
}

#[tokio::test]
async fn refusals_end_with_an_error_frame() {
    let (chat, _) = started(ChatConfig::default()).await;
    let cases: Vec<(Vec<Frame>, &str)> = vec![
        (
            vec![Frame::new(Command::Send).with("destination", "/x")],
            "expected CONNECT",
        ),
        (
            vec![Frame::new(Command::Connect).with("login", "a:1")],
            "unsupported protocol version",
        ),
        (
            vec![Frame::new(Command::Connect).with("accept-version", "1.2")],
            "login required",
        ),
    ];
    for (frames, message) in cases {
        let mut conn = Conn::open(&chat);
        for frame in frames {
            conn.send(frame);
        }
        conn.error_and_close(message).await;
    }
    let after_connect: Vec<(Frame, &str)> = vec![
        (
            Frame::new(Command::Subscribe)
                .with("id", "1")
                .with("destination", "/topic/other"),
            "unknown destination",
        ),
        (
            Frame::new(Command::Subscribe).with("destination", format!("{ROOM}1")),
            "missing id header",
        ),
        (
            Frame::new(Command::Subscribe)
                .with("id", "1")
                .with("destination", format!("{ROOM}100")),
            "not a member of 100",
        ),
        (
            Frame::new(Command::Send)
                .with("destination", "/app/send")
                .with_body("{"),
            "invalid message body",
        ),
        (
            Frame::new(Command::Send)
                .with("destination", "/app/send")
                .with_body(r#"{"roomId": 1, "content": "   "}"#),
            "invalid content: must not be empty",
        ),
        (
            Frame::new(Command::Send)
                .with("destination", "/app/send")
                .with_body(r#"{"roomId": 100, "content": "hi"}"#),
            "not a member of 100",
        ),
        (
            Frame::new(Command::Begin).with("transaction", "t"),
            "transactions are not supported",
        ),
        (
            Frame::new(Command::Connect).with("accept-version", "1.2"),
            "already connected",
        ),
        (Frame::new(Command::Message), "MESSAGE is a server frame"),
        (
            Frame::new(Command::Unsubscribe).with("id", "9"),
            "no subscription 9",
        ),
    ];
    for (frame, message) in after_connect {
        let mut conn = Conn::connected(&chat, "alice:1").await;
        conn.send(frame.with("receipt", "r-1"));
        let error = conn.error_and_close(message).await;
        assert_eq!(
            error.header("receipt-id"),
            Some("r-1"),
            "ERROR names the frame's receipt"
        );
    }
}

#[tokio::test]
async fn a_malformed_frame_closes_the_connection() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut conn = Conn::connected(&chat, "alice:1").await;
    conn.to_server
        .unbounded_send(Err(ParseError::BadEscape))
        .unwrap();
    let error = conn.error_and_close("malformed frame").await;
    assert!(error.body_text().unwrap().contains("escape"));
}

#[tokio::test]
async fn the_server_names_the_sender_and_sends_receipts() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut alice = Conn::connected(&chat, "alice:1").await;
    alice.subscribe("s1", &format!("{ROOM}7"), &[("receipt", "sub")]);
    assert_eq!(alice.frame().await.header("receipt-id"), Some("sub"));
    alice.say(RoomId(7), "안녕하세요", Some("sent"));
    let mut frames = [alice.frame().await, alice.frame().await];
    frames.sort_by_key(|f| f.command == Command::Message);
    assert_eq!(frames[0].header("receipt-id"), Some("sent"));
    let message = &frames[1];
    assert_eq!(message.header("subscription"), Some("s1"));
    assert_eq!(
        message.header("destination"),
        Some(format!("{ROOM}7").as_str())
    );
    let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(body["senderId"], 1);
    assert_eq!(body["senderName"], "alice");
    assert_eq!(body["content"], "안녕하세요");
    assert_ne!(body["sentAt"], 1, "the client's sentAt is ignored");
    assert_eq!(
        message.header("message-id").unwrap(),
        format!("7-{}", body["sentAt"])
    );
}

#[tokio::test]
async fn client_ack_mode_adds_an_ack_header_and_accepts_acks() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut alice = Conn::connected(&chat, "alice:1").await;
    alice.subscribe("s1", &format!("{ROOM}7"), &[("ack", "client-individual")]);
    alice.say(RoomId(7), "ack me", None);
    let message = alice.frame().await;
    let ack = message.header("ack").unwrap().to_owned();
    alice.send(
        Frame::new(Command::Ack)
            .with("id", ack)
            .with("receipt", "acked"),
    );
    assert_eq!(alice.frame().await.header("receipt-id"), Some("acked"));
    alice.send(Frame::new(Command::Disconnect).with("receipt", "bye"));
    assert_eq!(alice.frame().await.header("receipt-id"), Some("bye"));
    assert!(
        alice.from_server.next().await.is_none(),
        "closed after DISCONNECT"
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeats_go_out_when_idle_and_silence_is_fatal() {
    let (chat, _) = started(ChatConfig::default()).await;
    // The client will send every 1 s (the server wants 10 s) and wants one every 1 s (the
    // server offers 10 s): both directions at 10 s.
    let mut conn = Conn::open(&chat);
    conn.send(
        Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("heart-beat", "1000,1000")
            .with("login", "alice:1"),
    );
    assert_eq!(conn.frame().await.header("heart-beat"), Some("10000,10000"));
    let start = tokio::time::Instant::now();
    assert_eq!(conn.from_server.next().await, Some(Wire::Heartbeat));
    assert_eq!(start.elapsed().as_secs(), 10, "virtual time");
    // Keep-alives from the client keep it open...
    conn.to_server.unbounded_send(Ok(Wire::Heartbeat)).unwrap();
    // ...silence for twice the period ends it.
    let error = conn.error_and_close("heart-beat timeout").await;
    assert_eq!(error.command, Command::Error);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected() {
    let mut config = ChatConfig::default();
    config.outbound_capacity = 4;
    let (chat, _) = started(config).await;
    // Its writes block after one frame: a peer that stopped reading.
    let mut slow = Conn::open_with(&chat, 0);
    slow.send(
        Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("login", "slow:2"),
    );
    slow.subscribe("s", &format!("{ROOM}3"), &[("receipt", "r")]);
    assert_eq!(slow.frame().await.command, Command::Connected);
    assert_eq!(slow.frame().await.command, Command::Receipt);
    // From here on it reads nothing until the others are done.
    let mut fast = Conn::connected(&chat, "fast:1").await;
    for i in 0..50 {
        fast.say(RoomId(3), &format!("m{i}"), None);
    }
    fast.say(RoomId(3), "last", Some("done"));
    assert_eq!(fast.frame().await.header("receipt-id"), Some("done"));
    // Now read what the slow one was sent: a few frames, then ERROR.
    let mut saw_error = false;
    while let Some(item) = slow.from_server.next().await {
        if let Wire::Frame(frame) = item
            && frame.command == Command::Error
        {
            assert_eq!(frame.header("message"), Some("slow consumer"));
            saw_error = true;
        }
    }
    assert!(saw_error, "closed with an ERROR frame");
    assert!(chat.stats().overflowed > 0);
}

#[tokio::test]
async fn resuming_replays_exactly_what_was_missed_then_goes_live() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut bob = Conn::connected(&chat, "bob:2").await;
    let mut alice = Conn::connected(&chat, "alice:1").await;
    alice.subscribe("s", &format!("{ROOM}5"), &[("receipt", "r")]);
    assert_eq!(alice.frame().await.command, Command::Receipt);
    for i in 0..4 {
        bob.say(RoomId(5), &format!("m{i}"), None);
    }
    let first = alice.message().await;
    let second = alice.message().await;
    assert_eq!(
        (first["content"].as_str(), second["content"].as_str()),
        (Some("m0"), Some("m1"))
    );
    // The network drops with m2 and m3 possibly in flight.
    drop(alice);
    for i in 4..7 {
        bob.say(RoomId(5), &format!("m{i}"), None);
    }
    bob.say(RoomId(5), "m7", Some("sent"));
    assert_eq!(bob.frame().await.command, Command::Receipt);
    let mut alice = Conn::connected(&chat, "alice:1").await;
    let last_seen = second["sentAt"].to_string();
    alice.subscribe("s", &format!("{ROOM}5"), &[("resume-after", &last_seen)]);
    let mut replayed = Vec::new();
    for _ in 2..8 {
        replayed.push(
            alice.message().await["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(replayed, ["m2", "m3", "m4", "m5", "m6", "m7"]);
    bob.say(RoomId(5), "live", None);
    assert_eq!(
        alice.message().await["content"],
        "live",
        "no repeat, no gap"
    );
}

#[tokio::test]
async fn absent_members_get_their_unread_counts_pushed() {
    let (chat, rooms) = started(ChatConfig::default()).await;
    let presence = &rooms.presence;
    rooms.members.join(RoomId(9), UserId(2));
    let mut bob = Conn::connected(&chat, "bob:2").await;
    bob.subscribe("u", "/user/queue/unread", &[("receipt", "r")]);
    assert_eq!(bob.frame().await.command, Command::Receipt);
    let mut alice = Conn::connected(&chat, "alice:1").await;
    alice.say(RoomId(9), "one", None);
    alice.say(RoomId(9), "two", None);
    assert_eq!(
        bob.message().await,
        serde_json::json!({"roomId": 9, "unreadCount": 1})
    );
    assert_eq!(
        bob.message().await,
        serde_json::json!({"roomId": 9, "unreadCount": 2})
    );
    // Entering the room resets the count and stops counting.
    bob.subscribe("room", &format!("{ROOM}9"), &[("receipt", "in")]);
    assert_eq!(bob.frame().await.command, Command::Receipt);
    assert_eq!(
        presence.unread(UserId(2), &[RoomId(9)]).await.unwrap(),
        [Some(0)]
    );
    alice.say(RoomId(9), "three", None);
    assert_eq!(bob.message().await["content"], "three");
    assert_eq!(
        presence.unread(UserId(2), &[RoomId(9)]).await.unwrap(),
        [Some(0)]
    );
    // Leaving the room (closing) makes the member absent again.
    drop(bob);
    let mut check = 0;
    while presence.is_present(RoomId(9), UserId(2)).await.unwrap() {
        tokio::task::yield_now().await;
        check += 1;
        assert!(check < 100_000, "presence never cleared");
    }
}

#[tokio::test]
async fn shutdown_closes_connections_with_an_error() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut alice = Conn::connected(&chat, "alice:1").await;
    chat.shutdown();
    alice.error_and_close("server shutting down").await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_connects_is_closed() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut conn = Conn::open(&chat);
    tokio::time::sleep(Duration::from_secs(11)).await;
    conn.error_and_close("no CONNECT frame in time").await;
}

/// `/user/queue/count/N` counts 1..=N for its member (then ends); `/user/queue/forever` sends
/// one item and then nothing, and tells `dropped` when the connection lets go of it;
/// `/user/queue/closed` is refused.
#[derive(Debug)]
struct Counting {
    dropped: tokio::sync::mpsc::UnboundedSender<()>,
}

struct TellOnDrop(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for TellOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[async_trait]
impl chat_relay::Feeds for Counting {
    async fn open(
        &self,
        member: &Member,
        destination: &str,
    ) -> Result<Option<chat_relay::FeedStream>, Refusal> {
        if destination == "/user/queue/closed" {
            return Err(Refusal::new("closed for you"));
        }
        if destination == "/user/queue/forever" {
            let tell = TellOnDrop(self.dropped.clone());
            let first = futures::stream::once(async { bytes::Bytes::from_static(b"{\"n\":1}") });
            let rest = futures::stream::pending().map(move |b: bytes::Bytes| {
                let _keep = &tell;
                b
            });
            return Ok(Some(first.chain(rest).boxed()));
        }
        let Some(n) = destination
            .strip_prefix("/user/queue/count/")
            .and_then(|n| n.parse::<i64>().ok())
        else {
            return Ok(None);
        };
        let id = member.id;
        Ok(Some(
            futures::stream::iter(1..=n)
                .map(move |i| {
                    bytes::Bytes::from(serde_json::json!({"member": id, "n": i}).to_string())
                })
                .boxed(),
        ))
    }
}

#[tokio::test]
async fn an_application_feed_sends_its_items_and_stops_on_unsubscribe() {
    let (dropped_tx, mut dropped) = tokio::sync::mpsc::unbounded_channel();
    let (chat, _) = server(ChatConfig::default());
    let chat = chat.with_feeds(Arc::new(Counting {
        dropped: dropped_tx,
    }));
    tokio::spawn(chat.start().await.unwrap());

    let mut conn = Conn::connected(&chat, "alice:7").await;
    conn.subscribe("c", "/user/queue/count/3", &[]);
    for n in 1..=3 {
        let frame = conn.frame().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        assert_eq!(frame.header("subscription"), Some("c"));
        assert_eq!(frame.header("destination"), Some("/user/queue/count/3"));
        let body: serde_json::Value = serde_json::from_slice(&frame.body).unwrap();
        assert_eq!(body, serde_json::json!({"member": 7, "n": n}));
    }

    // A feed that never ends is let go of when the client unsubscribes; the connection stays.
    conn.subscribe("f", "/user/queue/forever", &[]);
    assert_eq!(conn.message().await, serde_json::json!({"n": 1}));
    conn.send(
        Frame::new(Command::Unsubscribe)
            .with("id", "f")
            .with("receipt", "gone"),
    );
    let receipt = conn.frame().await;
    assert_eq!(receipt.header("receipt-id"), Some("gone"), "{receipt:?}");
    dropped.recv().await.expect("the feed was dropped");

    // And when the connection closes.
    conn.subscribe("g", "/user/queue/forever", &[]);
    assert_eq!(conn.message().await, serde_json::json!({"n": 1}));
    drop(conn);
    dropped.recv().await.expect("the feed was dropped");

    // A refusal and a destination no feed knows both end the connection with an ERROR frame.
    let mut conn = Conn::connected(&chat, "bob:8").await;
    conn.subscribe("x", "/user/queue/closed", &[]);
    conn.error_and_close("closed for you").await;
    let mut conn = Conn::connected(&chat, "bob:8").await;
    conn.subscribe("x", "/user/queue/unknown", &[]);
    conn.error_and_close("unknown destination").await;
}

/// Rooms 1 to 9 hold every publish until [`HeldRelay::release`]; a draft saying "fail" is
/// refused: SENDs stay in flight for as long as a test needs.
#[derive(Debug)]
struct HeldRelay {
    inner: MemoryRelay,
    gate: tokio::sync::Semaphore,
    /// Publishes begun, held ones included.
    begun: AtomicUsize,
}

impl HeldRelay {
    fn release(&self, publishes: usize) {
        self.gate.add_permits(publishes);
    }

    fn begun(&self) -> usize {
        self.begun.load(Ordering::SeqCst)
    }

    /// Yields until `n` publishes have begun.
    async fn until_begun(&self, n: usize) {
        let mut spins = 0;
        while self.begun() < n {
            tokio::task::yield_now().await;
            spins += 1;
            assert!(spins < 100_000, "only {} publishes began", self.begun());
        }
    }
}

#[async_trait]
impl Relay for HeldRelay {
    async fn publish(&self, draft: Draft) -> chat_relay::Result<()> {
        self.begun.fetch_add(1, Ordering::SeqCst);
        if draft.content == "fail" {
            return Err(ChatError::unavailable("test", "refused"));
        }
        if (1..=9).contains(&draft.chat_room_id.0) {
            self.gate.acquire().await.unwrap().forget();
        }
        self.inner.publish(draft).await
    }

    async fn subscribe(&self) -> chat_relay::Result<BoxStream<'static, Delivery>> {
        self.inner.subscribe().await
    }
}

async fn held(config: ChatConfig) -> (ChatServer, Arc<HeldRelay>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let presence = Arc::new(MemoryPresence::new());
    let relay = Arc::new(HeldRelay {
        inner: MemoryRelay::new(Sequencer::new(
            store.clone(),
            presence.clone(),
            Arc::new(MemoryMembers::new()),
        )),
        gate: tokio::sync::Semaphore::new(0),
        begun: AtomicUsize::new(0),
    });
    let chat = ChatServer::new(
        config,
        relay.clone(),
        store.clone(),
        presence,
        Arc::new(Gate),
    );
    tokio::spawn(chat.start().await.unwrap());
    (chat, relay, store)
}

/// Lets every other task run a while: long enough for a connection to read what it is allowed
/// to, on the tests' single-threaded runtime.
async fn settle() {
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
}

/// A guard against hanging for ever where the server would never send what the test awaits.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} never came"))
}

#[tokio::test]
async fn a_send_held_up_in_one_room_does_not_hold_up_other_rooms() {
    let (chat, relay, _) = held(ChatConfig::default()).await;
    let mut alice = Conn::connected(&chat, "alice:1").await;
    alice.subscribe("held", &format!("{ROOM}1"), &[("receipt", "s1")]);
    alice.subscribe("free", &format!("{ROOM}20"), &[("receipt", "s2")]);
    assert_eq!(alice.frame().await.header("receipt-id"), Some("s1"));
    assert_eq!(alice.frame().await.header("receipt-id"), Some("s2"));

    let mut bob = Conn::connected(&chat, "bob:2").await;
    bob.say(RoomId(1), "a1", Some("r1"));
    bob.say(RoomId(20), "b1", Some("r2"));
    bob.say(RoomId(1), "a2", Some("r3"));
    bob.say(RoomId(20), "b2", Some("r4"));
    // Room 20's messages arrive while room 1's first is still being published.
    for expected in ["b1", "b2"] {
        let message = within("room 20's message", alice.message()).await;
        assert_eq!(message["content"], expected);
        assert_eq!(message["roomId"], 20);
    }
    relay.until_begun(3).await;
    settle().await;
    assert!(
        bob.nothing_yet(),
        "no receipt before the first SEND's: receipts keep the frames' order"
    );
    assert_eq!(relay.begun(), 3, "room 1's second SEND waits for its first");

    relay.release(2);
    for expected in ["a1", "a2"] {
        assert_eq!(alice.message().await["content"], expected);
    }
    for expected in ["r1", "r2", "r3", "r4"] {
        let receipt = bob.frame().await;
        assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
        assert_eq!(receipt.header("receipt-id"), Some(expected));
    }
}

#[tokio::test]
async fn a_later_frame_is_handled_once_every_send_before_it_is_stored() {
    let (chat, relay, store) = held(ChatConfig::default()).await;
    let mut bob = Conn::connected(&chat, "bob:2").await;
    bob.say(RoomId(3), "before goodbye", None);
    bob.send(Frame::new(Command::Disconnect).with("receipt", "bye"));
    relay.until_begun(1).await;
    settle().await;
    assert!(
        bob.nothing_yet(),
        "DISCONNECT's receipt waits for the SEND before it"
    );
    relay.release(1);
    let receipt = bob.frame().await;
    assert_eq!(receipt.header("receipt-id"), Some("bye"), "{receipt:?}");
    let stored = store.history(RoomId(3), None, 10).await.unwrap().messages;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, "before goodbye");
}

#[tokio::test]
async fn a_failed_send_ends_the_connection_and_stops_later_sends_to_its_room() {
    let (chat, relay, store) = held(ChatConfig::default()).await;
    let mut bob = Conn::connected(&chat, "bob:2").await;
    bob.say(RoomId(30), "fail", Some("r1"));
    bob.say(RoomId(30), "after the failure", Some("r2"));
    let error = bob.error_and_close("temporarily unavailable").await;
    assert_eq!(error.header("receipt-id"), Some("r1"));
    settle().await;
    assert_eq!(relay.begun(), 1, "the second SEND was never published");
    assert!(
        store
            .history(RoomId(30), None, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

#[tokio::test]
async fn a_connection_reads_no_more_sends_than_it_may_have_in_flight() {
    let mut config = ChatConfig::default();
    config.sends_in_flight = 2;
    let (chat, relay, store) = held(config).await;
    let mut bob = Conn::connected(&chat, "bob:2").await;
    for room in [4, 5, 6] {
        bob.say(RoomId(room), &format!("to {room}"), None);
    }
    relay.until_begun(2).await;
    settle().await;
    assert_eq!(
        relay.begun(),
        2,
        "the third SEND is not read while two are in flight"
    );
    relay.release(1);
    relay.until_begun(3).await;
    relay.release(2);
    bob.send(Frame::new(Command::Disconnect).with("receipt", "bye"));
    assert_eq!(bob.frame().await.header("receipt-id"), Some("bye"));
    for room in [4, 5, 6] {
        let stored = store
            .history(RoomId(room), None, 10)
            .await
            .unwrap()
            .messages;
        assert_eq!(stored.len(), 1, "room {room}");
    }
}

// --- Hostile clients ---------------------------------------------------------------------------

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let mut config = ChatConfig::default();
    config.max_subscriptions = 3;
    let (chat, _) = started(config).await;
    let mut alice = Conn::connected(&chat, "alice:1").await;
    for i in 0..3 {
        alice.subscribe(&format!("s{i}"), &format!("{ROOM}{i}"), &[]);
    }
    alice.subscribe("s3", &format!("{ROOM}3"), &[]);
    let error = alice.error_and_close("too many subscriptions").await;
    assert!(String::from_utf8_lossy(&error.body).contains("at most 3"));
}

#[tokio::test]
async fn connections_per_user_are_capped_on_a_node() {
    let mut config = ChatConfig::default();
    config.max_connections_per_user = 2;
    let (chat, _) = started(config).await;
    let first = Conn::connected(&chat, "alice:1").await;
    let _second = Conn::connected(&chat, "alice:1").await;
    let mut third = Conn::open(&chat);
    third.send(
        Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("login", "alice:1"),
    );
    third.error_and_close("too many connections").await;
    // Another user is not affected, and a closed connection makes room.
    let _bob = Conn::connected(&chat, "bob:2").await;
    drop(first);
    within("a free place", async {
        while chat.connections_of(UserId(1)) >= 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let _again = Conn::connected(&chat, "alice:1").await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_sends_is_closed_and_a_steady_sender_is_not() {
    let mut config = ChatConfig::default();
    config.send_rate = Some(chat_relay::SendRate {
        per_second: 2.0,
        burst: 5,
    });
    let (chat, _) = started(config).await;
    let mut steady = Conn::connected(&chat, "steady:1").await;
    for i in 0..20 {
        steady.say(RoomId(1), &format!("m{i}"), Some(&format!("r{i}")));
        assert_eq!(steady.frame().await.command, Command::Receipt);
        tokio::time::advance(Duration::from_millis(500)).await;
    }
    let mut flood = Conn::connected(&chat, "flood:2").await;
    for i in 0..6 {
        flood.say(RoomId(1), &format!("f{i}"), None);
    }
    let error = flood.error_and_close("too many messages").await;
    assert!(
        String::from_utf8_lossy(&error.body).contains("2 messages a second"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_replay_is_capped_to_the_newest_messages_and_marks_the_gap() {
    let mut config = ChatConfig::default();
    config.max_replay = 150;
    config.send_rate = None;
    let (chat, _) = started(config).await;
    let mut bob = Conn::connected(&chat, "bob:2").await;
    for i in 0..400 {
        bob.say(RoomId(5), &format!("m{i}"), None);
    }
    bob.say(RoomId(5), "m400", Some("sent"));
    assert_eq!(bob.frame().await.command, Command::Receipt);
    let mut alice = Conn::connected(&chat, "alice:1").await;
    alice.subscribe("s", &format!("{ROOM}5"), &[("resume-after", "0")]);
    let first = alice.frame().await;
    assert_eq!(first.header("replay-gap"), Some("true"), "{first:?}");
    let first: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(first["content"], "m251", "the newest 150 of 401");
    let mut last = first;
    for _ in 1..150 {
        let frame = alice.frame().await;
        assert_eq!(frame.header("replay-gap"), None);
        last = serde_json::from_slice(&frame.body).unwrap();
    }
    assert_eq!(last["content"], "m400");
    // A replay within the cap has no gap.
    let mut carol = Conn::connected(&chat, "carol:3").await;
    bob.say(RoomId(5), "m401", Some("again"));
    assert_eq!(bob.frame().await.command, Command::Receipt);
    carol.subscribe(
        "s",
        &format!("{ROOM}5"),
        &[("resume-after", &last["sentAt"].to_string())],
    );
    let only = carol.frame().await;
    assert_eq!(only.header("replay-gap"), None);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&only.body).unwrap()["content"],
        "m401"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stopped_reading_is_closed_after_the_write_timeout() {
    let mut config = ChatConfig::default();
    config.write_timeout = Duration::from_secs(5);
    // Its outbox never fills: only the timeout can end it.
    config.outbound_capacity = 100_000;
    config.send_rate = None;
    let (chat, _) = started(config).await;
    let mut bob = Conn::connected(&chat, "bob:2").await;
    for i in 0..200 {
        bob.say(RoomId(5), &format!("m{i}"), None);
    }
    bob.say(RoomId(5), "last", Some("sent"));
    assert_eq!(bob.frame().await.command, Command::Receipt);
    // A sink with room for two frames that nobody reads.
    let mut stuck = Conn::open_with(&chat, 1);
    stuck.send(
        Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("login", "stuck:3"),
    );
    stuck.subscribe("s", &format!("{ROOM}5"), &[("resume-after", "0")]);
    tokio::time::sleep(Duration::from_secs(60)).await;
    // The connection gave up on its writes: reading now finds the end after a few frames.
    let mut frames = 0;
    while let Some(item) = stuck.from_server.next().await {
        if let Wire::Frame(_) = item {
            frames += 1;
        }
    }
    assert!(
        frames < 200,
        "closed before its replay was read: {frames} frames"
    );
    // Paused time moves only while every task waits: sleep, do not spin.
    within("the stuck connection's end", async {
        while chat.stats().connections > 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn disconnecting_a_user_closes_every_connection_of_theirs_with_the_reason() {
    let (chat, rooms) = started(ChatConfig::default()).await;
    rooms.members.join(RoomId(5), UserId(1));
    let mut phone = Conn::connected(&chat, "alice:1").await;
    let mut laptop = Conn::connected(&chat, "alice:1").await;
    phone.subscribe("s", &format!("{ROOM}5"), &[("receipt", "r")]);
    assert_eq!(phone.frame().await.command, Command::Receipt);
    let mut bob = Conn::connected(&chat, "bob:2").await;
    assert_eq!(chat.disconnect_user(UserId(1), "signed out"), 2);
    phone.error_and_close("signed out").await;
    laptop.error_and_close("signed out").await;
    // Bob is untouched; alice is no longer present in the room.
    bob.send(Frame::new(Command::Disconnect).with("receipt", "bye"));
    assert_eq!(bob.frame().await.header("receipt-id"), Some("bye"));
    within("alice's exit", async {
        while rooms
            .presence
            .is_present(RoomId(5), UserId(1))
            .await
            .unwrap()
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn leaving_a_room_closes_only_the_connections_that_entered_it() {
    let (chat, _) = started(ChatConfig::default()).await;
    let mut in_room = Conn::connected(&chat, "alice:1").await;
    in_room.subscribe("s", &format!("{ROOM}5"), &[("receipt", "r")]);
    assert_eq!(in_room.frame().await.command, Command::Receipt);
    let mut elsewhere = Conn::connected(&chat, "alice:1").await;
    elsewhere.subscribe("s", &format!("{ROOM}6"), &[("receipt", "r")]);
    assert_eq!(elsewhere.frame().await.command, Command::Receipt);
    chat.leave_room(UserId(1), RoomId(5), "you left chat room 5");
    in_room.error_and_close("you left chat room 5").await;
    elsewhere.send(Frame::new(Command::Disconnect).with("receipt", "bye"));
    assert_eq!(elsewhere.frame().await.header("receipt-id"), Some("bye"));
}

#[tokio::test(start_paused = true)]
async fn a_connection_closes_when_its_credentials_expire() {
    #[derive(Debug)]
    struct Expiring;
    #[async_trait]
    impl Gatekeeper for Expiring {
        async fn authenticate(&self, _: &Frame) -> Result<Session, Refusal> {
            Ok(Session {
                member: Member {
                    id: UserId(1),
                    name: "alice".into(),
                },
                expires_at: Some(chrono_now_ms() + 30_000),
            })
        }
        async fn may_enter(&self, _: &Member, _: RoomId) -> Result<(), Refusal> {
            Ok(())
        }
    }
    fn chrono_now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }
    let store = Arc::new(MemoryStore::new());
    let presence = Arc::new(MemoryPresence::new());
    let relay = Arc::new(MemoryRelay::new(Sequencer::new(
        store.clone(),
        presence.clone(),
        Arc::new(MemoryMembers::new()),
    )));
    let mut config = ChatConfig::default();
    config.heartbeat_ms = (0, 0);
    let chat = ChatServer::new(config, relay, store, presence, Arc::new(Expiring));
    tokio::spawn(chat.start().await.unwrap());
    let mut conn = Conn::connected(&chat, "alice:1").await;
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(conn.nothing_yet(), "still open before expiry");
    let error = conn.error_and_close("session expired").await;
    assert!(String::from_utf8_lossy(&error.body).contains("fresh access token"));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_its_connected_frame_does_not_keep_its_place() {
    let mut config = ChatConfig::default();
    config.max_connections_per_user = 1;
    config.write_timeout = Duration::from_secs(5);
    let (chat, _) = started(config).await;
    // A flush waits for the channel to have room: with none, CONNECTED never goes out.
    let mut deaf = Conn::open_with(&chat, 0);
    deaf.send(
        Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("login", "alice:1"),
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        chat.connections_of(UserId(1)),
        0,
        "its place was given back"
    );
    let _again = Conn::connected(&chat, "alice:1").await;
}
