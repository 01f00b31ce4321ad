//! Kafka (feature `kafka`, rdkafka).
//!
//! - Drafts go to the ingest topic (`chat-topic` by default) keyed `chatRoomId{N}`, so one room's
//!   drafts share a partition and keep their order.
//! - [`KafkaRelay::run_sequencer`] consumes the ingest topic in one consumer group (the
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
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{Delivery, Relay, Sequencer};
use crate::{ChatError, Draft, Result, RoomId};

/// Topic and group names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Where drafts go (`chat-topic` by default).
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
/// Committed-offset lookups and seeks.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// An ingest record as the sequencer needs it.
struct Record {
    partition: i32,
    offset: i64,
    /// `None` for a record that is not a draft (skipped, but its offset still counts).
    draft: Option<Draft>,
}

/// `None` for a receive error (logged).
type Received = Option<Record>;

fn received(message: KafkaResult<BorrowedMessage<'_>>) -> Received {
    match message {
        Ok(message) => {
            let draft = match message.payload().map(serde_json::from_slice::<Draft>) {
                Some(Ok(mut draft)) => {
                    // The offset orders a room's drafts (one partition per room) and lets the
                    // store keep each once.
                    draft.seq = Some(message.offset());
                    Some(draft)
                }
                _ => {
                    tracing::warn!(
                        topic = message.topic(),
                        offset = message.offset(),
                        "skipping a record that is not a chat draft"
                    );
                    None
                }
            };
            Some(Record {
                partition: message.partition(),
                offset: message.offset(),
                draft,
            })
        }
        Err(e) => {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "chat sequencer receive failed"
            );
            None
        }
    }
}

/// What to do with a record, given where its partition is.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The partition's next record: handle it.
    Take,
    /// Handled before (here or by another node): skip it.
    Repeat,
    /// Records before it were not seen: skip it, and fetch again from `seek`.
    Gap { seek: i64 },
}

/// A partition's next offset under the current assignment, and how far before it the last
/// seek went (none since the last record taken or repeated).
#[derive(Debug, Clone, Copy)]
struct Position {
    next: i64,
    margin: Option<i64>,
}

/// Each partition's [`Position`].
///
/// A fetch should start exactly at the offset asked for. tansu (0.6) answers a fetch from the
/// middle of a record batch with the *next* batch, so a new owner starting at a committed
/// offset inside a batch would skip the rest of it. A seek back to `next` has the same problem,
/// so while records keep arriving past `next`, each seek goes further back (the records before
/// `next` are then skipped as repeats). Records fetched before a seek are discarded by
/// librdkafka, so the first record after one tells whether it went far enough.
#[derive(Debug, Default)]
struct Progress {
    partitions: HashMap<i32, Position>,
}

/// How far before `next` the second seek goes; each later one goes eight times as far.
const SEEK_MARGIN: i64 = 256;

impl Progress {
    fn knows(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// The partition starts at `next` (its committed offset).
    fn start(&mut self, partition: i32, next: i64) {
        self.partitions
            .insert(partition, Position { next, margin: None });
    }

    /// After a rebalance: other nodes may have moved any partition on.
    fn forget(&mut self) {
        self.partitions.clear();
    }

    fn check(&mut self, partition: i32, offset: i64) -> Verdict {
        let Some(position) = self.partitions.get_mut(&partition) else {
            return Verdict::Gap { seek: offset };
        };
        if offset < position.next {
            position.margin = None;
            return Verdict::Repeat;
        }
        if offset == position.next {
            *position = Position {
                next: offset + 1,
                margin: None,
            };
            return Verdict::Take;
        }
        let margin = match position.margin {
            None => 0,
            Some(0) => SEEK_MARGIN,
            Some(margin) => margin.saturating_mul(8),
        };
        position.margin = Some(margin);
        Verdict::Gap {
            seek: position.next.saturating_sub(margin).max(0),
        }
    }
}

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

/// The record key of a room.
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
    ///
    /// Each partition's drafts are taken strictly in offset order from the group's committed
    /// offset on: the first record of a partition after a rebalance is checked against that
    /// offset, and one further on (a fetch that did not start where the previous owner stopped,
    /// seen on tansu) makes the consumer seek back to it instead of skipping the drafts between.
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
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(Rebalances::default())
            .map_err(unavailable)?;
        consumer
            .subscribe(&[&self.topics.ingest])
            .map_err(unavailable)?;
        let consumer = Arc::new(consumer);
        let mut progress = Progress::default();
        let mut generation = consumer.context().generation();
        let mut carried: Option<Received> = None;
        loop {
            let first = match carried.take() {
                Some(first) => first,
                None => tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    message = consumer.recv() => received(message),
                },
            };
            let mut drafts: Vec<Draft> = Vec::new();
            // The offset to commit per partition: the one after its last draft taken.
            let mut handled: HashMap<i32, i64> = HashMap::new();
            let mut rebalanced = false;
            let mut next = Some(first);
            while let Some(item) = next.take() {
                if consumer.context().generation() != generation {
                    generation = consumer.context().generation();
                    tracing::info!(read = drafts.len(), "chat sequencer rebalanced");
                    if !handled.is_empty() {
                        // Finish and commit what was taken under the old assignment first; this
                        // record is checked against the commits that follow.
                        carried = Some(item);
                        rebalanced = true;
                        break;
                    }
                    progress.forget();
                }
                if let Some(record) = item {
                    if !progress.knows(record.partition) {
                        let Some(start) =
                            self.committed(&consumer, record.partition, &shutdown).await
                        else {
                            return Ok(());
                        };
                        progress.start(record.partition, start);
                    }
                    match progress.check(record.partition, record.offset) {
                        Verdict::Take => {
                            handled.insert(record.partition, record.offset + 1);
                            drafts.extend(record.draft);
                        }
                        Verdict::Repeat => {}
                        Verdict::Gap { seek: to } => {
                            tracing::warn!(
                                partition = record.partition,
                                got = record.offset,
                                seek = to,
                                "chat sequencer fetch skipped drafts; seeking back"
                            );
                            self.seek(&consumer, record.partition, to).await;
                        }
                    }
                }
                if drafts.len() < BATCH_MAX {
                    next = consumer.recv().now_or_never().map(received);
                }
            }
            if !drafts.is_empty() && !self.sequence_batch(&sequencer, drafts, &shutdown).await {
                return Ok(());
            }
            if !handled.is_empty() {
                self.commit(&consumer, &handled);
            }
            if rebalanced {
                progress.forget();
            }
        }
    }

    /// The group's committed offset of an ingest partition (its low watermark if none), asked
    /// until it answers or `shutdown`.
    async fn committed(
        &self,
        consumer: &Arc<StreamConsumer<Rebalances>>,
        partition: i32,
        shutdown: &CancellationToken,
    ) -> Option<i64> {
        loop {
            let consumer = consumer.clone();
            let topic = self.topics.ingest.clone();
            let lookup = tokio::task::spawn_blocking(move || -> KafkaResult<i64> {
                let mut asked = TopicPartitionList::new();
                asked.add_partition(&topic, partition);
                let committed = consumer.committed_offsets(asked, LOOKUP_TIMEOUT)?;
                match committed
                    .find_partition(&topic, partition)
                    .map(|entry| entry.offset())
                {
                    Some(Offset::Offset(offset)) => Ok(offset),
                    _ => Ok(consumer
                        .fetch_watermarks(&topic, partition, LOOKUP_TIMEOUT)?
                        .0),
                }
            });
            match lookup.await {
                Ok(Ok(offset)) => return Some(offset),
                Ok(Err(e)) => {
                    tracing::warn!(
                        partition,
                        error = &e as &dyn std::error::Error,
                        "committed offset not read; retrying"
                    );
                }
                Err(e) => tracing::warn!(
                    partition,
                    error = &e as &dyn std::error::Error,
                    "committed offset lookup failed"
                ),
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Moves the consumer's fetch position of an ingest partition back to `offset`.
    async fn seek(&self, consumer: &Arc<StreamConsumer<Rebalances>>, partition: i32, offset: i64) {
        let consumer = consumer.clone();
        let topic = self.topics.ingest.clone();
        let sought = tokio::task::spawn_blocking(move || {
            consumer.seek(&topic, partition, Offset::Offset(offset), LOOKUP_TIMEOUT)
        })
        .await;
        // A failed seek is tried again at the partition's next record (see `Progress`).
        match sought {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                partition,
                error = &e as &dyn std::error::Error,
                "chat sequencer seek failed"
            ),
            Err(e) => tracing::warn!(
                partition,
                error = &e as &dyn std::error::Error,
                "chat sequencer seek failed"
            ),
        }
    }

    /// Commits exactly what was handled: the offset after each partition's last draft.
    fn commit(&self, consumer: &StreamConsumer<Rebalances>, handled: &HashMap<i32, i64>) {
        let mut offsets = TopicPartitionList::new();
        for (&partition, &next) in handled {
            tracing::debug!(partition, next, "chat sequencer handled");
            if let Err(e) =
                offsets.add_partition_offset(&self.topics.ingest, partition, Offset::Offset(next))
            {
                tracing::warn!(
                    partition,
                    error = &e as &dyn std::error::Error,
                    "offset not recorded"
                );
            }
        }
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "chat sequencer commit failed; the batch may be repeated"
            );
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
                            tracing::error!(room = draft.chat_room_id.0, seq = ?draft.seq, "a chat draft was stored before but cannot be found");
                            break None;
                        }
                        Err(e) => {
                            tracing::warn!(room = draft.chat_room_id.0, error = &e as &dyn std::error::Error, "storing a chat message failed; retrying");
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
                    tracing::warn!(error = &e as &dyn std::error::Error, "publishing a chat delivery failed; retrying");
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
                        tracing::warn!(
                            error = &e as &dyn std::error::Error,
                            "chat delivery receive failed"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
        .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_takes_records_in_order_and_seeks_back_over_a_gap() {
        let mut p = Progress::default();
        assert!(!p.knows(1));
        p.start(1, 872);
        assert_eq!(p.check(1, 871), Verdict::Repeat, "committed before");
        assert_eq!(p.check(1, 872), Verdict::Take);
        // The fetch jumped: seek back to the next one; if it jumps again, further each time,
        // never before the partition's start.
        assert_eq!(p.check(1, 884), Verdict::Gap { seek: 873 });
        assert_eq!(
            p.check(1, 884),
            Verdict::Gap {
                seek: 873 - SEEK_MARGIN
            }
        );
        assert_eq!(p.check(1, 884), Verdict::Gap { seek: 0 });
        assert_eq!(p.check(1, 500), Verdict::Repeat);
        assert_eq!(p.check(1, 873), Verdict::Take);
        assert_eq!(p.check(1, 874), Verdict::Take);
        // A later gap starts with an exact seek again.
        assert_eq!(p.check(1, 900), Verdict::Gap { seek: 875 });
        // Partitions are separate; a rebalance forgets them all.
        p.start(2, 0);
        assert_eq!(p.check(2, 0), Verdict::Take);
        p.forget();
        assert!(!p.knows(1) && !p.knows(2));
    }
}
