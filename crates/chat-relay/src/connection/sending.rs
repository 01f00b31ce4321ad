//! A connection's SENDs on their way through the relay, several at once.
//!
//! Publishing one SEND at a time would cap a connection at one message per store round trip
//! (a few milliseconds on a busy SQLite), and frames would pile up unread behind it. Instead each
//! SEND is published on a task of its own as soon as it is read, with two rules that keep what a
//! client sees the same as if they had gone one by one:
//!
//! - **a room's messages keep their order**: a SEND waits for the connection's previous SEND to
//!   the same room, and is dropped if that one failed (so a failure never leaves a gap that a
//!   later message jumps over);
//! - **results come back in the order the frames came**, so receipts keep the client's order and
//!   the first failure is the one reported.
//!
//! Each publish runs on its own task so that a connection closing mid-way never cancels a message
//! half stored: a message is either not taken, or stored and delivered.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;

use crate::relay::Relay;
use crate::{ChatError, Draft, Result, RoomId};

/// What became of one SEND: its `receipt` header, and whether it was published.
#[derive(Debug)]
pub(super) struct Sent {
    pub receipt: Option<String>,
    pub result: Result<()>,
}

/// Publishes at most `capacity` SENDs at once.
pub(super) struct Sending {
    relay: Arc<dyn Relay>,
    capacity: usize,
    in_flight: FuturesOrdered<BoxFuture<'static, Sent>>,
    /// Per room, whether the connection's latest SEND there was published (`true`) or not.
    tails: HashMap<RoomId, oneshot::Receiver<bool>>,
}

impl Sending {
    /// Publishes through `relay`, at most `capacity` (at least 1) at once.
    pub fn new(relay: Arc<dyn Relay>, capacity: usize) -> Self {
        Self {
            relay,
            capacity: capacity.max(1),
            in_flight: FuturesOrdered::new(),
            tails: HashMap::new(),
        }
    }

    /// No SEND is waiting for its result.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// As many SENDs are in flight as allowed: read no more frames until one is done.
    pub fn is_full(&self) -> bool {
        self.in_flight.len() >= self.capacity
    }

    /// Starts publishing `draft`, after the previous SEND to its room.
    pub fn push(&mut self, draft: Draft, receipt: Option<String>) {
        let (done, tail) = oneshot::channel();
        let previous = self.tails.insert(draft.chat_room_id, tail);
        let relay = self.relay.clone();
        let task = tokio::spawn(async move {
            if let Some(previous) = previous
                && previous.await != Ok(true)
            {
                let _ = done.send(false);
                return Err(ChatError::unavailable(
                    "relay",
                    "an earlier message to this room was not published",
                ));
            }
            let result = relay.publish(draft).await;
            let _ = done.send(result.is_ok());
            result
        });
        self.in_flight.push_back(
            async move {
                let result = task.await.unwrap_or_else(|e| {
                    Err(ChatError::unavailable(
                        "relay",
                        format!("the publish task ended: {e}"),
                    ))
                });
                Sent { receipt, result }
            }
            .boxed(),
        );
    }

    /// The oldest SEND's result, once it has one. Call only when not [`is_empty`](Self::is_empty).
    pub async fn next(&mut self) -> Option<Sent> {
        let sent = self.in_flight.next().await;
        if self.in_flight.is_empty() {
            // Everything is done: no later SEND has anything left to wait for.
            self.tails.clear();
        }
        sent
    }
}
