//! The Redis backend against a real Redis (`TEST_REDIS_URL`).
#![cfg(feature = "redis")]

use std::sync::Arc;

use redis::AsyncCommands;
use test_support::{REDIS, require_service, unique_name};
use waiting_queue::conformance::{self, clock, two_engines_agree};
use waiting_queue::redis::RedisQueue;
use waiting_queue::{QueueName, TickRule, WaitingQueue};

async fn connect(url: &str) -> redis::aio::ConnectionManager {
    let client = redis::Client::open(url).expect("redis url");
    // The suite sends 10,000 joins at once down one connection; the last answers can take longer
    // than redis-rs's default 500 ms response timeout on a busy machine. This is a correctness
    // suite, not a latency test.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(60)));
    redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .expect("connect to redis")
}

#[tokio::test]
async fn redis_queue_passes_the_conformance_suite() {
    let url = require_service!(REDIS);
    let conn = connect(&url).await;
    conformance::run_all(&move |clock| {
        let conn = conn.clone();
        Box::pin(async move {
            let prefix = format!("{}:", unique_name("wq"));
            Arc::new(RedisQueue::new(conn, prefix).with_clock(clock)) as Arc<dyn WaitingQueue>
        })
    })
    .await;
}

#[tokio::test]
async fn two_nodes_on_one_redis_agree() {
    let url = require_service!(REDIS);
    let prefix = format!("{}:", unique_name("wq"));
    let clock = clock();
    // Separate connections, as two server processes would have.
    let a =
        RedisQueue::new(connect(&url).await, prefix.clone()).with_clock(Arc::new(clock.clone()));
    let b = RedisQueue::new(connect(&url).await, prefix).with_clock(Arc::new(clock.clone()));
    two_engines_agree(Arc::new(a), Arc::new(b), &clock).await;
}

#[tokio::test]
async fn keys_are_the_seeds_sorted_sets() {
    let url = require_service!(REDIS);
    let prefix = format!("{}:", unique_name("wq"));
    let engine = RedisQueue::new(connect(&url).await, prefix.clone());
    let mut raw = connect(&url).await;
    let queue = QueueName::new("festival15").unwrap();
    engine.join(&queue, "user10@example.com").await.unwrap();
    engine.join(&queue, "user11@example.com").await.unwrap();
    let wait = format!("{prefix}users:queue:festival15:wait");
    assert_eq!(engine.wait_key(&queue), wait);
    let members: Vec<String> = raw.zrange(&wait, 0, -1).await.unwrap();
    assert_eq!(members, ["user10@example.com", "user11@example.com"]);
    engine.admit(&queue, 1).await.unwrap();
    let admitted: Vec<String> = raw
        .zrange(format!("{prefix}users:queue:festival15:proceed"), 0, -1)
        .await
        .unwrap();
    assert_eq!(admitted, ["user10@example.com"]);
    // A queue that empties out leaves the driver's index.
    engine.admit(&queue, 1).await.unwrap();
    engine.finish(&queue, "user10@example.com").await.unwrap();
    engine.finish(&queue, "user11@example.com").await.unwrap();
    engine.tick(&queue, TickRule::Due).await.unwrap();
    assert!(engine.queues().await.unwrap().is_empty());
}
