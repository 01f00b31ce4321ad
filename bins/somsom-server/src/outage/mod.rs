//! Failing fast while a shared service is down. A [`Dependency`] is known to be up or down: a
//! backend error on any request marks it down at once, and from then on the engines that use it
//! answer "unavailable" without asking it ([`guarded`]), so requests get their 503 in
//! microseconds instead of each waiting out the client's timeouts. A background [`watch`] probes
//! the service (four times a second while down, once a second while up) and marks it up again;
//! recovery never waits on a user's request.

pub mod gate;
pub mod guarded;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

/// Routes answered without the database or Redis: health, readiness, metrics, the API document
/// and public keys. Every other route needs the database (the caller's account at least).
pub const NO_BACKEND_ROUTES: &[&str] = &[
    "/healthz",
    "/actuator/health",
    "/readyz",
    "/metrics",
    "/v3/api-docs",
    "/.well-known/jwks.json",
    "/notification/vapid-public-key",
];

/// How often a down dependency is probed.
const PROBE_DOWN: Duration = Duration::from_millis(250);
/// How often an up dependency is probed (errors on requests mark it down in between).
const PROBE_UP: Duration = Duration::from_secs(1);
/// How long one probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks the service whether it answers.
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    /// Succeeds when the service answers now.
    async fn probe(&self) -> Result<(), String>;
}

/// Work that must be done before a recovered dependency is used again (invalidations that
/// could not be made while it was down). Failing keeps it marked down.
#[async_trait]
pub trait Recovery: Send + Sync + 'static {
    /// Catches up; an error is retried at the next successful probe.
    async fn recover(&self) -> Result<(), String>;
}

/// One shared service and whether it is known to be up.
pub struct Dependency {
    name: &'static str,
    /// Whether it is believed to answer; watched by engines that change course (the chat).
    up: tokio::sync::watch::Sender<bool>,
    /// Times it went down (for the log and the tests).
    outages: AtomicU64,
    recoveries: std::sync::Mutex<Vec<Arc<dyn Recovery>>>,
}

impl std::fmt::Debug for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependency")
            .field("name", &self.name)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

/// Why a call was not made: the dependency is known to be down.
#[derive(Debug, thiserror::Error)]
#[error("{0} is down; not asked until it answers again")]
pub struct KnownDown(pub &'static str);

impl Dependency {
    /// `name` (e.g. `redis`), up until something says otherwise.
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            up: tokio::sync::watch::Sender::new(true),
            outages: AtomicU64::new(0),
            recoveries: std::sync::Mutex::default(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether it is believed to answer.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Its state from now on, as it changes.
    pub fn health(&self) -> tokio::sync::watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// How many times it went down since start.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Marks it down after `error` (logged once per outage).
    pub fn failed(&self, error: &(dyn std::error::Error + 'static)) {
        // Watchers hear of changes only, not of every failed probe.
        if self.up.send_if_modified(|up| std::mem::replace(up, false)) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                dependency = self.name,
                error = %crate::error::Report(error),
                "dependency down: requests that need it answer 503 until it is back"
            );
        }
    }

    /// Runs `recovery` before each return to service.
    pub fn on_recovery(&self, recovery: Arc<dyn Recovery>) {
        self.recoveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(recovery);
    }

    async fn recover(&self) {
        let recoveries = self
            .recoveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for recovery in recoveries {
            if let Err(e) = recovery.recover().await {
                tracing::warn!(dependency = self.name, error = %e, "catching up after an outage failed; still down");
                return;
            }
        }
        if self.up.send_if_modified(|up| !std::mem::replace(up, true)) {
            tracing::info!(dependency = self.name, "dependency back");
        }
    }

    /// Calls `f` unless the dependency is known to be down (then `down` makes the error), and
    /// marks it down when `f` fails in a way `retryable` says is the service's fault.
    pub async fn call<T, E, Fut>(
        &self,
        down: impl FnOnce(KnownDown) -> E,
        retryable: impl FnOnce(&E) -> bool,
        f: Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        if !self.is_up() {
            return Err(down(KnownDown(self.name)));
        }
        let result = f.await;
        if let Err(e) = &result
            && retryable(e)
        {
            self.failed(e);
        }
        result
    }
}

/// Every shared service this node watches: each gets its [`Dependency`] and a background
/// [`watch`] task, and readiness and metrics list them all.
#[derive(Clone)]
pub struct Watches {
    tasks: crate::tasks::Tasks,
    all: Arc<std::sync::Mutex<Vec<Arc<Dependency>>>>,
}

impl Watches {
    /// Watches whose tasks run under `tasks` (and stop at its shutdown).
    pub fn new(tasks: &crate::tasks::Tasks) -> Self {
        Self {
            tasks: tasks.clone(),
            all: Arc::default(),
        }
    }

    /// The service `name` (`redis`, `kafka`, …), probed through `probe` from now on by a task
    /// called `{name}-watch`.
    pub fn watch(&self, name: &'static str, probe: Arc<dyn Probe>) -> Arc<Dependency> {
        let dependency = Dependency::new(name);
        let watched = dependency.clone();
        let task: &'static str = match name {
            "database" => "database-watch",
            "redis" => "redis-watch",
            "kafka" => "kafka-watch",
            "cognito" => "cognito-watch",
            "dynamodb" => "dynamodb-watch",
            _ => "dependency-watch",
        };
        self.tasks
            .spawn(task, move |cancel| watch(watched, probe, cancel));
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dependency.clone());
        dependency
    }

    /// Every dependency watched so far.
    pub fn all(&self) -> Vec<Arc<Dependency>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A probe that is a call: `Call(|| async { … })` (an AWS request, say).
pub struct Call<F>(pub F);

#[async_trait]
impl<F, Fut> Probe for Call<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    async fn probe(&self) -> Result<(), String> {
        (self.0)().await
    }
}

/// Probes `dependency` through `probe` until `cancel`: marks it down when a probe fails and up
/// (after its recoveries) when one succeeds.
pub async fn watch(dependency: Arc<Dependency>, probe: Arc<dyn Probe>, cancel: CancellationToken) {
    loop {
        let pause = if dependency.is_up() {
            PROBE_UP
        } else {
            PROBE_DOWN
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        match tokio::time::timeout(PROBE_TIMEOUT, probe.probe()).await {
            Ok(Ok(())) => {
                if !dependency.is_up() {
                    dependency.recover().await;
                }
            }
            Ok(Err(e)) => dependency.failed(&KnownDownBecause(e)),
            Err(_) => dependency.failed(&KnownDownBecause(format!(
                "no answer within {} ms",
                PROBE_TIMEOUT.as_millis()
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("probe failed: {0}")]
struct KnownDownBecause(String);

/// PING on the shared Redis connection.
pub struct RedisProbe(pub redis::aio::ConnectionManager);

#[async_trait]
impl Probe for RedisProbe {
    async fn probe(&self) -> Result<(), String> {
        let mut redis = self.0.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut redis)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// `SELECT 1` on MySQL/MariaDB over a connection of its own: a pool busy with a rush must not
/// look like an outage. The connection is kept between probes and dropped when one fails or is
/// cut off by the watch's timeout.
pub struct DatabaseProbe {
    url: String,
    connection: tokio::sync::Mutex<Option<sqlx::MySqlConnection>>,
}

impl DatabaseProbe {
    /// Probes the database at `url` (`mysql://` or `mariadb://`).
    pub fn new(url: &str) -> Self {
        Self {
            url: url.replacen("mariadb:", "mysql:", 1),
            connection: tokio::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl Probe for DatabaseProbe {
    async fn probe(&self) -> Result<(), String> {
        use sqlx::Connection;
        let mut slot = self.connection.lock().await;
        // Out of the slot while in use: if this future is dropped, so is the connection.
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => sqlx::MySqlConnection::connect(&self.url)
                .await
                .map_err(|e| e.to_string())?,
        };
        sqlx::query("SELECT 1")
            .execute(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        *slot = Some(connection);
        Ok(())
    }
}

/// A metadata request to the Kafka cluster, from a metadata-only client (librdkafka connects
/// lazily and reconnects by itself).
#[cfg(feature = "kafka")]
pub struct KafkaProbe(Arc<rdkafka::consumer::BaseConsumer>);

#[cfg(feature = "kafka")]
impl KafkaProbe {
    /// A probe of the cluster `config` names.
    pub fn new(config: &rdkafka::ClientConfig) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self(Arc::new(config.create()?)))
    }
}

#[cfg(feature = "kafka")]
#[async_trait]
impl Probe for KafkaProbe {
    async fn probe(&self) -> Result<(), String> {
        use rdkafka::consumer::Consumer;
        let consumer = self.0.clone();
        // librdkafka's metadata call blocks its thread; the watch's timeout bounds the wait.
        let brokers = tokio::task::spawn_blocking(move || {
            consumer
                .fetch_metadata(None, PROBE_TIMEOUT)
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if brokers > 0 {
            Ok(())
        } else {
            Err("no brokers in metadata".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    #[tokio::test]
    async fn a_failure_stops_calls_until_a_probe_succeeds() {
        let redis = Dependency::new("redis");
        let calls = AtomicU64::new(0);
        let call = || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), Boom>(Boom)
        };
        let first = redis.call(|_| Boom, |_| true, call()).await;
        assert!(first.is_err());
        assert!(!redis.is_up());
        for _ in 0..100 {
            assert!(redis.call(|_| Boom, |_| true, call()).await.is_err());
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1, "not asked while down");
        assert_eq!(redis.outages(), 1);
        redis.recover().await;
        assert!(redis.is_up());
        let ok = redis
            .call(|_| Boom, |_| true, async { Ok::<_, Boom>(7) })
            .await;
        assert_eq!(ok.unwrap(), 7);
    }

    #[tokio::test]
    async fn watchers_hear_of_changes_not_of_every_failure() {
        let kafka = Dependency::new("kafka");
        let mut health = kafka.health();
        kafka.failed(&Boom);
        kafka.failed(&Boom);
        assert!(health.has_changed().unwrap());
        assert!(!*health.borrow_and_update());
        kafka.failed(&Boom);
        assert!(!health.has_changed().unwrap(), "still down: no news");
        kafka.recover().await;
        assert!(health.has_changed().unwrap());
        assert!(*health.borrow_and_update());
        assert_eq!(kafka.outages(), 1);
    }

    #[tokio::test]
    async fn an_answer_about_the_request_does_not_mark_it_down() {
        let redis = Dependency::new("redis");
        let refused = redis
            .call(|_| Boom, |_| false, async { Err::<(), Boom>(Boom) })
            .await;
        assert!(refused.is_err());
        assert!(redis.is_up());
    }

    struct Failing;

    #[async_trait]
    impl Recovery for Failing {
        async fn recover(&self) -> Result<(), String> {
            Err("still stale".into())
        }
    }

    #[tokio::test]
    async fn it_stays_down_until_its_recoveries_succeed() {
        let redis = Dependency::new("redis");
        redis.failed(&Boom);
        redis.on_recovery(Arc::new(Failing));
        redis.recover().await;
        assert!(!redis.is_up());
    }
}
