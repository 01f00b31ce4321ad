//! The SQS admission driver against moto (`AWS_ENDPOINT_URL`) with two nodes on one Redis.
#![cfg(all(feature = "sqs", feature = "redis"))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use test_support::{AWS, REDIS, require_service, unique_name};
use waiting_queue::redis::RedisQueue;
use waiting_queue::sqs::SqsDriver;
use waiting_queue::{Policy, QueueName, WaitingQueue};

async fn sqs() -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("ap-northeast-2"))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

async fn redis(url: &str) -> redis::aio::ConnectionManager {
    redis::aio::ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn each_tick_admits_exactly_once_across_two_nodes_despite_duplicate_messages() {
    let _ = require_service!(AWS);
    let redis_url = require_service!(REDIS);
    let client = sqs().await;
    let queue_url = client
        .create_queue()
        .queue_name(unique_name("ticks"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let prefix = format!("{}:", unique_name("wq"));
    let node_a: Arc<dyn WaitingQueue> =
        Arc::new(RedisQueue::new(redis(&redis_url).await, prefix.clone()));
    let node_b: Arc<dyn WaitingQueue> = Arc::new(RedisQueue::new(redis(&redis_url).await, prefix));
    let queue = QueueName::new("festival1").unwrap();
    // An interval of zero: no SQS delay, so the test runs as fast as the messages go round.
    let policy = Policy::default()
        .with_batch_size(5)
        .with_interval(Duration::ZERO);
    node_a.configure(&queue, Some(policy)).await.unwrap();
    for i in 0..50 {
        node_a.join(&queue, &format!("u{i:02}")).await.unwrap();
    }
    let a = SqsDriver::new(node_a.clone(), client.clone(), &queue_url);
    let b = SqsDriver::new(node_b.clone(), client.clone(), &queue_url);
    // Both nodes start a chain for the same queue, and SQS delivers one message twice.
    assert_eq!(a.kick().await.unwrap(), 1);
    assert_eq!(b.kick().await.unwrap(), 1);
    client
        .send_message()
        .queue_url(&queue_url)
        .message_body(r#"{"queue":"festival1","tick":1}"#)
        .send()
        .await
        .unwrap();
    client
        .send_message()
        .queue_url(&queue_url)
        .message_body("not a tick")
        .send()
        .await
        .unwrap();

    let mut ticks: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ticks.values().map(Vec::len).sum::<usize>() < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "admission stalled: {ticks:?}"
        );
        let (x, y) = tokio::join!(a.poll_once(), b.poll_once());
        for (_, tick) in x.unwrap().into_iter().chain(y.unwrap()) {
            assert!(
                ticks.insert(tick.tick, tick.admitted).is_none(),
                "tick {} applied twice",
                tick.tick
            );
        }
    }
    assert_eq!(
        ticks.keys().copied().collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(ticks.values().all(|batch| batch.len() == 5));
    let order: Vec<String> = ticks.into_values().flatten().collect();
    assert_eq!(
        order,
        (0..50).map(|i| format!("u{i:02}")).collect::<Vec<_>>()
    );
    let stats = node_b.stats(&queue).await.unwrap();
    assert_eq!((stats.waiting, stats.admitted, stats.tick), (0, 50, 10));

    // With nobody waiting the chain ends: nothing is left to receive.
    let (x, y) = tokio::join!(a.poll_once(), b.poll_once());
    assert!(x.unwrap().is_empty() && y.unwrap().is_empty());
    client
        .delete_queue()
        .queue_url(&queue_url)
        .send()
        .await
        .unwrap();
}
