//! How connections behave: destinations, limits, heart-beats, the send rate.

use std::time::Duration;

use tokio::time::Instant;

use super::MessageFields;
use crate::RoomId;
use crate::stomp::Limits;

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

/// How connections behave. Start from [`ChatConfig::default`] and set the fields you need; new
/// fields may be added in minor releases.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChatConfig {
    /// Destinations.
    pub destinations: Destinations,
    /// The JSON names of message bodies.
    pub fields: MessageFields,
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
    /// While the relay does not pass messages between nodes ([`Relay::health`]): how often
    /// each subscribed room is read from the store, and for how long after the relay is back
    /// (the other nodes' last messages stored without it).
    ///
    /// [`Relay::health`]: crate::Relay::health
    pub follow: Follow,
}

/// How a node follows its rooms from the store while the relay is degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follow {
    /// How often each subscribed room is read.
    pub interval: Duration,
    /// How long rooms are still read from the store once the relay is back.
    pub grace: Duration,
}

impl Default for Follow {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(250),
            grace: Duration::from_secs(5),
        }
    }
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
pub(super) struct Bucket {
    pub(super) rate: SendRate,
    pub(super) tokens: f64,
    pub(super) at: Instant,
}

impl Bucket {
    pub(super) fn new(rate: SendRate) -> Self {
        Self {
            rate,
            tokens: f64::from(rate.burst.max(1)),
            at: Instant::now(),
        }
    }

    pub(super) fn take(&mut self) -> bool {
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
            fields: MessageFields::default(),
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
            follow: Follow::default(),
        }
    }
}
