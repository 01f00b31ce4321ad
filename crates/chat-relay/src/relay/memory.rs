use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, oneshot};

use super::{Delivery, Relay, Sequencer};
use crate::{ChatError, Draft, Result, RoomId};

/// One process: publishing sequences drafts under their room's lock and hands the deliveries to
/// every subscriber before the lock is released, so each room's deliveries are in order.
///
/// Drafts that arrive while their room is being written queue up, and the next publisher to
/// take the lock sequences all of them in one [`Sequencer::sequence_all`]: a store that writes a
/// batch in one round trip then keeps up with a busy room instead of queueing behind it.
#[derive(Debug)]
pub struct MemoryRelay {
    sequencer: Sequencer,
    rooms: Mutex<HashMap<RoomId, Arc<Room>>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Delivery>>>,
}

/// Drafts waiting for a room's turn, each with where its result goes.
type Waiting = Vec<(Draft, oneshot::Sender<Result<()>>)>;

#[derive(Debug, Default)]
struct Room {
    waiting: Mutex<Waiting>,
    turn: tokio::sync::Mutex<()>,
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

    fn room(&self, room: RoomId) -> Arc<Room> {
        self.rooms
            .lock()
            .expect("poisoned")
            .entry(room)
            .or_default()
            .clone()
    }

    /// Sequences a batch and hands out its deliveries and results, in order. A draft that
    /// fails gets its error and the rest are tried after it.
    async fn sequence(&self, batch: Waiting) {
        let (drafts, mut senders): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let mut done = 0;
        while done < drafts.len() {
            let results = self.sequencer.sequence_all(&drafts[done..]).await;
            if results.is_empty() {
                // A store breaking `append_all`'s contract; never leave a publisher waiting.
                for sender in senders.drain(..) {
                    let _ = sender.send(Err(ChatError::unavailable("store", "no result")));
                }
                return;
            }
            let taken = results.len().min(senders.len());
            done += taken;
            let mut subscribers = self.subscribers.lock().expect("poisoned");
            for (result, sender) in results.into_iter().zip(senders.drain(..taken)) {
                let result = result.map(|delivery| {
                    // Subscribers are unbounded on purpose: the hub behind each one never
                    // blocks (it drops slow connections instead), so the queue stays short.
                    if let Some(delivery) = delivery {
                        subscribers.retain(|subscriber| subscriber.send(delivery.clone()).is_ok());
                    }
                });
                // The publisher may have gone (its future dropped); the message stands anyway.
                let _ = sender.send(result);
            }
        }
    }
}

#[async_trait]
impl Relay for MemoryRelay {
    async fn publish(&self, draft: Draft) -> Result<()> {
        let room = self.room(draft.chat_room_id);
        let (sender, result) = oneshot::channel();
        room.waiting.lock().expect("poisoned").push((draft, sender));
        {
            let _turn = room.turn.lock().await;
            // Empty if the previous turn took this draft along.
            let batch = std::mem::take(&mut *room.waiting.lock().expect("poisoned"));
            if !batch.is_empty() {
                self.sequence(batch).await;
            }
        }
        // Only a turn whose publisher was dropped midway leaves a draft without a result; it
        // may or may not have been stored, as with any interrupted write.
        result.await.unwrap_or_else(|_| {
            Err(ChatError::unavailable(
                "relay",
                "publishing was interrupted before this message's result",
            ))
        })
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
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::conformance::{draft, fresh_rooms};
    use crate::{Appended, HistoryPage, MemoryPresence, MemoryStore, MessageStore};

    #[tokio::test]
    async fn conformance() {
        let sequencer = Sequencer::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryPresence::new()),
        );
        let relay = Arc::new(MemoryRelay::new(sequencer));
        crate::conformance::relay::run_all(&[relay.clone(), relay]).await;
    }

    /// A store whose batches each wait for a permit, recording their sizes.
    #[derive(Debug)]
    struct GatedStore {
        inner: MemoryStore,
        batches: Mutex<Vec<usize>>,
        permits: Semaphore,
    }

    #[async_trait]
    impl MessageStore for GatedStore {
        async fn append(&self, draft: &Draft) -> Result<Appended> {
            self.inner.append(draft).await
        }

        async fn append_all(&self, drafts: &[Draft]) -> Vec<Result<Appended>> {
            self.batches.lock().unwrap().push(drafts.len());
            self.permits.acquire().await.unwrap().forget();
            self.inner.append_all(drafts).await
        }

        async fn history(
            &self,
            room: RoomId,
            before: Option<i64>,
            limit: usize,
        ) -> Result<HistoryPage> {
            self.inner.history(room, before, limit).await
        }

        async fn after(
            &self,
            room: RoomId,
            after: i64,
            limit: usize,
        ) -> Result<Vec<crate::ChatMessage>> {
            self.inner.after(room, after, limit).await
        }
    }

    fn gated() -> (Arc<GatedStore>, Arc<MemoryRelay>) {
        let store = Arc::new(GatedStore {
            inner: MemoryStore::new(),
            batches: Mutex::default(),
            permits: Semaphore::new(0),
        });
        let sequencer = Sequencer::new(store.clone(), Arc::new(MemoryPresence::new()));
        (store, Arc::new(MemoryRelay::new(sequencer)))
    }

    /// Waits (as a hang guard, not a timing) until `ready` holds.
    async fn until(ready: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !ready() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("never got there");
    }

    fn waiting(relay: &MemoryRelay, room: RoomId) -> usize {
        relay.room(room).waiting.lock().unwrap().len()
    }

    #[tokio::test]
    async fn drafts_that_queue_behind_a_write_are_stored_in_one_batch() {
        let (store, relay) = gated();
        let mut deliveries = relay.subscribe().await.unwrap();
        let room = fresh_rooms();
        let first = tokio::spawn({
            let relay = relay.clone();
            async move { relay.publish(draft(room, 1, "first", 5)).await }
        });
        until(|| store.batches.lock().unwrap().len() == 1).await;
        let queued: Vec<_> = (0..10)
            .map(|i| {
                let relay = relay.clone();
                tokio::spawn(
                    async move { relay.publish(draft(room, 2, &format!("q{i}"), 5)).await },
                )
            })
            .collect();
        until(|| waiting(&relay, room) == 10).await;
        store.permits.add_permits(2);
        first.await.unwrap().unwrap();
        for publish in queued {
            publish.await.unwrap().unwrap();
        }
        assert_eq!(
            *store.batches.lock().unwrap(),
            [1, 10],
            "the ten went in one batch"
        );
        let mut times = Vec::new();
        for _ in 0..11 {
            times.push(deliveries.next().await.unwrap().message.send_time);
        }
        assert_eq!(
            times,
            (5..16).collect::<Vec<_>>(),
            "delivered in the order stored"
        );
    }

    #[tokio::test]
    async fn an_interrupted_turn_fails_the_drafts_it_took_instead_of_hanging() {
        let (store, relay) = gated();
        let room = fresh_rooms();
        let publish = |content: &'static str| {
            let relay = relay.clone();
            tokio::spawn(async move { relay.publish(draft(room, 1, content, 5)).await })
        };
        let first = publish("first");
        until(|| store.batches.lock().unwrap().len() == 1).await;
        let second = publish("second");
        until(|| waiting(&relay, room) == 1).await;
        let third = publish("third");
        until(|| waiting(&relay, room) == 2).await;
        // The first batch goes through; the second (the second and third drafts, taken by the
        // second publisher's turn) is stuck in the store when that publisher is dropped.
        store.permits.add_permits(1);
        first.await.unwrap().unwrap();
        until(|| store.batches.lock().unwrap().len() == 2).await;
        second.abort();
        assert!(second.await.unwrap_err().is_cancelled());
        let third = tokio::time::timeout(Duration::from_secs(30), third)
            .await
            .expect("the third publisher hung")
            .unwrap();
        assert!(
            matches!(third, Err(ChatError::Unavailable { .. })),
            "{third:?}"
        );
        assert_eq!(*store.batches.lock().unwrap(), [1, 2]);
        // The room is usable afterwards.
        store.permits.add_permits(1);
        publish("fourth").await.unwrap().unwrap();
    }
}
