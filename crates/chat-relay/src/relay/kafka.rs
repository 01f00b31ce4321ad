//! Kafka (feature `kafka`, rdkafka).
//!
//! - Drafts go to the ingest topic (the seed's `chat-topic`) keyed `chatRoomId{N}`, so one room's
//!   drafts share a partition and keep their order.
//! - [`KafkaRelay::run_sequencer`] consumes the ingest topic in one consumer group (the seed's
//!   storing group), stores and counts each draft, publishes the [`Delivery`] to the delivery
//!   topic under the same key, and commits only after the broker has the deliveries: a crash
//!   repeats work, it never skips a draft.
//! - [`Relay::subscribe`] reads every partition of the delivery topic from its current end, with
//!   no consumer group, so every node sees every delivery.
//!
//! The producer is idempotent, so a retried batch neither duplicates nor reorders a partition.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{Delivery, Relay, Sequencer};
use crate::{ChatError, Draft, Result, RoomId};

/// Topic and group names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Where drafts go (the seed's `chat-topic`).
    pub ingest: String,
    /// Where stored messages go to every node.
    pub delivery: String,
    /// The consumer group that stores drafts.
    pub sequencer_group: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            ingest: "chat-topic".into(),
            delivery: "chat-delivery".into(),
            sequencer_group: "consumer-group-db".into(),
        }
    }
}

impl Topics {
    /// The default names with `prefix` in front (tests, or several deployments on one cluster).
    pub fn prefixed(prefix: &str) -> Self {
        let d = Self::default();
        Self {
            ingest: format!("{prefix}{}", d.ingest),
            delivery: format!("{prefix}{}", d.delivery),
            sequencer_group: format!("{prefix}{}", d.sequencer_group),
        }
    }
}

/// Counts the sequencer consumer's rebalances (rdkafka serves them inside `recv`).
#[derive(Debug, Default)]
struct Rebalances(std::sync::atomic::AtomicU64);

impl Rebalances {
    fn generation(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rdkafka::client::ClientContext for Rebalances {}

impl rdkafka::consumer::ConsumerContext for Rebalances {
    fn pre_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        _: &rdkafka::consumer::Rebalance<'_>,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        _: &rdkafka::consumer::Rebalance<'_>,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Most drafts the sequencer takes in one batch.
const BATCH_MAX: usize = 512;
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// A relay through Kafka.
pub struct KafkaRelay {
    base: ClientConfig,
    topics: Topics,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRelay")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ChatError {
    ChatError::unavailable("kafka", e)
}

/// The record key of a room (the seed's).
pub fn room_key(room: RoomId) -> String {
    format!("chatRoomId{room}")
}

impl KafkaRelay {
    /// A relay with `base` (at least `bootstrap.servers`) and these topics.
    pub fn new(base: ClientConfig, topics: Topics) -> Result<Self> {
        let producer = base
            .clone()
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("compression.type", "none")
            .create()
            .map_err(unavailable)?;
        Ok(Self {
            base,
            topics,
            producer,
        })
    }

    /// The topic names.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Creates both topics with `partitions` partitions unless they exist.
    pub async fn create_topics(&self, partitions: i32, replication: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.base.create().map_err(unavailable)?;
        let topics = [
            NewTopic::new(
                &self.topics.ingest,
                partitions,
                TopicReplication::Fixed(replication),
            ),
            NewTopic::new(
                &self.topics.delivery,
                partitions,
                TopicReplication::Fixed(replication),
            ),
        ];
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin
            .create_topics(&topics, &options)
            .await
            .map_err(unavailable)?
        {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(unavailable(format!("creating {topic}: {code}"))),
            }
        }
        Ok(())
    }

    async fn send(&self, topic: &str, room: RoomId, payload: &[u8]) -> Result<()> {
        let key = room_key(room);
        self.producer
            .send(
                FutureRecord::to(topic).key(&key).payload(payload),
                SEND_TIMEOUT,
            )
            .await
            .map(drop)
            .map_err(|(e, _)| unavailable(e))
    }

    /// Stores drafts from the ingest topic until `shutdown`: run it on every node, the consumer
    /// group shares the partitions out. A storage failure is retried (with backoff) rather than
    /// skipped; an undecodable record is logged and skipped.
    pub async fn run_sequencer(
        self: Arc<Self>,
        sequencer: Sequencer,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let consumer: StreamConsumer<Rebalances> = self
            .base
            .clone()
            .set("group.id", &self.topics.sequencer_group)
            .set("enable.auto.commit", "false")
            // Offsets are stored by hand, only for drafts handled under the current assignment.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(Rebalances::default())
            .map_err(unavailable)?;
        consumer
            .subscribe(&[&self.topics.ingest])
            .map_err(unavailable)?;
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = consumer.recv() => message,
            };
            // Drafts read before a rebalance are still handled, in order: the store keeps each
            // log position once, so one handled again by the partition's new owner is one
            // message. (Dropping them, expecting the fetch to restart at the committed offset,
            // lost them on tansu: a partition kept across a rebalance went on from where it was.)
            let mut generation = consumer.context().generation();
            let mut drafts: Vec<Draft> = Vec::new();
            let mut offsets: HashMap<i32, i64> = HashMap::new();
            let mut firsts: HashMap<i32, i64> = HashMap::new();
            let mut next = Some(first);
            while let Some(received) = next.take() {
                let now = consumer.context().generation();
                if now != generation {
                    tracing::info!(
                        read = drafts.len(),
                        "chat sequencer rebalanced while reading a batch"
                    );
                    generation = now;
                }
                match received {
                    Ok(message) => {
                        offsets.insert(message.partition(), message.offset());
                        firsts
                            .entry(message.partition())
                            .or_insert(message.offset());
                        match message.payload().map(serde_json::from_slice::<Draft>) {
                            Some(Ok(mut draft)) => {
                                // The offset orders a room's drafts (one partition per room) and
                                // lets the store keep each once.
                                draft.seq = Some(message.offset());
                                drafts.push(draft);
                            }
                            _ => tracing::warn!(
                                topic = message.topic(),
                                offset = message.offset(),
                                "skipping a record that is not a chat draft"
                            ),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "chat sequencer receive failed"),
                }
                if drafts.len() < BATCH_MAX {
                    next = consumer.recv().now_or_never();
                }
            }
            if offsets.is_empty() {
                continue;
            }
            if !self.sequence_batch(&sequencer, drafts, &shutdown).await {
                return Ok(());
            }
            for (partition, offset) in &offsets {
                tracing::debug!(
                    partition,
                    first = firsts[partition],
                    last = offset,
                    "chat sequencer batch"
                );
            }
            // Commit exactly what was handled: the offset after each partition's last draft.
            let mut handled = TopicPartitionList::new();
            for (partition, offset) in offsets {
                if let Err(e) = handled.add_partition_offset(
                    &self.topics.ingest,
                    partition,
                    Offset::Offset(offset + 1),
                ) {
                    tracing::warn!(partition, error = %e, "offset not recorded");
                }
            }
            if let Err(e) = consumer.commit(&handled, CommitMode::Sync) {
                tracing::warn!(error = %e, "chat sequencer commit failed; the batch may be repeated");
            }
        }
    }

    /// Stores a batch, rooms in parallel and each room in order, and publishes the deliveries.
    /// Returns `false` if shut down before it was done.
    async fn sequence_batch(
        &self,
        sequencer: &Sequencer,
        drafts: Vec<Draft>,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut rooms: HashMap<RoomId, Vec<Draft>> = HashMap::new();
        for draft in drafts {
            rooms.entry(draft.chat_room_id).or_default().push(draft);
        }
        let work = rooms.into_values().map(|drafts| async move {
            for draft in drafts {
                let mut backoff = Duration::from_millis(50);
                let delivery = loop {
                    match sequencer.sequence(&draft).await {
                        Ok(Some(delivery)) => break Some(delivery),
                        Ok(None) => {
                            tracing::error!(room = draft.chat_room_id, seq = ?draft.seq, "a chat draft was stored before but cannot be found");
                            break None;
                        }
                        Err(e) => {
                            tracing::warn!(room = draft.chat_room_id, error = %e, "storing a chat message failed; retrying");
                            tokio::select! {
                                () = shutdown.cancelled() => return false,
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                let Some(delivery) = delivery else { continue };
                let payload = serde_json::to_vec(&delivery).expect("a delivery serialises");
                while let Err(e) = self
                    .send(&self.topics.delivery, delivery.message.chat_room_id, &payload)
                    .await
                {
                    tracing::warn!(error = %e, "publishing a chat delivery failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
            true
        });
        futures::future::join_all(work)
            .await
            .into_iter()
            .all(|done| done)
    }
}

#[async_trait]
impl Relay for KafkaRelay {
    async fn publish(&self, draft: Draft) -> Result<()> {
        let payload = serde_json::to_vec(&draft).expect("a draft serialises");
        self.send(&self.topics.ingest, draft.chat_room_id, &payload)
            .await
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Delivery>> {
        let consumer: StreamConsumer = self
            .base
            .clone()
            .set("group.id", format!("chat-node-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(unavailable)?;
        let topic = self.topics.delivery.clone();
        // Start exactly at each partition's current end, read now: `Offset::End` would be
        // resolved at the first fetch, and anything published in between would be missed.
        let (consumer, assignment) = tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(10);
            let metadata = consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(unavailable)?;
            let partitions = metadata
                .topics()
                .first()
                .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
                .unwrap_or_default();
            if partitions.is_empty() {
                return Err(unavailable(format!("topic {topic} has no partitions")));
            }
            let mut assignment = TopicPartitionList::new();
            for partition in partitions {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, partition, timeout)
                    .map_err(unavailable)?;
                assignment
                    .add_partition_offset(&topic, partition, Offset::Offset(high))
                    .map_err(unavailable)?;
            }
            Ok((consumer, assignment))
        })
        .await
        .map_err(unavailable)??;
        consumer.assign(&assignment).map_err(unavailable)?;
        let consumer = Arc::new(consumer);
        Ok(futures::stream::unfold(consumer, |consumer| async move {
            loop {
                match consumer.recv().await {
                    Ok(message) => {
                        match message.payload().map(serde_json::from_slice::<Delivery>) {
                            Some(Ok(delivery)) => return Some((delivery, consumer)),
                            _ => tracing::warn!(
                                offset = message.offset(),
                                "skipping a record that is not a chat delivery"
                            ),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "chat delivery receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
        .boxed())
    }
}
