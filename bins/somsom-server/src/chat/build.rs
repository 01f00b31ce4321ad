//! Building the chat engine from configuration: its store, presence, relay and limits.

use std::sync::Arc;
use std::time::Duration;

use chat_relay::presence::redis::RedisPresence;
use chat_relay::relay::Failover;
use chat_relay::store::sql::SqlStore as SqlChatStore;
use chat_relay::websocket::Buffers;
use chat_relay::{
    ChatConfig, ChatServer, MemoryPresence, MemoryRelay, MessageStore, Presence, Relay, Sequencer,
};
use cognito_auth::IdentityProvider;
use tokio_util::sync::CancellationToken;

use super::Chat;
use crate::application::{BuildError, engine_failed};

use crate::config::{ChatStoreKind, Config};
use crate::db::Database;
use crate::tasks::Tasks;

/// The shared services the chat uses when configured.
pub(crate) struct Shared<'a> {
    /// Presence and unread counts.
    pub redis: Option<&'a crate::backends::SharedRedis>,
    /// Kafka's state (the relay between nodes is built from the configuration).
    pub kafka: Option<&'a Arc<crate::outage::Dependency>>,
    /// Where the AWS message store's watch goes.
    pub watches: &'a crate::outage::Watches,
}

/// The chat engine: messages in the configured store, presence in Redis when configured, the
/// relay on Kafka when configured (with this node's share of the storing consumer group).
pub(crate) async fn build(
    config: &Config,
    db: &Database,
    users: &crate::auth::UserRows,
    shared: Shared<'_>,
    auth: Arc<dyn IdentityProvider>,
    shutdown: &CancellationToken,
    tasks: &Tasks,
) -> Result<Chat, BuildError> {
    let Shared {
        redis,
        kafka,
        watches,
    } = shared;
    let settings = &config.chat;
    let failed = |what: &'static str, e: chat_relay::ChatError| engine_failed(what)(e);
    let store: Arc<dyn MessageStore> = match settings.store {
        ChatStoreKind::Sql => {
            let store = SqlChatStore::new(db.chat_pool());
            store.migrate().await.map_err(|e| failed("chat store", e))?;
            Arc::new(store)
        }
        ChatStoreKind::Dynamodb => dynamodb_store(config, watches).await?,
        ChatStoreKind::Memory => Arc::new(chat_relay::MemoryStore::new()),
    };
    let presence: Arc<dyn Presence> = match redis {
        Some(redis) => Arc::new(crate::outage::guarded::GuardedPresence::new(
            Arc::new(RedisPresence::new(
                redis.connection.clone(),
                config.redis_key_prefix.clone(),
            )),
            redis.dependency.clone(),
        )),
        None => Arc::new(MemoryPresence::new()),
    };
    // Membership is the members table, read where a message is counted; presence holds only
    // who is in a room now and the unread counts, which a Redis restart may lose.
    let members = crate::chat::members::TableMembers::new(db.clone());
    let sequencer = Sequencer::new(store.clone(), presence.clone(), Arc::new(members.clone()));
    let relay: Arc<dyn Relay> = match (&config.kafka_brokers, kafka) {
        (Some(brokers), Some(kafka)) => {
            let primary = kafka_relay(config, brokers, sequencer.clone(), tasks).await?;
            // While Kafka is down, messages are stored here and every node reads its rooms
            // from the store (`chat_relay::relay::Failover`).
            Arc::new(Failover::new(primary, sequencer, kafka.health()))
        }
        _ => Arc::new(MemoryRelay::new(sequencer)),
    };
    let mut chat_config = ChatConfig::default();
    // The original service's destinations and JSON names, which its clients use.
    chat_config.destinations = chat_relay::Destinations::new(
        "/publish/chat.send",
        "/topic/chat/chatRoomId",
        "/user/queue/unread",
    );
    chat_config.fields = chat_relay::MessageFields::new(
        "chatRoomId",
        "content",
        "senderId",
        "senderName",
        "sendTime",
        "unReadCount",
    );
    chat_config.limits = chat_relay::stomp::Limits {
        max_frame_bytes: settings.max_frame_bytes,
        ..Default::default()
    };
    chat_config.heartbeat_ms = (settings.heartbeat_send_ms, settings.heartbeat_receive_ms);
    chat_config.outbound_capacity = settings.outbound_capacity;
    chat_config.sends_in_flight = settings.sends_in_flight;
    chat_config.server_name = concat!("somsom/", env!("CARGO_PKG_VERSION")).to_owned();
    chat_config.max_subscriptions = settings.max_subscriptions.max(1);
    chat_config.max_connections_per_user = settings.max_connections_per_user.max(1);
    chat_config.send_rate = (settings.send_rate_per_second > 0.0).then_some(chat_relay::SendRate {
        per_second: settings.send_rate_per_second,
        burst: settings.send_burst.max(1),
    });
    chat_config.max_replay = settings.max_replay.max(1);
    chat_config.write_timeout = Duration::from_secs(settings.write_timeout_secs.max(1));
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
        members,
        buffers: Buffers::default(),
    })
}

/// Messages kept in a DynamoDB table (created when missing), failing fast while DynamoDB is
/// known to be down.
#[cfg(feature = "aws")]
async fn dynamodb_store(
    config: &Config,
    watches: &crate::outage::Watches,
) -> Result<Arc<dyn MessageStore>, BuildError> {
    use chat_relay::store::dynamodb::DynamoStore;
    let settings = &config.chat;
    let failed = |what: &'static str, e: chat_relay::ChatError| engine_failed(what)(e);
    let sdk = crate::backends::aws_config(&config.aws).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoStore::new(client.clone(), &settings.dynamodb_table);
    store
        .create_table()
        .await
        .map_err(|e| failed("chat store", e))?;
    let table = settings.dynamodb_table.clone();
    let probe = crate::outage::Call(move || {
        let request = client.describe_table().table_name(&table);
        async move {
            request
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
        }
    });
    let dependency = watches.watch("dynamodb", Arc::new(probe));
    Ok(Arc::new(crate::outage::guarded::GuardedStore::new(
        Arc::new(store),
        dependency,
    )))
}

#[cfg(not(feature = "aws"))]
async fn dynamodb_store(
    _config: &Config,
    _watches: &crate::outage::Watches,
) -> Result<Arc<dyn MessageStore>, BuildError> {
    Err(crate::config::Invalid::not_built("chat.store = dynamodb", "aws").into())
}

/// The relay between nodes on Kafka, and this node's share of the storing consumer group.
#[cfg(feature = "kafka")]
async fn kafka_relay(
    config: &Config,
    brokers: &str,
    sequencer: Sequencer,
    tasks: &Tasks,
) -> Result<Arc<dyn Relay>, BuildError> {
    use chat_relay::relay::kafka::{KafkaRelay, Topics};
    let settings = &config.chat;
    let failed = |what: &'static str, e: chat_relay::ChatError| engine_failed(what)(e);
    let relay = Arc::new(
        KafkaRelay::new(
            crate::backends::kafka_config(brokers),
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
    Ok(relay)
}

#[cfg(not(feature = "kafka"))]
async fn kafka_relay(
    _config: &Config,
    _brokers: &str,
    _sequencer: Sequencer,
    _tasks: &Tasks,
) -> Result<Arc<dyn Relay>, BuildError> {
    Err(crate::config::Invalid::not_built("kafka_brokers", "kafka").into())
}
