//! The local admission driver: every node ticks every queue on a short cadence with
//! [`TickRule::Due`], and the engine admits once per policy interval however many nodes ask.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{QueueName, Result, Tick, TickRule, WaitingQueue};

/// Ticks every active queue of an engine on a fixed cadence.
#[derive(Debug, Clone)]
pub struct IntervalDriver {
    engine: Arc<dyn WaitingQueue>,
    cadence: Duration,
}

impl IntervalDriver {
    /// Ticks every `cadence`: the resolution of admission times, not their rate (the rate is
    /// each queue's policy). A tenth of the shortest interval is plenty.
    pub fn new(engine: Arc<dyn WaitingQueue>, cadence: Duration) -> Self {
        Self { engine, cadence }
    }

    /// One pass over the engine's queues; returns the ticks that applied.
    pub async fn run_once(&self) -> Result<Vec<(QueueName, Tick)>> {
        let mut applied = Vec::new();
        for queue in self.engine.queues().await? {
            let tick = self.engine.tick(&queue, TickRule::Due).await?;
            if tick.applied {
                applied.push((queue, tick));
            }
        }
        Ok(applied)
    }

    /// Runs until `shutdown` completes, calling `on_tick` for every applied tick. Backend errors
    /// are logged and retried on the next pass.
    pub async fn run<F>(self, shutdown: F, mut on_tick: impl FnMut(&QueueName, &Tick) + Send)
    where
        F: Future<Output = ()> + Send,
    {
        let mut every = tokio::time::interval(self.cadence);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = every.tick() => {}
            }
            match self.run_once().await {
                Ok(ticks) => ticks.iter().for_each(|(q, t)| on_tick(q, t)),
                Err(e) => tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "waiting-queue: admission pass failed"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, MemoryQueue, Policy};

    #[tokio::test]
    async fn two_drivers_on_one_engine_admit_one_batch_per_interval() {
        let clock = ManualClock::starting_now();
        let engine: Arc<dyn WaitingQueue> =
            Arc::new(MemoryQueue::new().with_clock(Arc::new(clock.clone())));
        let q = QueueName::new("drop").unwrap();
        engine
            .configure(
                &q,
                Some(Policy {
                    batch_size: 3,
                    ..Policy::default()
                }),
            )
            .await
            .unwrap();
        for i in 0..20 {
            engine.join(&q, &format!("u{i}")).await.unwrap();
        }
        let a = IntervalDriver::new(engine.clone(), Duration::from_millis(100));
        let b = IntervalDriver::new(engine.clone(), Duration::from_millis(100));
        let mut admitted = Vec::new();
        for _ in 0..4 {
            // Both nodes pass several times within one interval; only the first pass admits.
            for driver in [&a, &b, &a, &b] {
                for (_, tick) in driver.run_once().await.unwrap() {
                    admitted.push(tick.admitted);
                }
            }
            clock.advance(chrono::TimeDelta::seconds(1));
        }
        assert_eq!(admitted.len(), 4);
        assert!(admitted.iter().all(|batch| batch.len() == 3));
        let order: Vec<String> = admitted.concat();
        let expected: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
        assert_eq!(order, expected);
    }
}
