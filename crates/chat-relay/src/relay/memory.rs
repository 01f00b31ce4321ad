use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::{Delivery, Relay, Sequencer};
use crate::{Draft, Result, RoomId};

/// One process: publishing sequences the draft under its room's lock and hands the delivery to
/// every subscriber before the lock is released, so each room's deliveries are in order.
#[derive(Debug)]
pub struct MemoryRelay {
    sequencer: Sequencer,
    rooms: Mutex<HashMap<RoomId, Arc<tokio::sync::Mutex<()>>>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Delivery>>>,
}

impl MemoryRelay {
    /// A relay that stores through `sequencer`.
    pub fn new(sequencer: Sequencer) -> Self {
        Self {
            sequencer,
            rooms: Mutex::default(),
            subscribers: Mutex::default(),
        }
    }

    fn room_lock(&self, room: RoomId) -> Arc<tokio::sync::Mutex<()>> {
        self.rooms
            .lock()
            .expect("poisoned")
            .entry(room)
            .or_default()
            .clone()
    }
}

#[async_trait]
impl Relay for MemoryRelay {
    async fn publish(&self, draft: Draft) -> Result<()> {
        let lock = self.room_lock(draft.chat_room_id);
        let _room = lock.lock().await;
        let Some(delivery) = self.sequencer.sequence(&draft).await? else {
            return Ok(());
        };
        // Subscribers are unbounded on purpose: the hub behind each one never blocks (it drops
        // slow connections instead), so the queue stays short.
        self.subscribers
            .lock()
            .expect("poisoned")
            .retain(|subscriber| subscriber.send(delivery.clone()).is_ok());
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Delivery>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().expect("poisoned").push(tx);
        Ok(tokio_stream_from(rx).boxed())
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryMembers, MemoryPresence, MemoryStore};

    #[tokio::test]
    async fn conformance() {
        let sequencer = Sequencer::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryPresence::new()),
            Arc::new(MemoryMembers::new()),
        );
        let relay = Arc::new(MemoryRelay::new(sequencer));
        crate::conformance::relay::run_all(&[relay.clone(), relay]).await;
    }
}
