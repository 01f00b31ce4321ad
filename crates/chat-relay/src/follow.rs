//! A node's delivery loop: the relay's deliveries to the hub, and while the relay says messages
//! do not pass between nodes ([`Relay::health`](crate::Relay::health)), every subscribed room
//! read from the store instead.
//!
//! The store is where every node's messages end up whatever the relay does, and it gives a
//! room's messages in their order. So while following, a delivery from the relay only says
//! "read this room now", each room is read every [`Follow::interval`] from the newest message
//! this node handed on, and the hub gets each room's messages strictly in order with none
//! skipped, whichever node stored them. Subscribers drop what they already have, so a message
//! that comes both ways is delivered once. Following goes on for [`Follow::grace`] after the
//! relay is back: other nodes notice the broker's return a little later and may store a last
//! few messages without it.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::connection::Follow;
use crate::hub::Hub;
use crate::relay::Delivery;
use crate::store::PAGE_MAX;
use crate::{Clock, MessageStore, Result, RoomId};

/// How far back a room this node has had no message from is read when following starts: a
/// message stored just before this node noticed the outage must not be missed, and another
/// node's clock may run a little behind.
const START_MARGIN_MS: i64 = 2_000;

/// Where deliveries come from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The relay: hand each delivery on.
    Relay,
    /// The store, while the relay is degraded, and until the instant if it is back.
    Store(Option<Instant>),
}

/// Feeds one node's hub.
pub(crate) struct Follower {
    pub(crate) hub: Arc<Hub>,
    pub(crate) store: Arc<dyn MessageStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) follow: Follow,
    /// The newest message handed to the hub, per room with subscribers here.
    cursors: HashMap<RoomId, i64>,
}

impl Follower {
    pub(crate) fn new(
        hub: Arc<Hub>,
        store: Arc<dyn MessageStore>,
        clock: Arc<dyn Clock>,
        follow: Follow,
    ) -> Self {
        Self {
            hub,
            store,
            clock,
            follow,
            cursors: HashMap::new(),
        }
    }

    /// Runs until `deliveries` ends. Without `health`, every delivery goes straight to the hub.
    pub(crate) async fn run(
        mut self,
        mut deliveries: BoxStream<'static, Delivery>,
        health: Option<watch::Receiver<bool>>,
    ) {
        let Some(mut health) = health else {
            return self.hub.pump(deliveries).await;
        };
        let mut mode = if *health.borrow_and_update() {
            Mode::Relay
        } else {
            Mode::Store(None)
        };
        let mut watching = true;
        let mut tick = tokio::time::interval(self.follow.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // A change of health first: a message stored without the relay (delivered
                // here at once) must find this node following the store already.
                biased;
                changed = health.changed(), if watching => {
                    if changed.is_err() {
                        // The relay's owner is gone; its last word stands.
                        watching = false;
                        continue;
                    }
                    mode = match (*health.borrow_and_update(), mode) {
                        (false, Mode::Relay) => {
                            tracing::warn!("the chat relay is degraded: following rooms from the store");
                            Mode::Store(None)
                        }
                        (false, _) => Mode::Store(None),
                        // Back: the grace runs from the first word of it.
                        (true, Mode::Store(None)) => Mode::Store(Some(Instant::now() + self.follow.grace)),
                        (true, mode) => mode,
                    };
                }
                delivery = deliveries.next() => match delivery {
                    Some(delivery) => self.deliver(&delivery, mode != Mode::Relay).await,
                    None => return,
                },
                _ = tick.tick(), if mode != Mode::Relay => {
                    self.catch_up_all().await;
                    if let Mode::Store(Some(until)) = mode && Instant::now() >= until {
                        tracing::info!("the chat relay is back: deliveries come from it again");
                        mode = Mode::Relay;
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, delivery: &Delivery, following: bool) {
        let message = &delivery.message;
        let room = message.chat_room_id;
        if following {
            if let Err(e) = self.catch_up(room).await {
                tracing::warn!(
                    room = room.0,
                    error = &e as &dyn std::error::Error,
                    "reading a room from the store failed"
                );
            }
            // Stored, but not (yet) read back: hand it on rather than lose it.
            if self
                .cursors
                .get(&room)
                .is_none_or(|&c| c < message.send_time)
                && self.hub.follows(room)
            {
                self.hub.dispatch_message(message);
                self.cursors.insert(room, message.send_time);
            }
            self.hub.dispatch_unread(delivery);
            return;
        }
        if self.hub.follows(room) {
            let cursor = self.cursors.entry(room).or_insert(message.send_time);
            *cursor = (*cursor).max(message.send_time);
        }
        self.hub.dispatch(delivery);
    }

    async fn catch_up_all(&mut self) {
        let rooms = self.hub.rooms();
        self.cursors.retain(|room, _| rooms.contains(room));
        for room in rooms {
            if let Err(e) = self.catch_up(room).await {
                tracing::warn!(
                    room = room.0,
                    error = &e as &dyn std::error::Error,
                    "reading a room from the store failed"
                );
            }
        }
    }

    /// Hands the hub every message of `room` stored after the newest it had, in order.
    async fn catch_up(&mut self, room: RoomId) -> Result<()> {
        if !self.hub.follows(room) {
            self.cursors.remove(&room);
            return Ok(());
        }
        let mut after = match self.cursors.get(&room) {
            Some(&cursor) => cursor,
            None => self.start_of(room).await?,
        };
        loop {
            let page = self.store.after(room, after, PAGE_MAX).await?;
            for message in &page {
                self.hub.dispatch_message(message);
                after = message.send_time;
            }
            self.cursors.insert(room, after);
            if page.len() < PAGE_MAX {
                return Ok(());
            }
        }
    }

    /// Where to start reading a room this node has had nothing from: the margin back from now,
    /// or the room's newest message if that is older (then nothing in between can be missed,
    /// whatever the clocks say).
    async fn start_of(&self, room: RoomId) -> Result<i64> {
        let margin = self.clock.now().timestamp_millis() - START_MARGIN_MS;
        let newest = self.store.history(room, None, 1).await?;
        Ok(newest
            .messages
            .first()
            .map_or(margin, |m| m.send_time.min(margin)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::mpsc;

    use super::*;
    use crate::hub::Push;
    use crate::relay::{Failover, MemoryRelay, Relay, Sequencer};
    use crate::{
        ChatError, Draft, Member, MemoryMembers, MemoryPresence, MemoryStore, SystemClock, UserId,
    };

    /// A broker shared by the nodes that refuses everything while switched off.
    #[derive(Debug)]
    struct Broker {
        relay: MemoryRelay,
        on: AtomicBool,
    }

    #[async_trait]
    impl Relay for Broker {
        async fn publish(&self, draft: Draft) -> Result<()> {
            if self.on.load(Ordering::SeqCst) {
                self.relay.publish(draft).await
            } else {
                Err(ChatError::unavailable("broker", "switched off"))
            }
        }
        async fn subscribe(&self) -> Result<BoxStream<'static, Delivery>> {
            self.relay.subscribe().await
        }
    }

    struct Node {
        relay: Failover,
        up: watch::Sender<bool>,
        inbox: mpsc::Receiver<Push>,
        /// What a subscription has shown: it drops what is not newer than its last.
        seen: Vec<String>,
        last: i64,
    }

    const ROOM: RoomId = RoomId(9);

    impl Node {
        async fn start(
            broker: &Arc<Broker>,
            sequencer: &Sequencer,
            store: &Arc<MemoryStore>,
        ) -> Self {
            let (up, health) = watch::channel(true);
            let relay = Failover::new(broker.clone(), sequencer.clone(), health);
            let hub = Arc::new(Hub::default());
            let (outbox, inbox) = hub.connect(UserId(1), 1024, 4).unwrap();
            hub.subscribe_room(&outbox, Arc::from("0"), ROOM);
            std::mem::forget(outbox);
            let follow = Follow {
                interval: Duration::from_millis(10),
                grace: Duration::from_millis(100),
            };
            let follower = Follower::new(hub, store.clone(), Arc::new(SystemClock), follow);
            let deliveries = relay.subscribe().await.unwrap();
            tokio::spawn(follower.run(deliveries, relay.health()));
            Self {
                relay,
                up,
                inbox,
                seen: Vec::new(),
                last: i64::MIN,
            }
        }

        async fn send(&self, content: &str) {
            let member = Member {
                id: UserId(1),
                name: "a".into(),
            };
            let draft = Draft::new(ROOM, &member, content, 0).unwrap();
            self.relay.publish(draft).await.unwrap();
        }

        /// Reads until the subscription has shown `n` messages.
        async fn shown(&mut self, n: usize) -> &[String] {
            while self.seen.len() < n {
                let push = tokio::time::timeout(Duration::from_secs(10), self.inbox.recv())
                    .await
                    .unwrap_or_else(|_| panic!("no message within 10 s after {:?}", self.seen))
                    .unwrap();
                if let Push::Message {
                    send_time, body, ..
                } = push
                    && send_time > self.last
                {
                    self.last = send_time;
                    let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    self.seen
                        .push(message["content"].as_str().unwrap().to_owned());
                }
            }
            &self.seen
        }
    }

    async fn stored(store: &MemoryStore) -> Vec<String> {
        let mut page = store.history(ROOM, None, PAGE_MAX).await.unwrap().messages;
        page.reverse();
        page.into_iter().map(|m| m.content).collect()
    }

    #[tokio::test]
    async fn while_the_broker_is_down_every_node_shows_every_message_once_in_order() {
        let store = Arc::new(MemoryStore::new());
        let sequencer = Sequencer::new(
            store.clone(),
            Arc::new(MemoryPresence::new()),
            Arc::new(MemoryMembers::new()),
        );
        let broker = Arc::new(Broker {
            relay: MemoryRelay::new(sequencer.clone()),
            on: AtomicBool::new(true),
        });
        let mut a = Node::start(&broker, &sequencer, &store).await;
        let mut b = Node::start(&broker, &sequencer, &store).await;

        a.send("a1").await;
        b.send("b1").await;
        assert_eq!(a.shown(2).await, ["a1", "b1"]);
        assert_eq!(b.shown(2).await, ["a1", "b1"]);

        // The broker goes; the nodes notice one after the other.
        broker.on.store(false, Ordering::SeqCst);
        a.up.send_replace(false);
        a.send("a2").await;
        b.up.send_replace(false);
        b.send("b2").await;
        a.send("a3").await;
        b.send("b3").await;
        let all = stored(&store).await;
        assert_eq!(all, ["a1", "b1", "a2", "b2", "a3", "b3"]);
        assert_eq!(
            a.shown(6).await,
            all,
            "a shows b's messages stored without the broker"
        );
        assert_eq!(b.shown(6).await, all);

        // Back: a first, then b, which stores one more message on its own meanwhile.
        broker.on.store(true, Ordering::SeqCst);
        a.up.send_replace(true);
        a.send("a4").await;
        b.send("b4").await;
        b.up.send_replace(true);
        b.send("b5").await;
        a.send("a5").await;
        let all = stored(&store).await;
        assert_eq!(all.len(), 10);
        assert_eq!(a.shown(10).await, all);
        assert_eq!(b.shown(10).await, all);
    }

    /// A broker that never acknowledges.
    #[derive(Debug)]
    struct Silent;

    #[async_trait]
    impl Relay for Silent {
        async fn publish(&self, _: Draft) -> Result<()> {
            std::future::pending().await
        }
        async fn subscribe(&self) -> Result<BoxStream<'static, Delivery>> {
            Ok(futures::stream::pending().boxed())
        }
    }

    #[tokio::test]
    async fn a_send_waiting_on_the_broker_fails_as_soon_as_it_is_known_down() {
        let sequencer = Sequencer::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryPresence::new()),
            Arc::new(MemoryMembers::new()),
        );
        let (up, health) = watch::channel(true);
        let relay = Arc::new(Failover::new(Arc::new(Silent), sequencer, health));
        let member = Member {
            id: UserId(1),
            name: "a".into(),
        };
        let draft = Draft::new(ROOM, &member, "hello", 0).unwrap();
        let waiting = tokio::spawn({
            let (relay, draft) = (relay.clone(), draft.clone());
            async move { relay.publish(draft).await }
        });
        tokio::task::yield_now().await;
        up.send_replace(false);
        let failed = waiting.await.unwrap().unwrap_err();
        assert!(failed.is_retryable(), "{failed}");
        relay
            .publish(draft)
            .await
            .expect("stored without the broker");
    }
}
