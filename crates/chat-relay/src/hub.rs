//! A node's local fan-out: which open connections subscribed to which room (or to their own
//! unread counts), and handing each delivery to them without ever waiting for one.
//!
//! Each connection has a bounded outbox. A connection whose outbox is full is not waited for and
//! not allowed to grow: it is told to close ([`Outbox::overflowed`]), and closes with an ERROR
//! frame. One slow phone cannot hold up a room or eat the server's memory.
//!
//! Subscriptions are kept in insertion-ordered maps keyed by (connection, subscription id): a
//! dispatch walks a contiguous list, and ending one subscription is O(1), so a connection that
//! closes with many subscriptions costs the hub's lock no more than it must. The hub also knows
//! each user's connections on this node, to cap them and to close them all (a sign-out).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::connection::MessageFields;
use crate::lag::{DeliveryLag, LagRecorder};
use crate::relay::Delivery;
use crate::{Clock, RoomId, SystemClock, UserId};

/// A connection's number on this node.
pub type ConnectionId = u64;

/// Something for one subscription of one connection, or for the connection itself.
#[derive(Debug, Clone)]
pub enum Push {
    /// A chat message (`body` is its JSON, shared by every recipient).
    Message {
        /// The subscription it is for.
        subscription: Arc<str>,
        /// The message's `sendTime`.
        send_time: i64,
        /// The message as JSON.
        body: Bytes,
    },
    /// A new unread count (the room and the count, named by [`MessageFields`]).
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
    /// The connection must close (its user signed out, or left `room`, if it entered it).
    Revoke {
        /// Only connections that entered this room; `None`: every connection of the user.
        room: Option<RoomId>,
        /// Why, for the ERROR frame.
        reason: Arc<str>,
    },
}

#[derive(Debug, Clone)]
struct Subscriber {
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
    user: UserId,
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
            subscription,
            outbox: self.tx.clone(),
            overflowed: self.overflowed.clone(),
        }
    }
}

/// Counters of one hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Connections open now.
    pub connections: u64,
    /// Deliveries handed to a connection.
    pub delivered: u64,
    /// Deliveries refused because an outbox was full (each closed a connection).
    pub overflowed: u64,
    /// How long messages took from acceptance to this node's fan-out.
    pub lag: DeliveryLag,
}

/// A user already has as many connections on this node as allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this user has {0} connections open already")]
pub struct TooManyConnections(pub usize);

type SubscriberMap<K> = RwLock<HashMap<K, IndexMap<(ConnectionId, Arc<str>), Subscriber>>>;

/// The local fan-out.
#[derive(Debug)]
pub struct Hub {
    rooms: SubscriberMap<RoomId>,
    unread: SubscriberMap<UserId>,
    /// Each user's open connections on this node.
    connections: RwLock<HashMap<UserId, HashMap<ConnectionId, Subscriber>>>,
    next_id: AtomicU64,
    open: AtomicU64,
    delivered: AtomicU64,
    overflowed: AtomicU64,
    lag: LagRecorder,
    /// The JSON names of the bodies it renders.
    fields: MessageFields,
    /// Measures lags against messages' acceptance times.
    clock: Arc<dyn Clock>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(MessageFields::default(), Arc::new(SystemClock))
    }
}

fn add<K: Hash + Eq>(map: &SubscriberMap<K>, key: K, outbox: &Outbox, subscription: Arc<str>) {
    map.write()
        .expect("poisoned")
        .entry(key)
        .or_default()
        .insert(
            (outbox.id, subscription.clone()),
            outbox.subscriber(subscription),
        );
}

fn remove<K: Hash + Eq>(
    map: &SubscriberMap<K>,
    key: K,
    connection: ConnectionId,
    subscription: &str,
) {
    let mut map = map.write().expect("poisoned");
    if let Some(list) = map.get_mut(&key) {
        list.swap_remove(&(connection, Arc::from(subscription)));
        if list.is_empty() {
            map.remove(&key);
        }
    }
}

impl Hub {
    /// An empty hub rendering bodies with `fields` and measuring lags on `clock`.
    pub fn new(fields: MessageFields, clock: Arc<dyn Clock>) -> Self {
        Self {
            rooms: SubscriberMap::default(),
            unread: SubscriberMap::default(),
            connections: RwLock::default(),
            next_id: AtomicU64::new(0),
            open: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            lag: LagRecorder::default(),
            fields,
            clock,
        }
    }

    /// Opens a connection of `user` with an outbox of `capacity` pushes, unless the user has
    /// `max_per_user` open on this node already.
    pub fn connect(
        &self,
        user: UserId,
        capacity: usize,
        max_per_user: usize,
    ) -> Result<(Outbox, mpsc::Receiver<Push>), TooManyConnections> {
        let mut connections = self.connections.write().expect("poisoned");
        let mine = connections.entry(user).or_default();
        if mine.len() >= max_per_user {
            return Err(TooManyConnections(mine.len()));
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Outbox {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user,
            tx,
            overflowed: CancellationToken::new(),
        };
        mine.insert(outbox.id, outbox.subscriber(Arc::from("")));
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok((outbox, rx))
    }

    /// Marks a connection closed (its subscriptions must have been removed).
    pub fn disconnect(&self, outbox: Outbox) {
        let mut connections = self.connections.write().expect("poisoned");
        if let Some(mine) = connections.get_mut(&outbox.user) {
            mine.remove(&outbox.id);
            if mine.is_empty() {
                connections.remove(&outbox.user);
            }
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Tells `user`'s connections on this node to close with `reason`: all of them, or with
    /// `room`, those that entered it. Returns how many were told.
    pub fn revoke(&self, user: UserId, room: Option<RoomId>, reason: &str) -> usize {
        let connections = self.connections.read().expect("poisoned");
        let Some(mine) = connections.get(&user) else {
            return 0;
        };
        let reason: Arc<str> = Arc::from(reason);
        for connection in mine.values() {
            let push = Push::Revoke {
                room,
                reason: reason.clone(),
            };
            // A full outbox closes the connection anyway.
            connection.offer(push, &self.overflowed);
        }
        mine.len()
    }

    /// Subscribes a connection to a room's messages.
    pub fn subscribe_room(&self, outbox: &Outbox, subscription: Arc<str>, room: RoomId) {
        add(&self.rooms, room, outbox, subscription);
    }

    /// Subscribes a connection to its user's unread counts.
    pub fn subscribe_user(&self, outbox: &Outbox, subscription: Arc<str>, user: UserId) {
        add(&self.unread, user, outbox, subscription);
    }

    /// Ends a room subscription.
    pub fn unsubscribe_room(&self, outbox: &Outbox, subscription: &str, room: RoomId) {
        remove(&self.rooms, room, outbox.id, subscription);
    }

    /// Ends an unread-count subscription.
    pub fn unsubscribe_user(&self, outbox: &Outbox, subscription: &str, user: UserId) {
        remove(&self.unread, user, outbox.id, subscription);
    }

    /// Room subscriptions on this node.
    #[cfg(test)]
    pub fn subscribers(&self, room: RoomId) -> usize {
        self.rooms
            .read()
            .expect("poisoned")
            .get(&room)
            .map_or(0, IndexMap::len)
    }

    /// `user`'s connections open on this node.
    pub fn connections_of(&self, user: UserId) -> usize {
        self.connections
            .read()
            .expect("poisoned")
            .get(&user)
            .map_or(0, HashMap::len)
    }

    /// The hub's counters.
    pub fn stats(&self) -> HubStats {
        HubStats {
            connections: self.open.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
            lag: self.lag.snapshot(),
        }
    }

    /// Rooms with at least one subscription on this node.
    pub fn rooms(&self) -> Vec<RoomId> {
        self.rooms
            .read()
            .expect("poisoned")
            .keys()
            .copied()
            .collect()
    }

    /// Whether a connection on this node subscribed to `room`.
    pub fn follows(&self, room: RoomId) -> bool {
        self.rooms.read().expect("poisoned").contains_key(&room)
    }

    /// Hands a delivery to every local subscriber of its room, and its unread counts to the
    /// subscribers of those users. Never waits.
    pub fn dispatch(&self, delivery: &Delivery) {
        self.dispatch_message(&delivery.message);
        self.dispatch_unread(delivery);
    }

    /// Hands a message to every local subscriber of its room. Never waits.
    pub fn dispatch_message(&self, message: &crate::ChatMessage) {
        let room = message.chat_room_id;
        self.lag
            .record(self.clock.now().timestamp_millis() - message.send_time);
        let mut gone = false;
        if let Some(list) = self.rooms.read().expect("poisoned").get(&room) {
            let body = self.fields.message(message);
            for subscriber in list.values() {
                let push = Push::Message {
                    subscription: subscriber.subscription.clone(),
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
    }

    /// Hands a delivery's unread counts to the subscribers of those users. Never waits.
    pub fn dispatch_unread(&self, delivery: &Delivery) {
        if delivery.unread.is_empty() {
            return;
        }
        let room = delivery.message.chat_room_id;
        let users = self.unread.read().expect("poisoned");
        for (user, count) in &delivery.unread {
            let Some(list) = users.get(user) else {
                continue;
            };
            let body = self.fields.unread(room, *count);
            for subscriber in list.values() {
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

    fn prune<K: Hash + Eq>(&self, map: &SubscriberMap<K>, key: K) {
        let mut map = map.write().expect("poisoned");
        if let Some(list) = map.get_mut(&key) {
            list.retain(|_, s| !s.outbox.is_closed());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_connections_are_capped_and_counted_per_node() {
        let hub = Hub::default();
        let (a, _ra) = hub.connect(UserId(7), 8, 2).unwrap();
        let (_b, _rb) = hub.connect(UserId(7), 8, 2).unwrap();
        assert_eq!(
            hub.connect(UserId(7), 8, 2).unwrap_err(),
            TooManyConnections(2)
        );
        assert!(hub.connect(UserId(8), 8, 2).is_ok(), "another user");
        hub.disconnect(a);
        assert_eq!(hub.connections_of(UserId(7)), 1);
        assert!(hub.connect(UserId(7), 8, 2).is_ok());
    }

    #[test]
    fn revoking_reaches_every_connection_of_the_user() {
        let hub = Hub::default();
        let (_a, mut ra) = hub.connect(UserId(7), 8, 4).unwrap();
        let (_b, mut rb) = hub.connect(UserId(7), 8, 4).unwrap();
        let (_c, mut rc) = hub.connect(UserId(8), 8, 4).unwrap();
        assert_eq!(hub.revoke(UserId(7), Some(RoomId(3)), "left room 3"), 2);
        for rx in [&mut ra, &mut rb] {
            assert!(matches!(
                rx.try_recv(),
                Ok(Push::Revoke {
                    room: Some(RoomId(3)),
                    ..
                })
            ));
        }
        assert!(rc.try_recv().is_err());
    }

    #[test]
    fn ending_many_subscriptions_of_one_connection_leaves_the_others() {
        let hub = Hub::default();
        let (a, _ra) = hub.connect(UserId(1), 8, 4).unwrap();
        let (b, _rb) = hub.connect(UserId(2), 8, 4).unwrap();
        for i in 0..1_000 {
            hub.subscribe_room(&a, Arc::from(i.to_string()), RoomId(5));
        }
        hub.subscribe_room(&b, Arc::from("0"), RoomId(5));
        assert_eq!(hub.subscribers(RoomId(5)), 1_001);
        for i in 0..1_000 {
            hub.unsubscribe_room(&a, &i.to_string(), RoomId(5));
        }
        assert_eq!(
            hub.subscribers(RoomId(5)),
            1,
            "b's subscription with the same id stays"
        );
    }
}
