//! One STOMP connection, from CONNECT to close, over any stream and sink of [`Wire`] items: the
//! WebSocket adapter and the tests (channels) drive the same code.
//!
//! What a client may do:
//!
//! - CONNECT (or STOMP) with `accept-version` 1.1 or 1.2 and whatever credentials the
//!   [`Gatekeeper`] reads; heart-beats are agreed as the spec says;
//! - SUBSCRIBE to a room's topic (`{room_prefix}{N}`), if the gatekeeper lets them in, with an
//!   optional `resume-after: <sendTime>` header that first replays, in order, every stored
//!   message after that one, then continues live with no gap and no repeat;
//! - SUBSCRIBE to their own unread counts (`unread` destination);
//! - SUBSCRIBE to a destination the application serves itself ([`Feeds`]: live waiting-room
//!   ranks, say), which sends whatever the feed yields until it ends;
//! - SEND `{"chatRoomId": N, "content": "…"}` to the `send` destination: the sender and the
//!   time are the server's, whatever the body says;
//! - UNSUBSCRIBE, ACK/NACK (accepted; chat messages are not redelivered), DISCONNECT, and a
//!   `receipt` header on any of them.
//!
//! Anything else (a malformed frame, a frame before CONNECT, an unknown destination, a room the
//! member may not enter, a transaction) gets an ERROR frame and the connection closes, as STOMP
//! prescribes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod sending;

use self::sending::{Sending, Sent};
use crate::hub::{Hub, Outbox, Push};
use crate::relay::Relay;
use crate::stomp::{self, Command, Frame, Limits, ParseError, Wire};
use crate::store::PAGE_MAX;
use crate::{ChatError, Clock, Draft, Member, MessageStore, Presence, RoomId, SystemClock, UserId};

/// How long the last words (an ERROR frame, the close) may take to a peer that is not reading.
const FAREWELL: Duration = Duration::from_secs(5);

/// Destinations the server understands. The defaults are neutral; an application speaking an
/// existing protocol sets its own with [`Destinations::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Destinations {
    /// Where clients SEND messages.
    pub send: String,
    /// A room's topic is this prefix and the room id.
    pub room_prefix: String,
    /// Where a client subscribes to its own unread counts.
    pub unread: String,
}

impl Destinations {
    /// Destinations named by the application.
    pub fn new(
        send: impl Into<String>,
        room_prefix: impl Into<String>,
        unread: impl Into<String>,
    ) -> Self {
        Self {
            send: send.into(),
            room_prefix: room_prefix.into(),
            unread: unread.into(),
        }
    }

    /// The topic of `room`.
    pub fn room(&self, room: RoomId) -> String {
        format!("{}{room}", self.room_prefix)
    }
}

impl Default for Destinations {
    /// `/app/send`, `/topic/rooms/{id}`, `/user/queue/unread`.
    fn default() -> Self {
        Self::new("/app/send", "/topic/rooms/", "/user/queue/unread")
    }
}

/// How connections behave.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Destinations.
    pub destinations: Destinations,
    /// Frame limits.
    pub limits: Limits,
    /// The server's heart-beat wishes `(send every, expect every)` in milliseconds; 0 is off.
    pub heartbeat_ms: (u64, u64),
    /// Pushes a connection may have waiting before it is closed as too slow.
    pub outbound_capacity: usize,
    /// SENDs a connection may have being published at once; it reads no more frames until one
    /// is done. A room's messages from one connection are still published in order.
    pub sends_in_flight: usize,
    /// How long a new connection has to send CONNECT.
    pub connect_timeout: Duration,
    /// The `server` header of CONNECTED.
    pub server_name: String,
    /// Subscriptions one connection may hold at once.
    pub max_subscriptions: usize,
    /// Connections one user may have open on this node at once.
    pub max_connections_per_user: usize,
    /// How fast one connection may SEND: a token bucket. `None`: no limit.
    pub send_rate: Option<SendRate>,
    /// Most messages a `resume-after` replay sends: past that, the newest this many, the first
    /// with a `replay-gap: true` header (the client reads the rest from history).
    pub max_replay: usize,
    /// How long one write to the client may take: a client that stopped reading is closed.
    pub write_timeout: Duration,
}

/// A connection's SEND allowance: `per_second` sustained, in bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendRate {
    /// Messages per second, sustained.
    pub per_second: f64,
    /// Messages at once.
    pub burst: u32,
}

/// A token bucket for one connection's SENDs.
#[derive(Debug)]
struct Bucket {
    rate: SendRate,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: SendRate) -> Self {
        Self {
            rate,
            tokens: f64::from(rate.burst.max(1)),
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate.per_second;
        self.tokens = (self.tokens + refill).min(f64::from(self.rate.burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            destinations: Destinations::default(),
            limits: Limits::default(),
            heartbeat_ms: (10_000, 10_000),
            outbound_capacity: 1024,
            sends_in_flight: 64,
            connect_timeout: Duration::from_secs(10),
            server_name: concat!("chat-relay/", env!("CARGO_PKG_VERSION")).into(),
            max_subscriptions: 64,
            max_connections_per_user: 16,
            // Far above a person's typing; a script flooding a room is closed.
            send_rate: Some(SendRate {
                per_second: 10.0,
                burst: 100,
            }),
            max_replay: 500,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the gatekeeper said no; `message` goes into the ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Short reason, safe to show the client.
    pub message: String,
}

impl Refusal {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Who a CONNECT frame authenticated, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The member.
    pub member: Member,
    /// When the credentials expire (epoch milliseconds): the connection closes then, with an
    /// ERROR asking the client to reconnect with fresh ones. `None`: never.
    pub expires_at: Option<i64>,
}

impl From<Member> for Session {
    fn from(member: Member) -> Self {
        Self {
            member,
            expires_at: None,
        }
    }
}

/// The application's say in who may connect and where they may go.
#[async_trait]
pub trait Gatekeeper: Send + Sync + std::fmt::Debug + 'static {
    /// Who this CONNECT frame authenticates (its headers: `Authorization`, `login`/`passcode`, …).
    async fn authenticate(&self, connect: &Frame) -> Result<Session, Refusal>;

    /// Whether `member` may read and write in `room`. Asked once per room and connection.
    async fn may_enter(&self, member: &Member, room: RoomId) -> Result<(), Refusal>;
}

/// What a [`Feeds`] destination sends: each item is the body of one MESSAGE frame (JSON).
pub type FeedStream = futures::stream::BoxStream<'static, bytes::Bytes>;

/// Destinations the application serves itself, beside rooms and unread counts: the connection
/// asks here about any destination it does not know, and sends each body the feed yields as a
/// MESSAGE on that subscription until the feed ends or the client unsubscribes.
#[async_trait]
pub trait Feeds: Send + Sync + std::fmt::Debug + 'static {
    /// The feed at `destination` for `member`: `Ok(None)` when it is not one of these feeds
    /// (the client then gets "unknown destination"), or a refusal for the ERROR frame.
    async fn open(&self, member: &Member, destination: &str)
    -> Result<Option<FeedStream>, Refusal>;
}

/// No feeds: every destination besides rooms and unread counts is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFeeds;

#[async_trait]
impl Feeds for NoFeeds {
    async fn open(&self, _: &Member, _: &str) -> Result<Option<FeedStream>, Refusal> {
        Ok(None)
    }
}

/// The chat engine of one node: connections, the relay, the store, presence and the local hub.
#[derive(Debug, Clone)]
pub struct ChatServer {
    config: Arc<ChatConfig>,
    relay: Arc<dyn Relay>,
    store: Arc<dyn MessageStore>,
    presence: Arc<dyn Presence>,
    gatekeeper: Arc<dyn Gatekeeper>,
    feeds: Arc<dyn Feeds>,
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
}

impl ChatServer {
    /// A chat server. Call [`start`](Self::start) to receive deliveries before serving.
    pub fn new(
        config: ChatConfig,
        relay: Arc<dyn Relay>,
        store: Arc<dyn MessageStore>,
        presence: Arc<dyn Presence>,
        gatekeeper: Arc<dyn Gatekeeper>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            relay,
            store,
            presence,
            gatekeeper,
            feeds: Arc::new(NoFeeds),
            hub: Arc::new(Hub::new()),
            clock: Arc::new(SystemClock),
            shutdown: CancellationToken::new(),
        }
    }

    /// Closes every connection when `shutdown` is cancelled (the application's shutdown signal).
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Serves the application's own destinations through `feeds`.
    #[must_use]
    pub fn with_feeds(mut self, feeds: Arc<dyn Feeds>) -> Self {
        self.feeds = feeds;
        self
    }

    /// Uses `clock` for acceptance times (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// This node's connections and deliveries so far.
    pub fn stats(&self) -> crate::HubStats {
        self.hub.stats()
    }

    /// How many connections `user` has open on this node.
    pub fn connections_of(&self, user: UserId) -> usize {
        self.hub.connections_of(user)
    }

    /// The message store.
    pub fn store(&self) -> &Arc<dyn MessageStore> {
        &self.store
    }

    /// Presence and unread counts.
    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.presence
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// Subscribes to the relay and returns the task that feeds the hub; spawn it. Once this
    /// returns, every message published anywhere reaches this node's subscribers.
    pub async fn start(&self) -> crate::Result<impl Future<Output = ()> + Send + 'static> {
        let deliveries = self.relay.subscribe().await?;
        let hub = self.hub.clone();
        let shutdown = self.shutdown.clone();
        Ok(async move {
            tokio::select! {
                () = hub.pump(deliveries) => {}
                () = shutdown.cancelled() => {}
            }
        })
    }

    /// Closes every connection (with an ERROR frame) and stops the delivery task.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Closes every connection of `user` on this node, with an ERROR frame saying `reason` (a
    /// sign-out, a ban). Returns how many were told.
    pub fn disconnect_user(&self, user: UserId, reason: &str) -> usize {
        self.hub.revoke(user, None, reason)
    }

    /// Closes the connections of `user` on this node that entered `room` (they left it, or were
    /// removed), with an ERROR frame saying `reason`. Returns how many were told.
    pub fn leave_room(&self, user: UserId, room: RoomId, reason: &str) -> usize {
        self.hub.revoke(user, Some(room), reason)
    }

    /// Sends a message as `member`, as a SEND frame would (for HTTP routes or bots). The
    /// gatekeeper is not asked: the caller has decided.
    pub async fn send(&self, member: &Member, room: RoomId, content: &str) -> crate::Result<()> {
        let draft = Draft::new(room, member, content, self.clock.now().timestamp_millis())?;
        self.relay.publish(draft).await
    }

    /// Serves one connection until it closes.
    pub async fn serve<S, K>(&self, incoming: S, outgoing: K)
    where
        S: Stream<Item = Result<Wire, ParseError>> + Send + Unpin,
        K: Sink<Wire> + Send + Unpin,
    {
        let mut incoming = incoming;
        let mut session = Conn {
            server: self,
            out: outgoing,
            last_write: Instant::now(),
            state: None,
            sending: Sending::new(self.relay.clone(), self.config.sends_in_flight),
        };
        let connect = tokio::select! {
            () = self.shutdown.cancelled() => return,
            () = tokio::time::sleep(self.config.connect_timeout) => {
                session.fail(Fault::new("no CONNECT frame in time")).await;
                return;
            }
            first = incoming.next() => first,
        };
        let frame = match connect {
            None => return,
            Some(Err(e)) => return session.fail(Fault::malformed(&e)).await,
            Some(Ok(Wire::Heartbeat)) => {
                return session.fail(Fault::new("expected CONNECT")).await;
            }
            Some(Ok(Wire::Frame(frame))) => frame,
        };
        let (rx, heartbeats) = match session.connect(&frame).await {
            Ok(ready) => ready,
            Err(fault) => {
                session.fail(fault).await;
                // It may have been registered before CONNECTED failed to go out.
                session.close().await;
                return;
            }
        };
        let end = session.run(&mut incoming, rx, heartbeats).await;
        if let Some(fault) = end {
            session.fail(fault).await;
        }
        session.close().await;
    }
}

/// An ERROR to send before closing.
#[derive(Debug, Clone)]
struct Fault {
    message: String,
    detail: String,
    receipt: Option<String>,
}

impl Fault {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            detail: String::new(),
            receipt: None,
        }
    }

    fn malformed(e: &ParseError) -> Self {
        Self::new("malformed frame").detail(e.to_string())
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    fn about(mut self, frame: &Frame) -> Self {
        self.receipt = frame.header("receipt").map(str::to_owned);
        self
    }
}

impl From<ChatError> for Fault {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid { field, reason } => {
                Fault::new(format!("invalid {field}: {reason}"))
            }
            other => {
                tracing::warn!(
                    error = &other as &dyn std::error::Error,
                    "chat backend failed"
                );
                Fault::new("temporarily unavailable")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    Auto,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Room(RoomId),
    Unread,
    Feed,
}

#[derive(Debug)]
struct Subscription {
    id: Arc<str>,
    target: Target,
    destination: String,
    ack: Ack,
    /// The newest `sendTime` sent on this subscription: anything not newer is a repeat.
    last: i64,
    /// Stops a feed's forwarding task when the subscription goes.
    _feed: Option<tokio_util::sync::DropGuard>,
}

struct State {
    member: Member,
    outbox: Outbox,
    subscriptions: HashMap<String, Subscription>,
    /// Open room subscriptions per room (presence counts one per subscription).
    entered: HashMap<RoomId, usize>,
    allowed: HashSet<RoomId>,
    message_ids: u64,
    /// When the credentials expire.
    expires: Option<Instant>,
    /// The SEND allowance.
    bucket: Option<Bucket>,
}

struct Conn<'a, K> {
    server: &'a ChatServer,
    out: K,
    last_write: Instant,
    state: Option<State>,
    sending: Sending,
}

enum Flow {
    Continue,
    Disconnect,
}

/// What ends the connected loop: `Some(fault)` to report, `None` to close quietly.
fn ended(result: Result<Flow, Fault>) -> Option<Option<Fault>> {
    match result {
        Ok(Flow::Continue) => None,
        Ok(Flow::Disconnect) => Some(None),
        Err(fault) => Some(Some(fault)),
    }
}

impl<K: Sink<Wire> + Send + Unpin> Conn<'_, K> {
    async fn write(&mut self, frame: Frame) -> bool {
        self.last_write = Instant::now();
        self.timed(|out| out.send(Wire::Frame(frame))).await.is_ok()
    }

    async fn fail(&mut self, fault: Fault) {
        let mut frame = Frame::new(Command::Error).with("message", fault.message);
        if let Some(receipt) = fault.receipt {
            frame = frame.with("receipt-id", receipt);
        }
        if !fault.detail.is_empty() {
            frame = frame
                .with("content-type", "text/plain")
                .with_body(fault.detail);
        }
        // A peer that stopped reading must not keep the connection open for ever.
        let _ = tokio::time::timeout(FAREWELL, async {
            let _ = self.write(frame).await;
            let _ = self.out.close().await;
        })
        .await;
    }

    async fn close(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let hub = &self.server.hub;
        for subscription in state.subscriptions.values() {
            match subscription.target {
                Target::Room(room) => hub.unsubscribe_room(&state.outbox, &subscription.id, room),
                Target::Unread => {
                    hub.unsubscribe_user(&state.outbox, &subscription.id, state.member.id);
                }
                Target::Feed => {}
            }
        }
        for (room, count) in state.entered {
            for _ in 0..count {
                if let Err(e) = self.server.presence.exit(room, state.member.id).await {
                    tracing::warn!(
                        room,
                        error = &e as &dyn std::error::Error,
                        "presence exit failed"
                    );
                }
            }
        }
        hub.disconnect(state.outbox);
        let _ = tokio::time::timeout(FAREWELL, self.out.close()).await;
    }

    async fn connect(
        &mut self,
        frame: &Frame,
    ) -> Result<(mpsc::Receiver<Push>, stomp::Heartbeats), Fault> {
        if !matches!(frame.command, Command::Connect | Command::Stomp) {
            return Err(Fault::new("expected CONNECT").about(frame));
        }
        let version =
            stomp::negotiate_version(frame.header("accept-version")).ok_or_else(|| {
                Fault::new("unsupported protocol version")
                    .detail("supported versions are 1.2 and 1.1")
            })?;
        let session = self
            .server
            .gatekeeper
            .authenticate(frame)
            .await
            .map_err(|refusal| Fault::new(refusal.message))?;
        let member = session.member;
        let config = &self.server.config;
        let heartbeats =
            stomp::negotiate_heartbeats(frame.header("heart-beat"), config.heartbeat_ms);
        let (outbox, rx) = self
            .server
            .hub
            .connect(
                member.id,
                config.outbound_capacity,
                config.max_connections_per_user,
            )
            .map_err(|e| {
                Fault::new("too many connections").detail(format!(
                    "{e}; at most {} are allowed",
                    config.max_connections_per_user
                ))
            })?;
        let now = self.server.clock.now().timestamp_millis();
        let expires = session
            .expires_at
            .map(|at| Instant::now() + Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
        let millis = |d: Option<Duration>| d.map_or(0, |d| d.as_millis());
        let connected = Frame::new(Command::Connected)
            .with("version", version)
            .with(
                "heart-beat",
                format!("{},{}", millis(heartbeats.send), millis(heartbeats.receive)),
            )
            .with("server", config.server_name.clone())
            .with("session", outbox.id().to_string())
            .with("user-name", member.id.to_string());
        self.state = Some(State {
            member,
            outbox,
            subscriptions: HashMap::new(),
            entered: HashMap::new(),
            allowed: HashSet::new(),
            message_ids: 0,
            expires,
            bucket: config.send_rate.map(Bucket::new),
        });
        if !self.write(connected).await {
            return Err(Fault::new("connection lost"));
        }
        Ok((rx, heartbeats))
    }

    /// The connected loop. Returns the fault to report, or `None` for a quiet close.
    async fn run<S>(
        &mut self,
        incoming: &mut S,
        mut rx: mpsc::Receiver<Push>,
        heartbeats: stomp::Heartbeats,
    ) -> Option<Fault>
    where
        S: Stream<Item = Result<Wire, ParseError>> + Send + Unpin,
    {
        let overflowed = self.state.as_ref()?.outbox.overflowed().clone();
        let expires = self.state.as_ref()?.expires;
        let shutdown = self.server.shutdown.clone();
        let far_future = Duration::from_secs(86_400 * 365);
        let send_every = heartbeats.send.unwrap_or(far_future);
        // The spec allows for network delays; a peer is dead after twice its period of silence.
        let silence_limit = heartbeats.receive.map_or(far_future, |d| d * 2);
        let mut last_read = Instant::now();
        // A frame other than SEND waits here until every SEND before it is done, so that its
        // receipt (a DISCONNECT's, say) means everything the client sent before is stored.
        let mut held: Option<Frame> = None;
        loop {
            if self.sending.is_empty()
                && let Some(frame) = held.take()
                && let Some(end) = ended(self.handle(frame).await)
            {
                return end;
            }
            let next_beat = self.last_write + send_every;
            let deadline = last_read + silence_limit;
            let reading = held.is_none() && !self.sending.is_full();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Some(Fault::new("server shutting down")),
                () = tokio::time::sleep_until(expires.unwrap_or(deadline)), if expires.is_some() => {
                    return Some(Fault::new("session expired")
                        .detail("reconnect with a fresh access token"));
                }
                () = overflowed.cancelled() => {
                    return Some(Fault::new("slow consumer").detail(
                        "too many messages were waiting for this connection",
                    ));
                }
                // Before reading more: each SEND done makes room for another.
                Some(sent) = self.sending.next(), if !self.sending.is_empty() => {
                    if let Some(end) = ended(self.sent(sent).await) {
                        return end;
                    }
                }
                item = incoming.next(), if reading => {
                    last_read = Instant::now();
                    match item {
                        None => return None,
                        Some(Err(e)) => return Some(Fault::malformed(&e)),
                        Some(Ok(Wire::Heartbeat)) => {}
                        Some(Ok(Wire::Frame(frame))) => {
                            if frame.command != Command::Send && !self.sending.is_empty() {
                                held = Some(frame);
                                continue;
                            }
                            if let Some(end) = ended(self.handle(frame).await) {
                                return end;
                            }
                        }
                    }
                }
                push = rx.recv() => {
                    let push = push?;
                    // A client that stops reading blocks the write; its outbox then overflows.
                    let delivered = tokio::select! {
                        delivered = self.deliver(push, &mut rx) => delivered,
                        () = overflowed.cancelled() => {
                            return Some(Fault::new("slow consumer").detail(
                                "too many messages were waiting for this connection",
                            ));
                        }
                    };
                    if let Err(end) = delivered {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(next_beat) => {
                    self.last_write = Instant::now();
                    if self.out.send(Wire::Heartbeat).await.is_err() {
                        return None;
                    }
                }
                // Not while the client's frames wait unread: its heart-beats are among them.
                () = tokio::time::sleep_until(deadline), if reading => {
                    return Some(Fault::new("heart-beat timeout"));
                }
            }
        }
    }

    /// Writes `first` and whatever else is already waiting, then flushes once. `Err` ends the
    /// connection: with the fault to report (a revocation, a write that timed out), or `None`
    /// when the client is gone.
    async fn deliver(
        &mut self,
        first: Push,
        rx: &mut mpsc::Receiver<Push>,
    ) -> Result<(), Option<Fault>> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(push) = next.take() {
            if let Push::Revoke { room, reason } = &push {
                let state = self.state.as_ref().ok_or(None)?;
                if room.is_none_or(|room| state.allowed.contains(&room)) {
                    return Err(Some(Fault::new(reason.to_string())));
                }
            } else if let Some(frame) = self.message_frame(push) {
                self.timed(|out| out.feed(Wire::Frame(frame))).await?;
            }
            written += 1;
            if written < 256 {
                next = rx.try_recv().ok();
            }
        }
        self.last_write = Instant::now();
        self.timed(|out| out.flush()).await
    }

    /// One write to the client, within the write timeout.
    async fn timed<'s, F>(
        &'s mut self,
        write: impl FnOnce(&'s mut K) -> F,
    ) -> Result<(), Option<Fault>>
    where
        F: Future<Output = Result<(), K::Error>> + 's,
    {
        match tokio::time::timeout(self.server.config.write_timeout, write(&mut self.out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(None),
            Err(_) => Err(Some(
                Fault::new("slow consumer")
                    .detail("the client did not read what was sent to it in time"),
            )),
        }
    }

    fn message_frame(&mut self, push: Push) -> Option<Frame> {
        let state = self.state.as_mut()?;
        let (subscription_id, body, send_time) = match push {
            Push::Message {
                subscription,
                send_time,
                body,
                ..
            } => (subscription, body, Some(send_time)),
            Push::Unread { subscription, body } | Push::Feed { subscription, body } => {
                (subscription, body, None)
            }
            Push::Revoke { .. } => return None,
        };
        let subscription = state.subscriptions.get_mut(&*subscription_id)?;
        if let Some(send_time) = send_time {
            if send_time <= subscription.last {
                return None;
            }
            subscription.last = send_time;
        }
        state.message_ids += 1;
        let id = match (subscription.target, send_time) {
            (Target::Room(room), Some(send_time)) => format!("{room}-{send_time}"),
            _ => format!("u-{}-{}", state.outbox.id(), state.message_ids),
        };
        let mut frame = Frame::new(Command::Message)
            .with("destination", subscription.destination.clone())
            .with("message-id", id.clone())
            .with("subscription", &*subscription.id)
            .with("content-type", "application/json");
        if subscription.ack == Ack::Client {
            frame = frame.with("ack", id);
        }
        Some(frame.with_body(body))
    }

    /// Answers a SEND once it is published: its receipt, or the ERROR for its failure.
    async fn sent(&mut self, sent: Sent) -> Result<Flow, Fault> {
        let Sent { receipt, result } = sent;
        if let Err(e) = result {
            let mut fault = Fault::from(e);
            fault.receipt = receipt;
            return Err(fault);
        }
        Ok(self.receipt(receipt.as_deref(), Flow::Continue).await)
    }

    /// Sends the RECEIPT a frame asked for, if it did; then `flow`, or a disconnect if the
    /// connection is gone.
    async fn receipt(&mut self, receipt: Option<&str>, flow: Flow) -> Flow {
        match receipt {
            Some(receipt)
                if !self
                    .write(Frame::new(Command::Receipt).with("receipt-id", receipt))
                    .await =>
            {
                Flow::Disconnect
            }
            _ => flow,
        }
    }

    async fn handle(&mut self, frame: Frame) -> Result<Flow, Fault> {
        let flow = match frame.command {
            Command::Send => {
                let state = self.state.as_mut().expect("connected");
                if let Some(bucket) = &mut state.bucket
                    && !bucket.take()
                {
                    let rate = bucket.rate;
                    return Err(Fault::new("too many messages")
                        .detail(format!(
                            "at most {} messages a second, {} at once",
                            rate.per_second, rate.burst
                        ))
                        .about(&frame));
                }
                let draft = self.on_send(&frame).await.map_err(|f| f.about(&frame))?;
                // Its receipt goes out once it is published (`sent`).
                self.sending
                    .push(draft, frame.header("receipt").map(str::to_owned));
                return Ok(Flow::Continue);
            }
            Command::Subscribe => self.on_subscribe(&frame).await,
            Command::Unsubscribe => self.on_unsubscribe(&frame).await,
            Command::Ack | Command::Nack => required(&frame, "id")
                .or_else(|_| required(&frame, "message-id"))
                .map(|_| Flow::Continue),
            Command::Disconnect => Ok(Flow::Disconnect),
            Command::Begin | Command::Commit | Command::Abort => {
                Err(Fault::new("transactions are not supported"))
            }
            Command::Connect | Command::Stomp => Err(Fault::new("already connected")),
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                Err(Fault::new(format!("{} is a server frame", frame.command)))
            }
            // A command a later STOMP version adds.
            _ => Err(Fault::new(format!("{} is not supported", frame.command))),
        }
        .map_err(|fault| fault.about(&frame))?;
        Ok(self.receipt(frame.header("receipt"), flow).await)
    }

    async fn allow(&mut self, room: RoomId) -> Result<(), Fault> {
        let state = self.state.as_mut().expect("connected");
        if state.allowed.contains(&room) {
            return Ok(());
        }
        self.server
            .gatekeeper
            .may_enter(&state.member, room)
            .await
            .map_err(|refusal| Fault::new(refusal.message))?;
        state.allowed.insert(room);
        Ok(())
    }

    /// Checks a SEND and turns it into the draft to publish.
    async fn on_send(&mut self, frame: &Frame) -> Result<Draft, Fault> {
        let destinations = &self.server.config.destinations;
        let destination = required(frame, "destination")?;
        if destination != destinations.send {
            return Err(Fault::new("unknown destination")
                .detail(format!("messages are sent to {}", destinations.send)));
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            chat_room_id: RoomId,
            content: String,
        }
        let body: Body = serde_json::from_slice(&frame.body).map_err(|e| {
            Fault::new("invalid message body").detail(format!(
                "expected {{\"chatRoomId\": N, \"content\": \"…\"}}: {e}"
            ))
        })?;
        self.allow(body.chat_room_id).await?;
        let member = &self.state.as_ref().expect("connected").member;
        Ok(Draft::new(
            body.chat_room_id,
            member,
            body.content,
            self.server.clock.now().timestamp_millis(),
        )?)
    }

    async fn on_subscribe(&mut self, frame: &Frame) -> Result<Flow, Fault> {
        let id = required(frame, "id")?.to_owned();
        let destination = required(frame, "destination")?.to_owned();
        let ack = match frame.header("ack").unwrap_or("auto") {
            "auto" => Ack::Auto,
            "client" | "client-individual" => Ack::Client,
            other => return Err(Fault::new(format!("unknown ack mode {other}"))),
        };
        let subscriptions = &self.state.as_ref().expect("connected").subscriptions;
        if subscriptions.contains_key(&id) {
            return Err(Fault::new(format!(
                "subscription id {id} is already in use"
            )));
        }
        let max = self.server.config.max_subscriptions;
        if subscriptions.len() >= max {
            return Err(Fault::new("too many subscriptions")
                .detail(format!("at most {max} per connection")));
        }
        let destinations = &self.server.config.destinations;
        let room = destination
            .strip_prefix(destinations.room_prefix.as_str())
            .and_then(|n| n.parse::<RoomId>().ok());
        let mut feed = None;
        let target = if destination == destinations.unread {
            Target::Unread
        } else if let Some(room) = room {
            self.allow(room).await?;
            Target::Room(room)
        } else {
            let member = &self.state.as_ref().expect("connected").member;
            let opened = self
                .server
                .feeds
                .open(member, &destination)
                .await
                .map_err(|refusal| Fault::new(refusal.message))?;
            feed = Some(opened.ok_or_else(|| {
                Fault::new("unknown destination").detail(format!(
                    "rooms are {}N; unread counts are {}",
                    destinations.room_prefix, destinations.unread
                ))
            })?);
            Target::Feed
        };
        let resume_after = frame
            .header("resume-after")
            .map(|value| {
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| Fault::new("resume-after must be a sendTime"))
            })
            .transpose()?;
        let hub = self.server.hub.clone();
        let state = self.state.as_mut().expect("connected");
        let key: Arc<str> = Arc::from(id.as_str());
        let guard = match target {
            Target::Unread => {
                hub.subscribe_user(&state.outbox, key.clone(), state.member.id);
                None
            }
            // Live messages queue up from here on while the replay below is read; the
            // subscription's `last` drops the ones the replay already sent.
            Target::Room(room) => {
                hub.subscribe_room(&state.outbox, key.clone(), room);
                None
            }
            Target::Feed => feed.map(|feed| state.outbox.forward(key.clone(), feed)),
        };
        state.subscriptions.insert(
            id,
            Subscription {
                id: key.clone(),
                target,
                destination,
                ack,
                last: i64::MIN,
                _feed: guard,
            },
        );
        let Target::Room(room) = target else {
            return Ok(Flow::Continue);
        };
        let member = state.member.id;
        let entered = state.entered.entry(room).or_default();
        *entered += 1;
        self.server.presence.enter(room, member).await?;
        if let Some(after) = resume_after {
            self.replay(&key, room, after).await?;
        }
        Ok(Flow::Continue)
    }

    /// Sends the messages after `after`, oldest first: at most `max_replay`, the newest ones, the
    /// first of them marked `replay-gap: true` when older ones were left out.
    async fn replay(
        &mut self,
        subscription: &Arc<str>,
        room: RoomId,
        after: i64,
    ) -> Result<(), Fault> {
        let max = self.server.config.max_replay;
        // Newest first, back to `after`, one more than `max` to learn whether there is a gap.
        let mut newest_first = Vec::new();
        let mut before = None;
        loop {
            let want = PAGE_MAX.min(max + 1 - newest_first.len());
            let page = self.server.store.history(room, before, want).await?;
            let full = page.messages.len() == want;
            let mut reached = false;
            for message in page.messages {
                if message.send_time <= after {
                    reached = true;
                    break;
                }
                newest_first.push(message);
            }
            if reached || !full || newest_first.len() > max {
                break;
            }
            before = newest_first.last().map(|m| m.send_time);
        }
        let gap = newest_first.len() > max;
        newest_first.truncate(max);
        let lost = Fault::new("connection lost");
        for (i, message) in newest_first.into_iter().rev().enumerate() {
            let body = serde_json::to_vec(&message).expect("a message serialises");
            let push = Push::Message {
                subscription: subscription.clone(),
                send_time: message.send_time,
                body: body.into(),
            };
            if let Some(mut frame) = self.message_frame(push) {
                if gap && i == 0 {
                    frame = frame.with("replay-gap", "true");
                }
                self.timed(|out| out.feed(Wire::Frame(frame)))
                    .await
                    .map_err(|end| end.unwrap_or_else(|| lost.clone()))?;
            }
        }
        self.last_write = Instant::now();
        self.timed(|out| out.flush())
            .await
            .map_err(|end| end.unwrap_or(lost))
    }

    async fn on_unsubscribe(&mut self, frame: &Frame) -> Result<Flow, Fault> {
        let id = required(frame, "id")?;
        let state = self.state.as_mut().expect("connected");
        let Some(subscription) = state.subscriptions.remove(id) else {
            return Err(Fault::new(format!("no subscription {id}")));
        };
        match subscription.target {
            Target::Unread => {
                self.server
                    .hub
                    .unsubscribe_user(&state.outbox, id, state.member.id);
            }
            Target::Room(room) => {
                self.server.hub.unsubscribe_room(&state.outbox, id, room);
                if let Some(count) = state.entered.get_mut(&room) {
                    *count -= 1;
                    if *count == 0 {
                        state.entered.remove(&room);
                    }
                }
                self.server.presence.exit(room, state.member.id).await?;
            }
            // Dropping the subscription stopped its feed.
            Target::Feed => {}
        }
        Ok(Flow::Continue)
    }
}

fn required<'f>(frame: &'f Frame, name: &str) -> Result<&'f str, Fault> {
    frame
        .header(name)
        .ok_or_else(|| Fault::new(format!("missing {name} header")))
}
