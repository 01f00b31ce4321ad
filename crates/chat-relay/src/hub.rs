//! A node's local fan-out: which open connections subscribed to which room (or to their own
//! unread counts), and handing each delivery to them without ever waiting for one.
//!
//! Each connection has a bounded outbox. A connection whose outbox is full is not waited for and
//! not allowed to grow: it is told to close ([`Outbox::overflowed`]), and closes with an ERROR
//! frame. One slow phone cannot hold up a room or eat the server's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::relay::Delivery;
use crate::{RoomId, UserId};

/// A connection's number on this node.
pub type ConnectionId = u64;

/// Something for one subscription of one connection.
#[derive(Debug, Clone)]
pub enum Push {
    /// A chat message (`body` is its JSON, shared by every recipient).
    Message {
        /// The subscription it is for.
        subscription: Arc<str>,
        /// The message's room.
        room: RoomId,
        /// The message's `sendTime`.
        send_time: i64,
        /// The message as JSON.
        body: Bytes,
    },
    /// A new unread count (`{"chatRoomId":…,"unReadCount":…}`).
    Unread {
        /// The subscription it is for.
        subscription: Arc<str>,
        /// The count as JSON.
        body: Bytes,
    },
    /// An item of an application feed ([`Feeds`](crate::connection::Feeds)).
    Feed {
        /// The subscription it is for.
        subscription: Arc<str>,
        /// The item as JSON.
        body: Bytes,
    },
}

#[derive(Debug, Clone)]
struct Subscriber {
    connection: ConnectionId,
    subscription: Arc<str>,
    outbox: mpsc::Sender<Push>,
    overflowed: CancellationToken,
}

impl Subscriber {
    /// Hands over `push`; `false` if the connection is gone.
    fn offer(&self, push: Push, dropped: &AtomicU64) -> bool {
        match self.outbox.try_send(push) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
                self.overflowed.cancel();
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The sending side a connection gives the hub.
#[derive(Debug, Clone)]
pub struct Outbox {
    id: ConnectionId,
    tx: mpsc::Sender<Push>,
    overflowed: CancellationToken,
}

impl Outbox {
    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Cancelled when the hub found this connection's outbox full.
    pub fn overflowed(&self) -> &CancellationToken {
        &self.overflowed
    }

    /// Sends each item of `feed` to `subscription` until the feed ends, the connection goes, or
    /// the returned guard is dropped. A feed waits for room in the outbox rather than
    /// overflowing it: it is the application's own, slow stream.
    pub(crate) fn forward(
        &self,
        subscription: Arc<str>,
        mut feed: crate::connection::FeedStream,
    ) -> tokio_util::sync::DropGuard {
        use futures::StreamExt;
        let stop = CancellationToken::new();
        let tx = self.tx.clone();
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                let body = tokio::select! {
                    () = stopped.cancelled() => return,
                    body = feed.next() => match body {
                        Some(body) => body,
                        None => return,
                    },
                };
                let push = Push::Feed {
                    subscription: subscription.clone(),
                    body,
                };
                tokio::select! {
                    () = stopped.cancelled() => return,
                    sent = tx.send(push) => if sent.is_err() { return },
                }
            }
        });
        stop.drop_guard()
    }

    fn subscriber(&self, subscription: Arc<str>) -> Subscriber {
        Subscriber {
            connection: self.id,
            subscription,
            outbox: self.tx.clone(),
            overflowed: self.overflowed.clone(),
        }
    }
}

/// Counters of one hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Connections open now.
    pub connections: u64,
    /// Deliveries handed to a connection.
    pub delivered: u64,
    /// Deliveries refused because an outbox was full (each closed a connection).
    pub overflowed: u64,
}

/// The local fan-out.
#[derive(Debug, Default)]
pub struct Hub {
    rooms: RwLock<HashMap<RoomId, Vec<Subscriber>>>,
    users: RwLock<HashMap<UserId, Vec<Subscriber>>>,
    next_id: AtomicU64,
    open: AtomicU64,
    delivered: AtomicU64,
    overflowed: AtomicU64,
}

fn remove(
    map: &RwLock<HashMap<i64, Vec<Subscriber>>>,
    key: i64,
    connection: ConnectionId,
    subscription: &str,
) {
    let mut map = map.write().expect("poisoned");
    if let Some(list) = map.get_mut(&key) {
        list.retain(|s| !(s.connection == connection && &*s.subscription == subscription));
        if list.is_empty() {
            map.remove(&key);
        }
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a connection with an outbox of `capacity` pushes.
    pub fn connect(&self, capacity: usize) -> (Outbox, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.open.fetch_add(1, Ordering::Relaxed);
        let outbox = Outbox {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            overflowed: CancellationToken::new(),
        };
        (outbox, rx)
    }

    /// Marks a connection closed (its subscriptions must have been removed).
    pub fn disconnect(&self, _outbox: Outbox) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Subscribes a connection to a room's messages.
    pub fn subscribe_room(&self, outbox: &Outbox, subscription: Arc<str>, room: RoomId) {
        let mut rooms = self.rooms.write().expect("poisoned");
        rooms
            .entry(room)
            .or_default()
            .push(outbox.subscriber(subscription));
    }

    /// Subscribes a connection to its user's unread counts.
    pub fn subscribe_user(&self, outbox: &Outbox, subscription: Arc<str>, user: UserId) {
        let mut users = self.users.write().expect("poisoned");
        users
            .entry(user)
            .or_default()
            .push(outbox.subscriber(subscription));
    }

    /// Ends a room subscription.
    pub fn unsubscribe_room(&self, outbox: &Outbox, subscription: &str, room: RoomId) {
        remove(&self.rooms, room, outbox.id, subscription);
    }

    /// Ends an unread-count subscription.
    pub fn unsubscribe_user(&self, outbox: &Outbox, subscription: &str, user: UserId) {
        remove(&self.users, user, outbox.id, subscription);
    }

    /// Room subscriptions on this node.
    pub fn subscribers(&self, room: RoomId) -> usize {
        self.rooms
            .read()
            .expect("poisoned")
            .get(&room)
            .map_or(0, Vec::len)
    }

    /// The hub's counters.
    pub fn stats(&self) -> HubStats {
        HubStats {
            connections: self.open.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
        }
    }

    /// Hands a delivery to every local subscriber of its room, and its unread counts to the
    /// subscribers of those users. Never waits.
    pub fn dispatch(&self, delivery: &Delivery) {
        let message = &delivery.message;
        let room = message.chat_room_id;
        let mut gone = false;
        if let Some(list) = self.rooms.read().expect("poisoned").get(&room) {
            let body = Bytes::from(serde_json::to_vec(message).expect("a message serialises"));
            for subscriber in list {
                let push = Push::Message {
                    subscription: subscriber.subscription.clone(),
                    room,
                    send_time: message.send_time,
                    body: body.clone(),
                };
                gone |= !subscriber.offer(push, &self.overflowed);
            }
            self.delivered
                .fetch_add(list.len() as u64, Ordering::Relaxed);
        }
        if gone {
            self.prune(&self.rooms, room);
        }
        if delivery.unread.is_empty() {
            return;
        }
        let users = self.users.read().expect("poisoned");
        for (user, count) in &delivery.unread {
            let Some(list) = users.get(user) else {
                continue;
            };
            let body = Bytes::from(format!("{{\"chatRoomId\":{room},\"unReadCount\":{count}}}"));
            for subscriber in list {
                subscriber.offer(
                    Push::Unread {
                        subscription: subscriber.subscription.clone(),
                        body: body.clone(),
                    },
                    &self.overflowed,
                );
            }
        }
    }

    fn prune(&self, map: &RwLock<HashMap<i64, Vec<Subscriber>>>, key: i64) {
        let mut map = map.write().expect("poisoned");
        if let Some(list) = map.get_mut(&key) {
            list.retain(|s| !s.outbox.is_closed());
            if list.is_empty() {
                map.remove(&key);
            }
        }
    }

    /// Dispatches every delivery of `deliveries` until it ends.
    pub async fn pump(&self, mut deliveries: impl Stream<Item = Delivery> + Unpin) {
        while let Some(delivery) = deliveries.next().await {
            self.dispatch(&delivery);
        }
    }
}
