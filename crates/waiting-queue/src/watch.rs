//! Change feeds for pushing ranks to waiters instead of having them poll.
//!
//! One poller per watched queue reads [`WaitingQueue::version`] (one cheap call, whatever the
//! number of watchers) and wakes every subscriber when it moves; each subscriber then asks for
//! its own rank. The feed works the same for a queue changed on this node or on another one
//! sharing the backend. A poller stops when its last subscriber is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{QueueName, WaitingQueue};

type Feeds = Arc<Mutex<HashMap<QueueName, watch::Sender<u64>>>>;

/// Hands out change feeds per queue; owns the pollers behind them.
#[derive(Debug)]
pub struct QueueWatch {
    engine: Arc<dyn WaitingQueue>,
    poll: Duration,
    feeds: Feeds,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl QueueWatch {
    /// Feeds that look for changes every `poll`.
    pub fn new(engine: Arc<dyn WaitingQueue>, poll: Duration) -> Self {
        Self {
            engine,
            poll,
            feeds: Feeds::default(),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// A receiver that sees a new value whenever ranks in `queue` may have improved. Must be
    /// called inside a Tokio runtime.
    pub fn subscribe(&self, queue: &QueueName) -> watch::Receiver<u64> {
        let mut feeds = self.feeds.lock().expect("lock");
        if let Some(sender) = feeds.get(queue) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(0);
        feeds.insert(queue.clone(), sender.clone());
        let poller = Poller {
            engine: self.engine.clone(),
            queue: queue.clone(),
            sender,
            feeds: self.feeds.clone(),
            poll: self.poll,
        };
        self.tasks.spawn(poller.run(self.cancel.clone()));
        receiver
    }

    /// How many queues are being watched now.
    pub fn watched(&self) -> usize {
        self.feeds.lock().expect("lock").len()
    }

    /// Stops every poller and waits for them.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for QueueWatch {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct Poller {
    engine: Arc<dyn WaitingQueue>,
    queue: QueueName,
    sender: watch::Sender<u64>,
    feeds: Feeds,
    poll: Duration,
}

impl Poller {
    async fn run(self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.poll) => {}
            }
            {
                // Under the lock, so that nobody subscribes to a feed that is going away.
                let mut feeds = self.feeds.lock().expect("lock");
                if self.sender.receiver_count() == 0 {
                    feeds.remove(&self.queue);
                    return;
                }
            }
            match self.engine.version(&self.queue).await {
                Ok(version) => {
                    self.sender.send_if_modified(|seen| {
                        let changed = *seen != version;
                        *seen = version;
                        changed
                    });
                }
                Err(e) => {
                    tracing::warn!(queue = %self.queue, error = &e as &dyn std::error::Error, "waiting-queue: watch poll failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryQueue;

    #[tokio::test(start_paused = true)]
    async fn subscribers_wake_when_someone_ahead_leaves_and_pollers_stop_with_them() {
        let engine: Arc<dyn WaitingQueue> = Arc::new(MemoryQueue::default());
        let q = QueueName::new("w").unwrap();
        engine.join(&q, "first").await.unwrap();
        engine.join(&q, "second").await.unwrap();
        let watch = QueueWatch::new(engine.clone(), Duration::from_millis(50));
        let mut rx = watch.subscribe(&q);
        let mut rx2 = watch.subscribe(&q);
        assert_eq!(watch.watched(), 1, "one poller per queue");
        engine.leave(&q, "first").await.unwrap();
        rx.changed().await.unwrap();
        rx2.changed().await.unwrap();
        assert_eq!(engine.rank(&q, "second").await.unwrap(), Some(1));
        drop((rx, rx2));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            watch.watched(),
            0,
            "the poller left with its last subscriber"
        );
        watch.shutdown().await;
    }
}
