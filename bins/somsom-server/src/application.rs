//! Building the server from configuration and running it until a graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use cognito_auth::cognito::{CognitoConfig, CognitoIdentity};
use cognito_auth::local::{LocalConfig, LocalIdentity, SqlStore};
use cognito_auth::sender::{CodeSender, LogSender, SmtpSender};
use cognito_auth::{Clock, IdentityProvider, SystemClock};

use crate::app::{AppState, app_with};
use crate::auth::{AdminEmails, AttemptLimits};
use crate::backends::{self, BackendError};
use crate::chat::Chat;
use crate::config::{AuthBackend, ChatStoreKind, PushSchedulerKind, QueueDriver};
use crate::config::{Config, Invalid};
use crate::connections::{ConnectionLimits, GuardedListener, Peer};
use crate::db::{Database, DbError};
use crate::festivals::Festivals;
use crate::metrics::Metrics;
use crate::queues::Queues;
use crate::readiness::{DatabaseCheck, KafkaCheck, Readiness, ReadinessCheck, RedisCheck};
use crate::tasks::Tasks;
use chat_relay::presence::redis::RedisPresence;
use chat_relay::relay::kafka::{KafkaRelay, Topics};
use chat_relay::store::dynamodb::DynamoStore;
use chat_relay::store::sql::SqlStore as SqlChatStore;
use chat_relay::websocket::Buffers;
use chat_relay::{
    ChatConfig, ChatServer, MemoryPresence, MemoryRelay, MessageStore, Presence, Relay, Sequencer,
};
use festival_catalog::sql::SqlCatalog;
use search_cache::redis::RedisCache;
use search_cache::{CacheAside, CacheStore, MemoryCache};
use ticket_lock::sql::SqlTickets;
use waiting_queue::driver::IntervalDriver;
use waiting_queue::redis::RedisQueue;
use waiting_queue::sqs::SqsDriver;
use waiting_queue::{AdmissionTokens, MemoryQueue, WaitingQueue};

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration cannot work (found by [`Config::validate`] before anything connects).
    #[error("invalid configuration: {0}")]
    Config(#[from] Invalid),
    /// A key or secret the configuration names could not be read or used.
    #[error("{name}: {reason}")]
    Secret {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An engine could not start: migrating its tables or loading its state failed.
    #[error("{engine} could not start")]
    Engine {
        /// Which.
        engine: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A configured backend could not be reached.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    /// The error and every cause under it, one line: what an operator reads when the server
    /// does not start.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
}

/// `BuildError::Engine` for `engine`, from whatever its backend said.
fn engine_failed<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    engine: &'static str,
) -> impl FnOnce(E) -> BuildError {
    move |e| BuildError::Engine {
        engine,
        source: e.into(),
    }
}

/// `BuildError::Secret` for the setting `name`.
fn secret_error(name: &'static str) -> impl FnOnce(String) -> BuildError {
    move |reason| BuildError::Secret { name, reason }
}

/// A built server, bound to its address and ready to run.
pub struct Application {
    listener: TcpListener,
    /// `/metrics` on an address of its own, when configured.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    extra: Router<AppState>,
    tasks: Tasks,
    grace: Duration,
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
    let db = Database::connect(&config.database_url).await?;
    db.migrate().await?;

    let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(DatabaseCheck(db.clone()))];
    let redis = match &config.redis_url {
        Some(url) => Some(backends::redis(url).await?),
        None => None,
    };
    if let Some(redis) = &redis {
        checks.push(Arc::new(RedisCheck(redis.clone())));
    }
    if let Some(brokers) = &config.kafka_brokers {
        let check = KafkaCheck::new(&backends::kafka_config(brokers)).map_err(|source| {
            BackendError::Kafka {
                brokers: brokers.clone(),
                source,
            }
        })?;
        checks.push(Arc::new(check));
    }

    let sender: Arc<dyn CodeSender> = match (overrides.code_sender, &config.smtp_url) {
        (Some(sender), _) => sender,
        (None, Some(url)) => Arc::new(
            SmtpSender::new(url, &config.smtp_from)
                .map_err(|e| Invalid::one(format!("smtp_url: {e}")))?,
        ),
        (None, None) => Arc::new(LogSender),
    };
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let auth = identity_provider(&config, &db, sender, clock.clone()).await?;
    let mut metrics = Metrics::new();
    let festivals = festivals(&config, &db, redis.as_ref(), clock.clone(), &mut metrics).await?;
    let tickets = SqlTickets::with_clock(
        db.ticket_pool(),
        config.tickets.strategy,
        clock.clone(),
        ticket_lock::kst(),
    );
    tickets.migrate().await.map_err(engine_failed("tickets"))?;
    let admins = AdminEmails::new(&config.admin_emails);
    admins
        .apply(auth.as_ref(), &db)
        .await
        .map_err(engine_failed("admin roles"))?;

    let tasks = Tasks::new();
    let queues = queues(&config, &db, redis.as_ref(), clock.clone(), &tasks).await?;
    let shutdown = CancellationToken::new();
    let users = crate::auth::UserRows::new(db.clone());
    let mut chat = chat(
        &config,
        &db,
        &users,
        redis.as_ref(),
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

    let tickets: Arc<dyn ticket_lock::TicketEngine> = Arc::new(tickets);
    let push = push(
        &config,
        &db,
        tickets.clone(),
        festivals.catalog.clone(),
        clock.clone(),
        overrides.push_sender,
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
    let desk = crate::workflows::BookingDesk {
        catalog: festivals.catalog.clone(),
        tickets: tickets.clone(),
        queues: queues.clone(),
        planning: push.planning.clone(),
        clock: clock.clone(),
    };
    let state = AppState {
        desk,
        users: users.clone(),
        db,
        readiness: Readiness::new(checks),
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
        session_poll: Duration::from_secs(config.auth.session_cache_secs.max(1)),
    })
}

/// The catalog over the server's database, and the search cache (Redis when configured).
async fn festivals(
    config: &Config,
    db: &Database,
    redis: Option<&redis::aio::ConnectionManager>,
    clock: Arc<dyn Clock>,
    metrics: &mut Metrics,
) -> Result<Festivals, BuildError> {
    let catalog = SqlCatalog::with_clock(db.catalog_pool(), clock.clone());
    catalog
        .migrate()
        .await
        .map_err(engine_failed("festival catalog"))?;
    let store: Arc<dyn CacheStore> = match redis {
        Some(redis) => Arc::new(RedisCache::new(
            redis.clone(),
            format!("{}cache:", config.redis_key_prefix),
        )),
        None => Arc::new(MemoryCache::with_clock(64 * 1024 * 1024, clock.clone())),
    };
    // A TTL of 0 turns the cache off (to measure the database alone).
    let search_cache = (config.search_cache_ttl_secs > 0).then(|| {
        let cache =
            CacheAside::new(store).with_ttl(Duration::from_secs(config.search_cache_ttl_secs));
        metrics.register_cache("festival_search", cache.stats());
        cache
    });
    Ok(Festivals {
        catalog: Arc::new(catalog),
        search_cache,
        clock,
    })
}

/// The waiting rooms (in Redis when configured), their token key, and the admission driver the
/// configuration names, started on `tasks`.
async fn queues(
    config: &Config,
    db: &Database,
    redis: Option<&redis::aio::ConnectionManager>,
    clock: Arc<dyn Clock>,
    tasks: &Tasks,
) -> Result<Queues, BuildError> {
    let settings = &config.queue;
    let policy = settings.policy();
    policy
        .validate()
        .map_err(|e| Invalid::one(format!("queue: {e}")))?;
    let engine: Arc<dyn WaitingQueue> = match redis {
        Some(redis) => Arc::new(
            RedisQueue::new(redis.clone(), config.redis_key_prefix.clone())
                .with_clock(clock.clone())
                .with_default_policy(policy),
        ),
        None => Arc::new(MemoryQueue::new(clock.clone()).with_default_policy(policy)),
    };
    let configured = crate::config::secret(
        "queue.token_secret",
        &settings.token_secret,
        &settings.token_secret_file,
    )
    .map_err(secret_error("queue.token_secret"))?;
    let secret = match configured {
        Some(secret) => secret,
        None => {
            // Made by the first node to start, read back by every other one.
            let fresh: String = {
                use rand::Rng;
                let bytes: [u8; 32] = rand::thread_rng().r#gen();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            };
            db.shared_secret("queue_token_key", &fresh)
                .await
                .map_err(engine_failed("queue token key"))?
        }
    };
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
        QueueDriver::Sqs => {
            let sdk = backends::aws_config(&config.aws).await;
            let client = aws_sdk_sqs::Client::new(&sdk);
            let url = client
                .create_queue()
                .queue_name(&settings.sqs_queue)
                .send()
                .await
                .map_err(engine_failed("queue driver (sqs)"))?
                .queue_url
                .ok_or_else(|| engine_failed("queue driver (sqs)")("sqs returned no queue url"))?;
            let driver = SqsDriver::new(engine.clone(), client, url);
            tasks.spawn("queue-admission-sqs", move |cancel| async move {
                driver.run(cancel.cancelled_owned(), log_tick).await;
            });
        }
    }
    Ok(Queues::new(
        engine,
        tokens,
        policy,
        Duration::from_millis(settings.watch_poll_ms.max(10)),
        clock,
    ))
}

/// The chat engine: messages in the configured store, presence in Redis when configured, the
/// relay on Kafka when configured (with this node's share of the storing consumer group).
async fn chat(
    config: &Config,
    db: &Database,
    users: &crate::auth::UserRows,
    redis: Option<&redis::aio::ConnectionManager>,
    auth: Arc<dyn IdentityProvider>,
    shutdown: &CancellationToken,
    tasks: &Tasks,
) -> Result<Chat, BuildError> {
    let settings = &config.chat;
    let failed = |what: &'static str, e: chat_relay::ChatError| engine_failed(what)(e);
    let store: Arc<dyn MessageStore> = match settings.store {
        ChatStoreKind::Sql => {
            let store = SqlChatStore::new(db.chat_pool());
            store.migrate().await.map_err(|e| failed("chat store", e))?;
            Arc::new(store)
        }
        ChatStoreKind::Dynamodb => {
            let sdk = backends::aws_config(&config.aws).await;
            let store = DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &settings.dynamodb_table,
            );
            store
                .create_table()
                .await
                .map_err(|e| failed("chat store", e))?;
            Arc::new(store)
        }
        ChatStoreKind::Memory => Arc::new(chat_relay::MemoryStore::new()),
    };
    let presence: Arc<dyn Presence> = match redis {
        Some(redis) => Arc::new(RedisPresence::new(
            redis.clone(),
            config.redis_key_prefix.clone(),
        )),
        None => Arc::new(MemoryPresence::new()),
    };
    // Presence mirrors the members table; after a restart (or a Redis that keeps nothing on
    // disk) it is filled again from there.
    for (room, user) in crate::chat::members::all(db)
        .await
        .map_err(engine_failed("chat members"))?
    {
        presence
            .join(room, user)
            .await
            .map_err(|e| failed("chat presence", e))?;
    }
    let sequencer = Sequencer::new(store.clone(), presence.clone());
    let relay: Arc<dyn Relay> = match &config.kafka_brokers {
        Some(brokers) => {
            let relay = Arc::new(
                KafkaRelay::new(
                    backends::kafka_config(brokers),
                    Topics::prefixed(&settings.kafka_topic_prefix),
                )
                .map_err(|e| failed("chat relay (kafka)", e))?,
            );
            relay
                .create_topics(settings.kafka_partitions, settings.kafka_replication)
                .await
                .map_err(|e| failed("chat topics (kafka)", e))?;
            if settings.run_sequencer {
                let worker = relay.clone();
                tasks.spawn("chat-sequencer", move |cancel| async move {
                    if let Err(e) = worker.run_sequencer(sequencer, cancel).await {
                        tracing::error!(error = %crate::error::Report(&e), "chat sequencer stopped");
                    }
                });
            }
            relay
        }
        None => Arc::new(MemoryRelay::new(sequencer)),
    };
    let chat_config = ChatConfig {
        limits: chat_relay::stomp::Limits {
            max_frame_bytes: settings.max_frame_bytes,
            ..Default::default()
        },
        heartbeat_ms: (settings.heartbeat_send_ms, settings.heartbeat_receive_ms),
        outbound_capacity: settings.outbound_capacity,
        sends_in_flight: settings.sends_in_flight,
        server_name: concat!("somsom/", env!("CARGO_PKG_VERSION")).to_owned(),
        max_subscriptions: settings.max_subscriptions.max(1),
        max_connections_per_user: settings.max_connections_per_user.max(1),
        send_rate: (settings.send_rate_per_second > 0.0).then_some(chat_relay::SendRate {
            per_second: settings.send_rate_per_second,
            burst: settings.send_burst.max(1),
        }),
        max_replay: settings.max_replay.max(1),
        write_timeout: Duration::from_secs(settings.write_timeout_secs.max(1)),
        ..ChatConfig::default()
    };
    let server = ChatServer::new(
        chat_config,
        relay,
        store,
        presence,
        Arc::new(crate::chat::Gate::new(db.clone(), users.clone(), auth)),
    )
    .with_shutdown(shutdown.clone());
    Ok(Chat {
        server,
        buffers: Buffers::default(),
    })
}

/// Reminders: devices, the ledger and (with `scheduler = "sql"`) the plan in the server's
/// database, or the plan on EventBridge Scheduler feeding an SQS queue; the planner task that
/// follows reservations, a reconciliation at start, and this node's dispatcher.
async fn push(
    config: &Config,
    db: &Database,
    tickets: Arc<dyn ticket_lock::TicketEngine>,
    catalog: Arc<dyn festival_catalog::Catalog>,
    clock: Arc<dyn Clock>,
    sender: Option<Arc<dyn push_notify::Sender>>,
    tasks: &Tasks,
) -> Result<crate::push::Push, BuildError> {
    use push_notify::send::Route;
    use push_notify::send::fcm::{FcmSender, ServiceAccount};
    use push_notify::send::webpush::{VapidKey, WebPushSender};
    use push_notify::{DispatcherConfig, DueSource, Scheduler};

    let settings = &config.push;
    let failed = |what: &'static str, e: push_notify::PushError| engine_failed(what)(e);
    let store = Arc::new(
        push_notify::sql::SqlPush::with_clock(db.push_pool(), clock.clone())
            .with_max_devices(settings.max_devices_per_user),
    );
    store.migrate().await.map_err(|e| failed("push store", e))?;
    let planner = push_notify::Planner::parse(&settings.remind_at, &settings.time_zone)
        .map_err(|e| failed("push settings", e))?
        .with_text(settings.reminder_text.clone());
    let configured = crate::config::secret(
        "push.vapid_private_key",
        &settings.vapid_private_key,
        &settings.vapid_private_key_file,
    )
    .map_err(secret_error("push.vapid_private_key"))?;
    let vapid = match configured {
        Some(key) => VapidKey::from_base64(&key).map_err(|e| failed("push vapid key", e))?,
        None => {
            // Made by the first node to start, read back by every other one: browsers'
            // subscriptions are bound to it.
            let fresh = VapidKey::generate().private_base64();
            let kept = db
                .shared_secret("vapid_private_key", &fresh)
                .await
                .map_err(engine_failed("push vapid key"))?;
            VapidKey::from_base64(&kept).map_err(|e| failed("push vapid key", e))?
        }
    };
    let sender: Arc<dyn push_notify::Sender> = match sender {
        Some(sender) => sender,
        None => {
            let web_push = WebPushSender::with_policy(
                vapid.clone(),
                &settings.vapid_subject,
                crate::push::endpoint_policy(settings),
            )
            .map_err(|e| failed("push web push sender", e))?
            .with_clock(clock.clone());
            let mut route = Route::new().web_push(Arc::new(web_push));
            if let Some(file) = &settings.fcm_service_account_file {
                let json = std::fs::read_to_string(file).map_err(|e| BuildError::Secret {
                    name: "push.fcm_service_account_file",
                    reason: format!("{file}: {e}"),
                })?;
                let account =
                    ServiceAccount::from_json(&json).map_err(|e| failed("push fcm key", e))?;
                let fcm = FcmSender::new(account, &settings.fcm_endpoint)
                    .map_err(|e| failed("push fcm sender", e))?
                    .with_clock(clock.clone());
                route = route.fcm(Arc::new(fcm));
            }
            Arc::new(route)
        }
    };
    let (scheduler, source): (Arc<dyn Scheduler>, Arc<dyn DueSource>) = match settings.scheduler {
        PushSchedulerKind::Sql => (store.clone(), store.clone()),
        PushSchedulerKind::Eventbridge => {
            use push_notify::aws::{EventBridgeScheduler, SqsSource, Topology};
            let sdk = backends::aws_config(&config.aws).await;
            let sns = aws_sdk_sns::Client::new(&sdk);
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let topology = Topology::ensure(&sns, &sqs, &settings.sns_topic, &settings.sqs_queue)
                .await
                .map_err(|e| failed("push scheduler (sns/sqs)", e))?;
            let scheduler = EventBridgeScheduler::new(
                aws_sdk_scheduler::Client::new(&sdk),
                sns,
                &settings.schedule_group,
                &topology.topic_arn,
                &settings.scheduler_role_arn,
            )
            .with_clock(clock.clone());
            scheduler
                .ensure_group()
                .await
                .map_err(|e| failed("push scheduler (eventbridge)", e))?;
            (
                Arc::new(scheduler),
                Arc::new(SqsSource::new(sqs, topology.queue_url)),
            )
        }
    };
    let dispatcher = push_notify::Dispatcher::new(source, store.clone(), store.clone(), sender)
        .with_clock(clock.clone())
        .with_recheck(Arc::new(crate::push::HeldCheck(tickets.clone())))
        .with_config(DispatcherConfig {
            batch: match (settings.batch, db) {
                (0, Database::Sqlite(_)) => 1024,
                (0, Database::MySql(_)) => 256,
                (n, _) => n,
            },
            concurrency: settings.concurrency.max(1),
            lease: Duration::from_secs(settings.lease_secs.max(1)),
            send_timeout: Duration::from_secs(settings.send_timeout_secs.max(1)),
            poll: Duration::from_millis(settings.poll_ms.max(10)),
            max_attempts: settings.max_attempts.max(1),
            ..DispatcherConfig::default()
        });
    let context = crate::push::PlanContext {
        scheduler,
        tickets,
        catalog,
        planner,
        dispatcher: Some(dispatcher.clone()),
        clock,
    };
    let reconciling = context.clone();
    tasks.spawn("push-reconcile", move |cancel| async move {
        tokio::select! {
            result = crate::push::reconcile(&reconciling) => match result {
                Ok(0) => {}
                Ok(added) => tracing::info!(added, "planned reminders missing from the plan"),
                Err(e) => tracing::error!(error = %e, "reminder reconciliation failed"),
            },
            () = cancel.cancelled() => {}
        }
    });
    let (planning, planner_task) = context.clone().start();
    tasks.spawn("push-planner", planner_task);
    if settings.run_dispatcher {
        tasks.spawn("push-dispatcher", move |cancel| async move {
            dispatcher.run(cancel).await;
        });
    }
    Ok(crate::push::Push {
        registry: store.clone(),
        ledger: store,
        planning,
        context,
        vapid_public_key: vapid.public_base64(),
        endpoint_policy: crate::push::endpoint_policy(settings),
    })
}

fn log_tick(queue: &waiting_queue::QueueName, tick: &waiting_queue::Tick) {
    if !tick.admitted.is_empty() || tick.expired > 0 || tick.dropped > 0 {
        tracing::debug!(%queue, tick = tick.tick, admitted = tick.admitted.len(), expired = tick.expired,
            dropped = tick.dropped, waiting = tick.waiting, "queue tick");
    }
}

/// The local identity provider over the server's database (also for operator commands).
pub async fn local_identity(
    config: &Config,
    db: &Database,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
) -> Result<LocalIdentity, BuildError> {
    let store = match db {
        Database::Sqlite(pool) => SqlStore::Sqlite(pool.clone()),
        Database::MySql(pool) => SqlStore::MySql(pool.clone()),
    };
    store
        .migrate()
        .await
        .map_err(engine_failed("identity store"))?;
    let kdf_concurrency = match config.auth.password_hashes_at_once {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    let local = LocalConfig::new(config.auth.issuer.clone())
        .with_session_cache(chrono::Duration::seconds(
            i64::try_from(config.auth.session_cache_secs).unwrap_or(i64::MAX),
        ))
        .with_kdf_limits(kdf_concurrency, config.auth.password_hashes_waiting);
    let key = crate::config::secret(
        "auth.signing_key",
        &config.auth.signing_key,
        &config.auth.signing_key_file,
    )
    .map_err(secret_error("auth.signing_key"))?;
    match key {
        // From the operator: never written to the database.
        Some(pem) => {
            let key = cognito_auth::jwt::SigningKey::from_operator_pem(&pem).map_err(|e| {
                BuildError::Secret {
                    name: "auth.signing_key",
                    reason: e.to_string(),
                }
            })?;
            Ok(LocalIdentity::with_key(
                Arc::new(store),
                sender,
                clock,
                local,
                key,
            ))
        }
        None => LocalIdentity::new(Arc::new(store), sender, clock, local)
            .await
            .map_err(engine_failed("identity provider")),
    }
}

/// The identity provider the configuration names, over the server's database.
async fn identity_provider(
    config: &Config,
    db: &Database,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn IdentityProvider>, BuildError> {
    match config.auth.backend {
        AuthBackend::Local => Ok(Arc::new(local_identity(config, db, sender, clock).await?)),
        AuthBackend::Cognito => {
            let settings = &config.auth.cognito;
            let sdk = backends::aws_config(&config.aws).await;
            let region = sdk.region().map(ToString::to_string).ok_or_else(|| {
                Invalid::one("auth.backend = cognito needs an AWS region (AWS_REGION)")
            })?;
            let jwks_url = settings.jwks_url.clone().or_else(|| {
                config.aws.endpoint_url.as_ref().map(|endpoint| {
                    format!(
                        "{}/{}/.well-known/jwks.json",
                        endpoint.trim_end_matches('/'),
                        settings.user_pool_id
                    )
                })
            });
            let cognito = CognitoConfig {
                region,
                user_pool_id: settings.user_pool_id.clone(),
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                jwks_url,
            };
            let client = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
            let provider = CognitoIdentity::new(client, cognito, clock)
                .await
                .map_err(engine_failed("identity provider (cognito)"))?;
            Ok(Arc::new(provider))
        }
    }
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

    /// Adds routes of the embedding program; they get the same middleware and `/api` twin.
    pub fn with_routes(mut self, routes: Router<AppState>) -> Self {
        self.extra = self.extra.merge(routes);
        self
    }

    /// Serves until `signal` completes, then shuts down gracefully: stop accepting, let in-flight
    /// requests finish (up to the grace period), stop background tasks, close the database.
    pub async fn run_until<F>(self, signal: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Application {
            listener,
            metrics_listener,
            state,
            extra,
            tasks,
            grace,
            session_poll,
        } = self;
        // Workers start with serving, never for a one-off command: delivery to this node's
        // chat sockets (subscribed before the first connection is accepted), then the rest.
        let pump = state
            .chat
            .server
            .start()
            .await
            .map_err(std::io::Error::other)?;
        tasks.spawn("chat-delivery", move |cancel| async move {
            tokio::select! {
                () = pump => {}
                () = cancel.cancelled() => {}
            }
        });
        tasks.start();
        let router = app_with(state.clone(), extra);
        let shutdown = state.shutdown.clone();
        let (began_tx, began_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            signal.await;
            tracing::info!("shutdown: no new connections; draining in-flight requests");
            shutdown.cancel();
            let _ = began_tx.send(());
        };
        // Sign-outs on any node reach this one's token checks and chat sockets within a poll.
        let (auth, users, chat) = (
            state.auth.clone(),
            state.users.clone(),
            state.chat.server.clone(),
        );
        tasks.spawn("session-follower", move |cancel| {
            crate::auth::sessions::follow(auth, users, chat, session_poll, cancel)
        });
        let (db, chat) = (state.db.clone(), state.chat.server.clone());
        tasks.spawn("chat-leave-follower", move |cancel| {
            crate::chat::follow_leaves(db, chat, session_poll, cancel)
        });
        // Sold out closes a festival's waiting room; tickets coming back reopen it.
        let (tickets, queues) = (state.tickets.clone(), state.queues.clone());
        tasks.spawn("sold-out-watcher", move |cancel| {
            crate::queues::sold_out::watch(tickets, queues, Duration::from_secs(1), cancel)
        });
        let limits = ConnectionLimits {
            max_connections: state.http.max_connections,
            header_read: Duration::from_secs(state.http.header_read_timeout_secs.max(1)),
            keep_alive_idle: Duration::from_secs(state.http.keep_alive_idle_secs.max(1)),
        };
        let listener = GuardedListener::new(listener, limits);
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<Peer>(),
        )
        .with_graceful_shutdown(signal);
        if let Some(metrics_listener) = metrics_listener {
            let metrics = Router::new()
                .route("/metrics", axum::routing::get(crate::metrics::metrics))
                .with_state(state.metrics.clone());
            tasks.spawn("metrics-listener", move |cancel| async move {
                let served = axum::serve(metrics_listener, metrics)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %crate::error::Report(&e), "metrics listener failed");
                }
            });
        }
        let deadline = async move {
            match began_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            result = server => result?,
            () = deadline => tracing::warn!(?grace, "shutdown: requests still running after the grace period; closing them"),
        }
        if !tasks.shutdown(grace).await {
            tracing::warn!(
                ?grace,
                "shutdown: background tasks still running after the grace period"
            );
        }
        state.queues.shutdown().await;
        state.db.close().await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %crate::error::Report(&e), "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %crate::error::Report(&e), "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
