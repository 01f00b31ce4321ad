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
//! - SEND `{"roomId": N, "content": "…"}` (names set by [`MessageFields`]) to the `send` destination: the sender and the
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

use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod config;
mod fields;
mod frames;
mod gate;
mod lifecycle;
mod sending;

use config::Bucket;
pub use config::{ChatConfig, Destinations, Follow, SendRate};
pub use fields::MessageFields;
pub use gate::{FeedStream, Feeds, Gatekeeper, NoFeeds, Refusal, Session};

use self::sending::{Sending, Sent};
use crate::hub::{Hub, Outbox, Push};
use crate::relay::Relay;
use crate::stomp::{self, Command, Frame, ParseError, Wire};
use crate::store::PAGE_MAX;
use crate::{ChatError, Clock, Draft, Member, MessageStore, Presence, RoomId, SystemClock, UserId};

/// How long the last words (an ERROR frame, the close) may take to a peer that is not reading.
const FAREWELL: Duration = Duration::from_secs(5);

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
            hub: Arc::new(Hub::new(config.fields.clone(), Arc::new(SystemClock))),
            config: Arc::new(config),
            relay,
            store,
            presence,
            gatekeeper,
            feeds: Arc::new(NoFeeds),
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

    /// Uses `clock` for acceptance times and delivery lags (tests); set it before
    /// [`start`](Self::start).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.hub = Arc::new(Hub::new(self.config.fields.clone(), clock.clone()));
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
        let follower = crate::follow::Follower::new(
            self.hub.clone(),
            self.store.clone(),
            self.clock.clone(),
            self.config.follow,
        );
        let health = self.relay.health();
        let shutdown = self.shutdown.clone();
        Ok(async move {
            tokio::select! {
                () = follower.run(deliveries, health) => {}
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
    /// The versions this server speaks, on a refused CONNECT (STOMP 1.2 asks for them).
    versions: bool,
}

impl Fault {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            detail: String::new(),
            receipt: None,
            versions: false,
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
fn required<'f>(frame: &'f Frame, name: &str) -> Result<&'f str, Fault> {
    frame
        .header(name)
        .ok_or_else(|| Fault::new(format!("missing {name} header")))
}
