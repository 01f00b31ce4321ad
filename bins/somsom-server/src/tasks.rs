//! Background tasks with an owner: every task gets a cancellation token and is awaited at
//! shutdown, so nothing is left detached.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The owner of the server's background tasks.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` until it finishes; it is handed a token that is cancelled at shutdown and must
    /// return soon after.
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = task(self.cancel.child_token());
        self.tracker.spawn(async move {
            fut.await;
            tracing::debug!(task = name, "background task finished");
        });
    }

    /// The token cancelled at shutdown (for tasks that spawn their own children).
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Cancels every task and waits up to `grace` for them to finish. Returns whether all did.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn shutdown_cancels_and_awaits_tasks() {
        let tasks = Tasks::new();
        let cleaned_up = Arc::new(AtomicBool::new(false));
        let flag = cleaned_up.clone();
        tasks.spawn("ticker", |cancel| async move {
            cancel.cancelled().await;
            tokio::task::yield_now().await;
            flag.store(true, Ordering::SeqCst);
        });
        assert!(tasks.shutdown(Duration::from_secs(5)).await);
        assert!(cleaned_up.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn shutdown_reports_a_task_that_ignores_cancellation() {
        let tasks = Tasks::new();
        tasks.spawn("stubborn", |_| std::future::pending());
        assert!(!tasks.shutdown(Duration::from_millis(20)).await);
    }
}
