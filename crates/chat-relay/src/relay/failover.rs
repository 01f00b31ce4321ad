//! Chat that keeps going while the broker between nodes is down.
//!
//! While the primary relay (Kafka) is up, [`Failover`] is that relay. While it is down, a
//! message is stored here, by this node's own [`Sequencer`], and handed to this node's
//! subscribers; the store is shared, so it is safe, and the other nodes read it from there:
//! [`Relay::health`] says `false`, and every [`ChatServer`](crate::ChatServer) then follows its
//! subscribed rooms from the store (in each room's order) until some seconds after the broker is
//! back. Nothing waits on a broker known to be down, and no message is delivered twice: every
//! path ends in the store's order, and subscribers drop what they have seen.
//!
//! Whether the primary is up is the application's knowledge (a probe, errors on sends), given
//! as a `watch` channel. A message the primary had not acknowledged when it went down fails
//! (the client did not get its receipt); it may still arrive once, if the broker kept it.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use super::{Delivery, MemoryRelay, Relay, Sequencer};
use crate::{ChatError, Draft, Result};

/// A relay that stores messages itself while its primary is down.
#[derive(Debug)]
pub struct Failover {
    primary: Arc<dyn Relay>,
    local: MemoryRelay,
    up: watch::Receiver<bool>,
}

impl Failover {
    /// `primary` while `up` says `true`; otherwise messages are stored through `sequencer`
    /// (the same store and presence the primary's sequencers use).
    pub fn new(primary: Arc<dyn Relay>, sequencer: Sequencer, up: watch::Receiver<bool>) -> Self {
        Self {
            primary,
            local: MemoryRelay::new(sequencer),
            up,
        }
    }
}

#[async_trait]
impl Relay for Failover {
    async fn publish(&self, draft: Draft) -> Result<()> {
        if *self.up.borrow() {
            let mut up = self.up.clone();
            tokio::select! {
                published = self.primary.publish(draft) => return published,
                // Known down meanwhile: do not keep the client waiting on the broker's timeouts.
                _ = up.wait_for(|up| !*up) => return Err(ChatError::unavailable(
                    "relay",
                    "the broker went down before acknowledging this message; it may arrive once or not at all",
                )),
            }
        }
        self.local.publish(draft).await
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Delivery>> {
        let primary = self.primary.subscribe().await?;
        let local = self.local.subscribe().await?;
        Ok(futures::stream::select(primary, local).boxed())
    }

    fn health(&self) -> Option<watch::Receiver<bool>> {
        Some(self.up.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryMembers, MemoryPresence, MemoryStore};

    #[tokio::test]
    async fn conformance_while_the_primary_is_up() {
        let sequencer = Sequencer::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryPresence::new()),
            Arc::new(MemoryMembers::new()),
        );
        let primary: Arc<dyn Relay> = Arc::new(MemoryRelay::new(sequencer.clone()));
        let (_up, health) = watch::channel(true);
        let node = |health: watch::Receiver<bool>| {
            Arc::new(Failover::new(primary.clone(), sequencer.clone(), health))
        };
        crate::conformance::relay::run_all(&[node(health.clone()), node(health)]).await;
    }
}
