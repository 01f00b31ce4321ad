//! Getting messages from the node a client sent them to, into the store, and out to every node.
//!
//! A message passes three steps:
//!
//! 1. [`Relay::publish`] takes a [`Draft`] from the sending node;
//! 2. the [`Sequencer`] stores it (which gives it its `sendTime`) and counts it unread for absent
//!    members; one sequencer handles a room at a time, so a room's `sendTime`s increase in the
//!    order messages are delivered;
//! 3. every node receives the resulting [`Delivery`] from [`Relay::subscribe`] and hands it to
//!    its local subscribers (the node's hub).
//!
//! Delivering only what is stored is what lets a reconnecting client resume exactly: everything
//! it missed is in the store, and everything it has not missed arrives live after it.
//!
//! [`MemoryRelay`] does all three in one process. `kafka::KafkaRelay` (feature `kafka`) puts
//! drafts on an ingest topic keyed by room, runs the sequencer as a consumer group, and
//! publishes deliveries on a second topic that every node reads in full.
//!
//! [`Failover`] keeps chat going while such a broker is down: it stores each message itself and
//! the nodes read their rooms from the store until the broker is back.

mod failover;
#[cfg(feature = "kafka")]
pub mod kafka;
mod memory;

pub use failover::Failover;
pub use memory::MemoryRelay;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{Appended, ChatMessage, Draft, Members, MessageStore, Presence, Result, UserId};

/// A stored message on its way to every node, with the unread counts it raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The stored message.
    pub message: ChatMessage,
    /// Members who were not present, with their new unread count in the message's room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<(UserId, u64)>,
}

/// Stores drafts and counts them unread: step 2 of the pipeline.
#[derive(Debug, Clone)]
pub struct Sequencer {
    store: Arc<dyn MessageStore>,
    presence: Arc<dyn Presence>,
    members: Arc<dyn Members>,
}

impl Sequencer {
    /// A sequencer writing to `store` and counting, in `presence`, unread messages for the
    /// `members` of each room who are not present.
    pub fn new(
        store: Arc<dyn MessageStore>,
        presence: Arc<dyn Presence>,
        members: Arc<dyn Members>,
    ) -> Self {
        Self {
            store,
            presence,
            members,
        }
    }

    /// Stores `draft` and counts it. The message is stored once this returns `Ok`; a failure to
    /// count unread messages is logged, not returned, since the message itself is safe.
    ///
    /// A draft whose `seq` was stored before (another sequencer got there first) is not
    /// counted again; its delivery is returned again, without unread counts, so that it
    /// precedes this sequencer's later deliveries (subscribers drop what they have seen).
    /// `None` only if the store cannot find that earlier message.
    pub async fn sequence(&self, draft: &Draft) -> Result<Option<Delivery>> {
        let message = match self.store.append(draft).await? {
            Appended::Stored(message) => message,
            Appended::Duplicate(message) => {
                return Ok(message.map(|message| Delivery {
                    message,
                    unread: Vec::new(),
                }));
            }
        };
        let room = message.chat_room_id;
        let counted = match self.members.of(room).await {
            Ok(members) => self.presence.count_message(room, &members).await,
            Err(e) => Err(e),
        };
        let unread = match counted {
            Ok(unread) => unread,
            Err(e) => {
                tracing::warn!(
                    room = message.chat_room_id.0,
                    error = &e as &dyn std::error::Error,
                    "unread counts not updated"
                );
                Vec::new()
            }
        };
        Ok(Some(Delivery { message, unread }))
    }
}

/// Moves messages between nodes.
#[async_trait]
pub trait Relay: Send + Sync + std::fmt::Debug + 'static {
    /// Hands over a draft. Returns once it is durable: stored (memory) or acknowledged by the
    /// broker (Kafka), so a client's receipt means the message will be delivered.
    async fn publish(&self, draft: Draft) -> Result<()>;

    /// Every delivery from now on, one room's in order of `sendTime`. A delivery may come again
    /// later (when a room's sequencing moves between nodes); subscribers drop any delivery not
    /// newer than the last one they had from that room. Returns once the subscription is
    /// established, so nothing published after this returns is missed.
    async fn subscribe(&self) -> Result<BoxStream<'static, Delivery>>;

    /// Whether messages pass between nodes through this relay now, for a relay that can lose
    /// that ability and keep going ([`Failover`]): `false` while messages are stored without
    /// reaching the other nodes, and then every node's subscribers follow their rooms from the
    /// store instead ([`ChatServer`](crate::ChatServer) does). `None` (the default): always.
    fn health(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }
}
