//! The composition root: [`build`] connects what the configuration names, in order, using
//! each feature's own builder (`festivals::build`, `queues::build`, `chat::build`,
//! `push::build`, `auth::build`), and hands the result to [`Application::run_until`] (in
//! `run`). Nothing else in the server constructs an engine.

mod error;
mod run;

pub use error::BuildError;
pub(crate) use error::{engine_failed, secret_error};
pub use run::shutdown_signal;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use cognito_auth::sender::{CodeSender, LogSender, SmtpSender};
use cognito_auth::{Clock, SystemClock};
use ticket_lock::sql::SqlTickets;

use crate::app::AppState;
use crate::auth::{AdminEmails, AttemptLimits};
use crate::backends;
use crate::config::{Config, Invalid};
use crate::db::Database;
use crate::metrics::Metrics;
use crate::outage::Watches;
use crate::readiness::{DatabaseCheck, DependencyCheck, Readiness, ReadinessCheck};
use crate::tasks::Tasks;

/// A built server, bound to its address and ready to run.
pub struct Application {
    listener: TcpListener,
    /// `/metrics` on an address of its own, when configured.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    extra: Router<AppState>,
    tasks: Tasks,
    grace: Duration,
    /// How long the node keeps serving, unready, after the shutdown signal.
    drain: Duration,
    /// How often revoked sessions are polled.
    session_poll: Duration,
}

/// Pieces an embedding program or a test supplies instead of the configured ones.
#[derive(Default)]
pub struct Overrides {
    /// Delivers confirmation codes (default: the log).
    pub code_sender: Option<Arc<dyn CodeSender>>,
    /// The clock of the engines (default: the system clock); tests move a manual one.
    pub clock: Option<Arc<dyn Clock>>,
    /// Sends push notifications (default: FCM and Web Push as configured, else the log).
    pub push_sender: Option<Arc<dyn push_notify::Sender>>,
}

/// Kafka's state, when brokers are configured: kept by a background probe (`kafka-watch`).
#[cfg(feature = "kafka")]
fn kafka_watch(
    config: &Config,
    watches: &Watches,
) -> Result<Option<Arc<crate::outage::Dependency>>, BuildError> {
    let Some(brokers) = &config.kafka_brokers else {
        return Ok(None);
    };
    let probe =
        crate::outage::KafkaProbe::new(&backends::kafka_config(brokers)).map_err(|source| {
            backends::BackendError::Kafka {
                brokers: brokers.clone(),
                source,
            }
        })?;
    Ok(Some(watches.watch("kafka", Arc::new(probe))))
}

/// Without the `kafka` feature a configured broker list is refused by validation.
#[cfg(not(feature = "kafka"))]
fn kafka_watch(
    _config: &Config,
    _watches: &Watches,
) -> Result<Option<Arc<crate::outage::Dependency>>, BuildError> {
    Ok(None)
}

/// Connects every configured backend, applies migrations and binds the listen address.
pub async fn build(config: Config) -> Result<Application, BuildError> {
    build_with(config, Overrides::default()).await
}

/// [`build`] with some pieces supplied by the caller.
pub async fn build_with(config: Config, overrides: Overrides) -> Result<Application, BuildError> {
    // Building holds every backend's setup at once: on the heap, not in the caller's future.
    Box::pin(build_inner(config, overrides)).await
}

async fn build_inner(config: Config, overrides: Overrides) -> Result<Application, BuildError> {
    config.validate()?;
    let proxies = crate::client_ip::TrustedProxies::parse(&config.http.trusted_proxies)
        .map_err(|e| Invalid::one(format!("http.trusted_proxies: {e}")))?;
    let db = Database::connect_with(
        &config.database_url,
        Duration::from_secs(config.database_acquire_timeout_secs.max(1)),
    )
    .await?;
    db.migrate().await?;

    let tasks = Tasks::new();
    // Every shared service gets a watch; readiness and metrics list them all at the end.
    let watches = Watches::new(&tasks);
    // A database server can go away; it gets the outage watch and gate (a SQLite file cannot).
    let database = matches!(db, Database::MySql(_)).then(|| {
        let probe = crate::outage::DatabaseProbe::new(&config.database_url);
        watches.watch(crate::outage::gate::DATABASE, Arc::new(probe))
    });
    let mut checks: Vec<Arc<dyn ReadinessCheck>> = match &database {
        Some(_) => Vec::new(),
        None => vec![Arc::new(DatabaseCheck(db.clone()))],
    };
    let redis = match &config.redis_url {
        Some(url) => {
            let connection = backends::redis(url).await?;
            let probe = crate::outage::RedisProbe(connection.clone());
            Some(backends::SharedRedis {
                connection,
                dependency: watches.watch("redis", Arc::new(probe)),
            })
        }
        None => None,
    };
    let kafka = kafka_watch(&config, &watches)?;

    let sender: Arc<dyn CodeSender> = match (overrides.code_sender, &config.smtp_url) {
        (Some(sender), _) => sender,
        (None, Some(url)) => Arc::new(
            SmtpSender::new(url, &config.smtp_from)
                .map_err(|e| Invalid::one(format!("smtp_url: {e}")))?,
        ),
        (None, None) => Arc::new(LogSender),
    };
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let auth = crate::auth::build::identity_provider(&config, &db, sender, clock.clone(), &watches)
        .await?;
    let mut metrics = Metrics::new();
    let festivals =
        crate::festivals::build::build(&config, &db, redis.as_ref(), clock.clone(), &mut metrics)
            .await?;
    let tickets = SqlTickets::new(db.ticket_pool(), config.tickets.strategy)
        .with_clock(clock.clone())
        .with_day_offset(ticket_lock::kst());
    tickets.migrate().await.map_err(engine_failed("tickets"))?;
    let admins = AdminEmails::new(&config.admin_emails);
    admins
        .apply(auth.as_ref(), &db)
        .await
        .map_err(engine_failed("admin roles"))?;

    let queues =
        crate::queues::build::build(&config, &db, redis.as_ref(), clock.clone(), &tasks).await?;
    let shutdown = CancellationToken::new();
    let users = crate::auth::UserRows::new(db.clone());
    let mut chat = crate::chat::build::build(
        &config,
        &db,
        &users,
        crate::chat::build::Shared {
            redis: redis.as_ref(),
            kafka: kafka.as_ref(),
            watches: &watches,
        },
        auth.clone(),
        &shutdown,
        &tasks,
    )
    .await?;
    // Waiting-room ranks over the chat's STOMP connection, beside the SSE stream.
    chat.server = chat
        .server
        .with_feeds(Arc::new(crate::queues::events::RankFeeds::new(
            queues.clone(),
            db.clone(),
            shutdown.clone(),
        )));
    metrics.register_chat(chat.server.clone());
    for dependency in watches.all() {
        checks.push(Arc::new(DependencyCheck(dependency.clone())));
        metrics.register_dependency(dependency);
    }

    let tickets: Arc<dyn ticket_lock::TicketEngine> = Arc::new(tickets);
    let push = crate::push::build::build(
        &config,
        &db,
        crate::push::build::Inputs {
            tickets: tickets.clone(),
            catalog: festivals.catalog.clone(),
            clock: clock.clone(),
            sender: overrides.push_sender,
            activity: metrics.activity(),
        },
        &tasks,
    )
    .await?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| BuildError::Bind {
            addr: config.listen,
            source,
        })?;
    let metrics_listener = match config.http.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| BuildError::Bind { addr, source })?,
        ),
        None => None,
    };
    let codes = ticket_codes(&config, &db).await?;
    // Confirmations go out through the SMTP server sign-up codes use; without one, none are kept.
    let mail = match &config.smtp_url {
        Some(url) => {
            let postman = crate::mail::SmtpPostman::new(url, &config.smtp_from)
                .map_err(|e| Invalid::one(format!("smtp_url: {e}")))?;
            let (mailer, mail, writer) = crate::mail::Mailer::new(
                db.clone(),
                tickets.clone(),
                festivals.catalog.clone(),
                codes.clone(),
                Arc::new(postman),
                clock.clone(),
            );
            tasks.spawn("mail-outbox", writer);
            tasks.spawn("mail-sender", move |cancel| mailer.run(cancel));
            mail
        }
        None => crate::mail::Outbox::disabled(),
    };
    let desk = crate::workflows::BookingDesk {
        catalog: festivals.catalog.clone(),
        tickets: tickets.clone(),
        queues: queues.clone(),
        planning: push.planning.clone(),
        clock: clock.clone(),
        activity: metrics.activity(),
        mail,
    };
    let gate = crate::workflows::Gate {
        tickets: tickets.clone(),
        codes,
        db: db.clone(),
        clock: clock.clone(),
    };
    let state = AppState {
        desk,
        gate,
        users: users.clone(),
        db,
        readiness: Readiness::new(checks),
        database,
        metrics: Arc::new(metrics),
        http: Arc::new(config.http.clone()),
        shutdown,
        auth,
        limits: Arc::new(AttemptLimits::new(&config.auth, clock.clone())),
        proxies,
        admins,
        festivals,
        tickets,
        ticket_defaults: config.tickets.clone(),
        queues,
        chat,
        push,
    };
    Ok(Application {
        listener,
        metrics_listener,
        state,
        extra: Router::new(),
        tasks,
        grace: Duration::from_secs(config.shutdown_grace_secs),
        drain: Duration::from_secs(config.drain_secs),
        session_poll: Duration::from_secs(config.auth.session_cache_secs.max(1)),
    })
}

impl Application {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// The address `/metrics` is served on when `http.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The state handed to handlers.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The owner of background tasks; they are cancelled and awaited at shutdown.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The whole router with its middleware, as served (without the connection guard): drive it
    /// with `tower::ServiceExt::oneshot` to test without a socket. Background workers do not run
    /// unless [`Application::run_until`] does.
    pub fn router(&self) -> Router {
        crate::app::app_with(self.state.clone(), self.extra.clone())
    }

    /// Adds routes of the embedding program; they get the same middleware and `/api` twin.
    pub fn with_routes(mut self, routes: Router<AppState>) -> Self {
        self.extra = self.extra.merge(routes);
        self
    }
}

/// The e-ticket key: configured (inline or as a file), or made by the first node to start and
/// kept in `server_secrets`, so every node (and every restart) issues and reads the same codes.
async fn ticket_codes(
    config: &Config,
    db: &Database,
) -> Result<crate::tickets::codes::TicketCodes, BuildError> {
    let configured = crate::config::secret(
        "tickets.code_secret",
        &config.tickets.code_secret,
        &config.tickets.code_secret_file,
    )
    .map_err(secret_error("tickets.code_secret"))?;
    let secret = db
        .configured_or_shared(configured, "ticket_code_key")
        .await
        .map_err(engine_failed("ticket code key"))?;
    crate::tickets::codes::TicketCodes::new(secret.as_bytes()).ok_or_else(|| BuildError::Secret {
        name: "tickets.code_secret",
        reason: format!("at least {} bytes", crate::tickets::codes::SECRET_MIN),
    })
}
