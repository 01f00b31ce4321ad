//! Every real backend through its conformance suite: SQL on SQLite and MariaDB
//! (`TEST_MYSQL_URL`), DynamoDB on moto (`AWS_ENDPOINT_URL`), presence on Redis
//! (`TEST_REDIS_URL`), and the Kafka relay on a Kafka-protocol broker (`TEST_KAFKA_BROKERS`)
//! with two nodes, each with its own clients, storing into one database.
#![cfg(all(
    feature = "sql",
    feature = "dynamodb",
    feature = "redis",
    feature = "kafka"
))]

use std::str::FromStr;
use std::sync::Arc;

use chat_relay::conformance;
use chat_relay::presence::redis::RedisPresence;
use chat_relay::relay::kafka::{KafkaRelay, Topics};
use chat_relay::store::dynamodb::DynamoStore;
use chat_relay::store::sql::{SqlPool, SqlStore};
use chat_relay::{MemoryMembers, MemoryPresence, MessageStore, Relay, RoomId, Sequencer, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use test_support::mysql::TestDatabase;
use test_support::{AWS, KAFKA, MYSQL, REDIS, require_service, unique_name};
use tokio_util::sync::CancellationToken;

async fn sqlite(dir: &tempfile::TempDir) -> SqlPool {
    let path = dir.path().join(format!("{}.db", unique_name("chat")));
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(30));
    SqlPool::Sqlite(
        SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap(),
    )
}

async fn mysql(db: &TestDatabase) -> SqlPool {
    SqlPool::MySql(sqlx::MySqlPool::connect(db.url()).await.unwrap())
}

async fn migrated(pool: SqlPool) -> SqlStore {
    let store = SqlStore::new(pool);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap(); // idempotent
    store
}

#[tokio::test]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite(&dir).await;
    let store = migrated(pool.clone()).await;
    // A second node: same database, its own cache of latest sendTimes.
    let peer = SqlStore::new(pool);
    conformance::store::run_all_with_peer(&store, &peer).await;
}

#[tokio::test]
async fn mysql_store_passes_the_conformance_suite() {
    let url = require_service!(MYSQL);
    let db = TestDatabase::create(&url).await.unwrap();
    let store = migrated(mysql(&db).await).await;
    let peer = SqlStore::new(mysql(&db).await);
    conformance::store::run_all_with_peer(&store, &peer).await;
    db.drop_database().await.unwrap();
}

async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

#[tokio::test]
async fn dynamodb_store_passes_the_conformance_suite() {
    require_service!(AWS);
    let table = unique_name("Message");
    let store = DynamoStore::new(dynamodb_client().await, &table);
    store.create_table().await.unwrap();
    store.create_table().await.unwrap(); // idempotent
    let peer = DynamoStore::new(dynamodb_client().await, &table);
    // One append at a time: moto does not isolate concurrent transactions (see the suite's docs);
    // real DynamoDB transactions are isolated.
    conformance::store::run_one_at_a_time_with_peer(&store, &peer).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_seed_layout() {
    require_service!(AWS);
    let table = unique_name("Message");
    let client = dynamodb_client().await;
    let store = DynamoStore::new(client.clone(), &table);
    store.create_table().await.unwrap();
    let message = store
        .append(&conformance::draft(RoomId(3), 5, "안녕", 1_736_000_000_000))
        .await
        .unwrap()
        .message()
        .unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "chatRoomId",
            aws_sdk_dynamodb::types::AttributeValue::N("3".into()),
        )
        .key(
            "sendTime",
            aws_sdk_dynamodb::types::AttributeValue::N(message.send_time.to_string()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the item under the seed's key");
    assert_eq!(item["content"].as_s().unwrap(), "안녕");
    assert_eq!(item["senderId"].as_n().unwrap(), "5");
    assert_eq!(item["senderName"].as_s().unwrap(), "user 5");
}

async fn redis_connection(url: &str) -> redis::aio::ConnectionManager {
    redis::aio::ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_presence_passes_the_conformance_suite() {
    let url = require_service!(REDIS);
    let presence = RedisPresence::new(
        redis_connection(&url).await,
        format!("{}:", unique_name("chat")),
    );
    conformance::presence::run_all(&presence).await;
}

#[tokio::test]
async fn redis_presence_is_shared_between_nodes() {
    let url = require_service!(REDIS);
    let prefix = format!("{}:", unique_name("chat"));
    let a = RedisPresence::new(redis_connection(&url).await, prefix.clone());
    let b = RedisPresence::new(redis_connection(&url).await, prefix);
    use chat_relay::Presence;
    let members = [UserId(10)];
    b.enter(RoomId(1), UserId(10)).await.unwrap();
    assert!(
        a.is_present(RoomId(1), UserId(10)).await.unwrap(),
        "entered on node B, seen on node A"
    );
    assert!(
        a.count_message(RoomId(1), &members)
            .await
            .unwrap()
            .is_empty()
    );
    b.exit(RoomId(1), UserId(10)).await.unwrap();
    assert_eq!(
        a.count_message(RoomId(1), &members).await.unwrap(),
        [(UserId(10), 1)]
    );
}

fn kafka_config(brokers: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_relay_passes_the_conformance_suite_across_two_nodes() {
    let brokers = require_service!(KAFKA);
    let url = require_service!(MYSQL);
    let db = TestDatabase::create(&url).await.unwrap();
    let topics = Topics::prefixed(&format!("{}-", unique_name("chat")));
    let shutdown = CancellationToken::new();
    let mut nodes: Vec<Arc<dyn Relay>> = Vec::new();
    let mut workers = Vec::new();
    for node in 0..2 {
        // Each node has its own producer, consumers and database pool, as two servers would.
        let store: Arc<dyn MessageStore> = Arc::new(migrated(mysql(&db).await).await);
        let sequencer = Sequencer::new(
            store,
            Arc::new(MemoryPresence::new()),
            Arc::new(MemoryMembers::new()),
        );
        let relay = Arc::new(KafkaRelay::new(kafka_config(&brokers), topics.clone()).unwrap());
        if node == 0 {
            relay.create_topics(3, 1).await.unwrap();
        }
        workers.push(tokio::spawn(
            relay.clone().run_sequencer(sequencer, shutdown.clone()),
        ));
        nodes.push(relay);
    }
    conformance::relay::run_all(&nodes).await;
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    db.drop_database().await.unwrap();
}
