//! `[chat]`: festival chat.

use serde::{Deserialize, Serialize};

/// Festival chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// Where messages are kept: `sql` (the server's database), `dynamodb` (the seed's table) or
    /// `memory` (lost at restart).
    pub store: ChatStoreKind,
    /// The DynamoDB table for `store = "dynamodb"` (created if missing).
    pub dynamodb_table: String,
    /// Prefix of the Kafka topic and group names (`chat-topic`, `chat-delivery`,
    /// `consumer-group-db`).
    pub kafka_topic_prefix: String,
    /// Partitions of new chat topics (the seed's 3).
    pub kafka_partitions: i32,
    /// Replication factor of new chat topics.
    pub kafka_replication: i32,
    /// Whether this node takes part in storing messages from Kafka (the storing consumer
    /// group). At least one node must; nodes may join and leave the group at any time (see
    /// docs/ARCHITECTURE.md on rebalances).
    pub run_sequencer: bool,
    /// Pushes a connection may have waiting before it is closed as too slow.
    pub outbound_capacity: usize,
    /// SENDs a connection may have being stored and relayed at once (a room's stay in order).
    pub sends_in_flight: usize,
    /// Heart-beats the server offers: send every / expect every, milliseconds (0 turns off).
    pub heartbeat_send_ms: u64,
    /// See `heartbeat_send_ms`.
    pub heartbeat_receive_ms: u64,
    /// Largest STOMP frame a client may send, bytes.
    pub max_frame_bytes: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Chat connections one user may have open on one node.
    pub max_connections_per_user: usize,
    /// Messages one connection may send per second, sustained (0: no limit); a flood is closed
    /// with an ERROR frame.
    pub send_rate_per_second: f64,
    /// Messages one connection may send at once before the rate applies.
    pub send_burst: u32,
    /// Most messages a `resume-after` replay sends (the newest; older ones come from history).
    pub max_replay: usize,
    /// Seconds one write to a client may take before the connection is closed as not reading.
    pub write_timeout_secs: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            store: ChatStoreKind::Sql,
            dynamodb_table: "Message".to_owned(),
            kafka_topic_prefix: String::new(),
            kafka_partitions: 3,
            kafka_replication: 1,
            run_sequencer: true,
            outbound_capacity: 1024,
            sends_in_flight: 64,
            heartbeat_send_ms: 10_000,
            heartbeat_receive_ms: 10_000,
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 64,
            max_connections_per_user: 16,
            send_rate_per_second: 5.0,
            send_burst: 20,
            max_replay: 500,
            write_timeout_secs: 10,
        }
    }
}

/// Where chat messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatStoreKind {
    /// The server's SQL database.
    Sql,
    /// DynamoDB, in the seed's `Message` table layout.
    Dynamodb,
    /// Memory (lost at restart).
    Memory,
}
