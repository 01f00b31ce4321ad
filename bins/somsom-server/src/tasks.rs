//! Background tasks with an owner: every task gets a cancellation token and is awaited at
//! shutdown, so nothing is left detached. Tasks registered while the server is being built wait
//! until it starts serving ([`Tasks::start`]): a one-off command (`grant-admin`,
//! `generate-festivals`) builds the same engines but never runs a worker, joins a consumer
//! group or sends a reminder.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Deferred = Box<dyn FnOnce(&Tasks) + Send>;

/// The owner of the server's background tasks.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// Tasks registered before [`start`](Self::start); `None` once started.
    waiting: Arc<Mutex<Option<Vec<Deferred>>>>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("running", &self.tracker.len())
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Tasks {
    /// No tasks yet; those registered now run from [`start`](Self::start) on.
    pub fn new() -> Self {
        Self {
            waiting: Arc::new(Mutex::new(Some(Vec::new()))),
            ..Self::default()
        }
    }

    /// Runs `task` until it finishes (from [`start`](Self::start) on, if not started yet); it is
    /// handed a token that is cancelled at shutdown and must return soon after.
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let run = move |tasks: &Tasks| {
            let fut = task(tasks.cancel.child_token());
            tasks.tracker.spawn(async move {
                fut.await;
                tracing::debug!(task = name, "background task finished");
            });
        };
        let mut waiting = self.waiting.lock().expect("not poisoned");
        match waiting.as_mut() {
            Some(waiting) => waiting.push(Box::new(run)),
            None => {
                drop(waiting);
                run(self);
            }
        }
    }

    /// Starts the tasks registered so far; later ones start at once.
    pub fn start(&self) {
        let waiting = self.waiting.lock().expect("not poisoned").take();
        for run in waiting.into_iter().flatten() {
            run(self);
        }
    }

    /// Tasks registered and not started yet.
    pub fn waiting(&self) -> usize {
        self.waiting
            .lock()
            .expect("not poisoned")
            .as_ref()
            .map_or(0, Vec::len)
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
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn tasks_wait_for_the_start() {
        let tasks = Tasks::new();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        tasks.spawn("worker", |_| async move {
            flag.store(true, Ordering::SeqCst);
        });
        tokio::task::yield_now().await;
        assert!(!ran.load(Ordering::SeqCst), "not before the start");
        assert_eq!(tasks.waiting(), 1);
        tasks.start();
        assert!(tasks.shutdown(Duration::from_secs(5)).await);
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(tasks.waiting(), 0);
    }

    #[tokio::test]
    async fn shutdown_cancels_and_awaits_tasks() {
        let tasks = Tasks::new();
        tasks.start();
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
        tasks.start();
        tasks.spawn("stubborn", |_| std::future::pending());
        assert!(!tasks.shutdown(Duration::from_millis(20)).await);
    }
}
