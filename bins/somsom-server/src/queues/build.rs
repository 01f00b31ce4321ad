//! Building the waiting rooms, their admission-token key and their admission driver from
//! configuration.

use std::sync::Arc;
use std::time::Duration;

use cognito_auth::Clock;
use waiting_queue::driver::IntervalDriver;
use waiting_queue::redis::RedisQueue;
use waiting_queue::{AdmissionTokens, MemoryQueue, WaitingQueue};

use super::Queues;
use crate::application::{BuildError, engine_failed, secret_error};

use crate::config::{Config, Invalid, QueueDriver};
use crate::db::Database;
use crate::tasks::Tasks;

/// The waiting rooms (in Redis when configured), their token key, and the admission driver the
/// configuration names, started on `tasks`.
pub(crate) async fn build(
    config: &Config,
    db: &Database,
    redis: Option<&crate::backends::SharedRedis>,
    clock: Arc<dyn Clock>,
    tasks: &Tasks,
) -> Result<Queues, BuildError> {
    let settings = &config.queue;
    let policy = settings.policy();
    policy
        .validate()
        .map_err(|e| Invalid::one(format!("queue: {e}")))?;
    let engine: Arc<dyn WaitingQueue> = match redis {
        Some(redis) => Arc::new(crate::outage::guarded::GuardedQueue::new(
            Arc::new(
                RedisQueue::new(redis.connection.clone(), config.redis_key_prefix.clone())
                    .with_clock(clock.clone())
                    .with_default_policy(policy),
            ),
            redis.dependency.clone(),
        )),
        None => Arc::new(
            MemoryQueue::new()
                .with_clock(clock.clone())
                .with_default_policy(policy),
        ),
    };
    let configured = crate::config::secret(
        "queue.token_secret",
        &settings.token_secret,
        &settings.token_secret_file,
    )
    .map_err(secret_error("queue.token_secret"))?;
    // Made by the first node to start, read back by every other one, unless configured.
    let secret = db
        .configured_or_shared(configured, "queue_token_key")
        .await
        .map_err(engine_failed("queue token key"))?;
    let tokens = AdmissionTokens::new(secret.as_bytes()).ok_or_else(|| BuildError::Secret {
        name: "queue.token_secret",
        reason: format!("at least {} bytes", waiting_queue::token::SECRET_MIN),
    })?;
    match settings.driver {
        QueueDriver::Interval => {
            // A tenth of the interval gives admissions a tenth of an interval's jitter at most.
            let cadence =
                (policy.interval / 10).clamp(Duration::from_millis(10), Duration::from_millis(250));
            let driver = IntervalDriver::new(engine.clone(), cadence);
            tasks.spawn("queue-admission", move |cancel| async move {
                driver.run(cancel.cancelled_owned(), log_tick).await;
            });
        }
        QueueDriver::Sqs => sqs_driver(config, engine.clone(), tasks).await?,
    }
    Ok(Queues::new(
        engine,
        tokens,
        policy,
        Duration::from_millis(settings.watch_poll_ms.max(10)),
        clock,
    ))
}

fn log_tick(queue: &waiting_queue::QueueName, tick: &waiting_queue::Tick) {
    if !tick.admitted.is_empty() || tick.expired > 0 || tick.dropped > 0 {
        tracing::debug!(%queue, tick = tick.tick, admitted = tick.admitted.len(), expired = tick.expired,
            dropped = tick.dropped, waiting = tick.waiting, "queue tick");
    }
}

/// Admission driven by an SQS queue's messages.
#[cfg(feature = "aws")]
async fn sqs_driver(
    config: &Config,
    engine: Arc<dyn WaitingQueue>,
    tasks: &Tasks,
) -> Result<(), BuildError> {
    use waiting_queue::sqs::SqsDriver;
    let settings = &config.queue;
    let sdk = crate::backends::aws_config(&config.aws).await;
    let client = crate::backends::sqs_long_poll(&sdk);
    let url = client
        .create_queue()
        .queue_name(&settings.sqs_queue)
        .send()
        .await
        .map_err(engine_failed("queue driver (sqs)"))?
        .queue_url
        .ok_or_else(|| engine_failed("queue driver (sqs)")("sqs returned no queue url"))?;
    let driver = SqsDriver::new(engine, client, url);
    tasks.spawn("queue-admission-sqs", move |cancel| async move {
        driver.run(cancel.cancelled_owned(), log_tick).await;
    });
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn sqs_driver(
    _config: &Config,
    _engine: Arc<dyn WaitingQueue>,
    _tasks: &Tasks,
) -> Result<(), BuildError> {
    Err(Invalid::not_built("queue.driver = sqs", "aws").into())
}
