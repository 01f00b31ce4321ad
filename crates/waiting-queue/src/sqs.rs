//! Admission ticks that travel through an SQS queue.
//!
//! Each message names a queue and a tick number. Whoever receives tick `n` applies it with
//! [`TickRule::Sequence`]`(n)` and, only if it applied, sends tick `n + 1` with the policy's
//! interval as the SQS delay. SQS may deliver a message twice, to two nodes: the second
//! application finds the counter moved and does nothing, and sends nothing, so the chain never
//! forks. If a node dies between applying and sending, the chain stops; every node's
//! [`SqsDriver::kick`] restarts a chain that has been silent for three intervals.
//!
//! SQS delays are whole seconds (0 to 900), so intervals are rounded up.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use chrono::Utc;

use crate::{QueueError, QueueName, Result, Tick, TickRule, WaitingQueue};

/// The longest delay SQS accepts.
const MAX_DELAY_SECS: u64 = 900;

#[derive(serde::Serialize, serde::Deserialize)]
struct TickMessage {
    queue: String,
    tick: u64,
}

/// Drives admission through an SQS queue that every node of a deployment consumes.
#[derive(Debug, Clone)]
pub struct SqsDriver {
    engine: Arc<dyn WaitingQueue>,
    client: Client,
    queue_url: String,
    wait: Duration,
    kick_every: Duration,
}

fn sqs_error(e: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    QueueError::unavailable("sqs", e)
}

impl SqsDriver {
    /// A driver consuming `queue_url`.
    pub fn new(
        engine: Arc<dyn WaitingQueue>,
        client: Client,
        queue_url: impl Into<String>,
    ) -> Self {
        Self {
            engine,
            client,
            queue_url: queue_url.into(),
            wait: Duration::from_secs(1),
            kick_every: Duration::from_secs(2),
        }
    }

    /// How long one receive call waits for messages (SQS long polling, at most 20 s).
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    /// How often [`run`](Self::run) looks for stalled chains.
    pub fn with_kick_every(mut self, every: Duration) -> Self {
        self.kick_every = every;
        self
    }

    async fn send(&self, queue: &QueueName, tick: u64, delay: Duration) -> Result<()> {
        let body = serde_json::to_string(&TickMessage {
            queue: queue.to_string(),
            tick,
        })
        .map_err(sqs_error)?;
        let delay = delay.as_secs_f64().ceil().min(MAX_DELAY_SECS as f64) as i32;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(())
    }

    /// Starts a chain for every queue with people waiting whose last tick is older than three
    /// intervals (or that never ticked). Returns how many were started. Chains started twice
    /// (by two nodes) collapse into one at their first tick.
    pub async fn kick(&self) -> Result<usize> {
        let mut started = 0;
        let now = Utc::now();
        for queue in self.engine.queues().await? {
            let stats = self.engine.stats(&queue).await?;
            if stats.waiting == 0 {
                continue;
            }
            let stall = (stats.policy.interval * 3).max(Duration::from_secs(3));
            let silent = stats
                .last_tick_at
                .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= stall);
            if silent {
                self.send(&queue, stats.tick + 1, Duration::ZERO).await?;
                started += 1;
            }
        }
        Ok(started)
    }

    /// Receives one batch of tick messages and applies them; returns the ticks that applied.
    /// A message is deleted once handled; one that fails on the engine stays and comes back.
    pub async fn poll_once(&self) -> Result<Vec<(QueueName, Tick)>> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .send()
            .await
            .map_err(sqs_error)?;
        let mut applied = Vec::new();
        for message in received.messages.unwrap_or_default() {
            let parsed = message
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<TickMessage>(b).ok())
                .and_then(|m| Some((QueueName::new(m.queue).ok()?, m.tick)));
            match parsed {
                Some((queue, n)) => {
                    let tick = self.engine.tick(&queue, TickRule::Sequence(n)).await?;
                    if tick.applied {
                        if tick.waiting > 0 {
                            let interval = self.engine.stats(&queue).await?.policy.interval;
                            self.send(&queue, n + 1, interval).await?;
                        }
                        applied.push((queue, tick));
                    }
                }
                None => {
                    tracing::warn!(body = ?message.body, "waiting-queue: dropping a malformed tick message")
                }
            }
            if let Some(handle) = message.receipt_handle {
                self.client
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(sqs_error)?;
            }
        }
        Ok(applied)
    }

    /// Runs until `shutdown` completes, calling `on_tick` for every applied tick. Errors are
    /// logged and retried after a pause.
    pub async fn run<F>(self, shutdown: F, mut on_tick: impl FnMut(&QueueName, &Tick) + Send)
    where
        F: Future<Output = ()> + Send,
    {
        tokio::pin!(shutdown);
        // Kicks run between polls, never instead of one: a poll cut short after applying a tick
        // and before sending the next would stall the chain until the next kick.
        let mut last_kick: Option<tokio::time::Instant> = None;
        loop {
            if last_kick.is_none_or(|at| at.elapsed() >= self.kick_every) {
                if let Err(e) = self.kick().await {
                    tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "waiting-queue: kicking stalled queues failed"
                    );
                }
                last_kick = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = &mut shutdown => return,
                polled = self.poll_once() => match polled {
                    Ok(ticks) => ticks.iter().for_each(|(q, t)| on_tick(q, t)),
                    Err(e) => {
                        tracing::warn!(error = &e as &dyn std::error::Error, "waiting-queue: receiving tick messages failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    }
}
