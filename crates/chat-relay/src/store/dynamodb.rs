//! DynamoDB (feature `dynamodb`), in this table layout: table `Message`, partition key
//! `chatRoomId` (N), sort key `sendTime` (N), attributes `content` (S), `senderId` (N) and
//! `senderName` (S).
//!
//! Each room also has a head item (sort key `-1`, never returned) holding its latest `sendTime`
//! and `seq`. An append is one transaction: put the message if its key is free, and move the
//! head forward only if both are later than before. So a message never replaces another,
//! `sendTime`s increase in the order messages are stored, and a `seq` is stored once; on a clash
//! the store reads the head and tries again (or reports the duplicate). Reads are strongly
//! consistent, so a reconnecting client's replay sees every stored message. The price is two
//! write units per message instead of one.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem, Update,
};

use super::{LatestCache, MessageStore, check_limit};
use crate::{Appended, ChatError, ChatMessage, Draft, HistoryPage, Result, RoomId, UserId};

/// The default table name.
pub const DEFAULT_TABLE: &str = "Message";

const ATTEMPTS: usize = 16;

/// The head item's sort key.
const HEAD: i64 = -1;

/// Messages in a DynamoDB table.
#[derive(Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    latest: LatestCache,
}

fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ChatError {
    ChatError::unavailable("dynamodb", e)
}

fn number(value: impl Into<i64>) -> AttributeValue {
    let value: i64 = value.into();
    AttributeValue::N(value.to_string())
}

fn item_message(item: &HashMap<String, AttributeValue>) -> Result<ChatMessage> {
    let n = |name: &str| -> Result<i64> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| unavailable(format!("item without numeric {name}")))
    };
    let s = |name: &str| -> Result<String> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| unavailable(format!("item without string {name}")))
    };
    Ok(ChatMessage {
        chat_room_id: RoomId(n("chatRoomId")?),
        send_time: n("sendTime")?,
        sender_id: UserId(n("senderId")?),
        sender_name: s("senderName")?,
        content: s("content")?,
    })
}

impl DynamoStore {
    /// A store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            latest: LatestCache::default(),
        }
    }

    /// Creates the table (on-demand billing) unless it exists.
    pub async fn create_table(&self) -> Result<()> {
        let exists = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok();
        if exists {
            return Ok(());
        }
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(unavailable)
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::N)
                .build()
                .map_err(unavailable)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("chatRoomId", KeyType::Hash)?)
            .key_schema(key("sendTime", KeyType::Range)?)
            .attribute_definitions(attribute("chatRoomId")?)
            .attribute_definitions(attribute("sendTime")?)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another node created it first.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(
                aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }

    /// Messages with `from <= sendTime <= to`, newest first unless `forward`.
    async fn query(
        &self,
        room: RoomId,
        from: i64,
        to: i64,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<ChatMessage>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("chatRoomId = :room AND sendTime BETWEEN :from AND :to")
            .expression_attribute_values(":room", number(room))
            .expression_attribute_values(":from", number(from.max(HEAD + 1)))
            .expression_attribute_values(":to", number(to))
            .scan_index_forward(forward)
            .consistent_read(true)
            .limit(limit as i32)
            .send()
            .await
            .map_err(failure)?;
        output.items().iter().map(item_message).collect()
    }

    /// The room's head: latest `sendTime` and `seq`.
    async fn head(&self, room: RoomId) -> Result<(Option<i64>, Option<i64>)> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("chatRoomId", number(room))
            .key("sendTime", number(HEAD))
            .consistent_read(true)
            .send()
            .await
            .map_err(failure)?
            .item;
        let field = |name: &str| {
            item.as_ref()
                .and_then(|item| item.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
        };
        Ok((field("lastSendTime"), field("lastSeq")))
    }

    /// The message stored with `seq`, searched newest first (duplicates are recent).
    async fn by_seq(&self, room: RoomId, seq: i64) -> Result<Option<ChatMessage>> {
        let mut start = None;
        for _ in 0..50 {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("chatRoomId = :room AND sendTime > :head")
                .filter_expression("seq = :seq")
                .expression_attribute_values(":room", number(room))
                .expression_attribute_values(":head", number(HEAD))
                .expression_attribute_values(":seq", number(seq))
                .scan_index_forward(false)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(failure)?;
            if let Some(item) = output.items().first() {
                return item_message(item).map(Some);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(None)
    }

    async fn try_append(&self, message: &ChatMessage, seq: Option<i64>) -> Result<bool> {
        let room = message.chat_room_id;
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("chatRoomId", number(room))
            .item("sendTime", number(message.send_time))
            .item("senderId", number(message.sender_id))
            .item("senderName", AttributeValue::S(message.sender_name.clone()))
            .item("content", AttributeValue::S(message.content.clone()))
            .condition_expression("attribute_not_exists(sendTime)");
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("chatRoomId", number(room))
            .key("sendTime", number(HEAD))
            .expression_attribute_values(":t", number(message.send_time));
        match seq {
            Some(seq) => {
                put = put.item("seq", number(seq));
                update = update
                    .update_expression("SET lastSendTime = :t, lastSeq = :s")
                    .condition_expression(
                        "(attribute_not_exists(lastSendTime) OR lastSendTime < :t) \
                         AND (attribute_not_exists(lastSeq) OR lastSeq < :s)",
                    )
                    .expression_attribute_values(":s", number(seq));
            }
            None => {
                update = update
                    .update_expression("SET lastSendTime = :t")
                    .condition_expression(
                        "attribute_not_exists(lastSendTime) OR lastSendTime < :t",
                    );
            }
        }
        let written = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put.build().map_err(unavailable)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(update.build().map_err(unavailable)?)
                    .build(),
            )
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure(e)),
        }
    }
}

fn failure<E: std::error::Error + Send + Sync + 'static>(
    e: aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> ChatError {
    unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

#[async_trait]
impl MessageStore for DynamoStore {
    async fn append(&self, draft: &Draft) -> Result<Appended> {
        let room = draft.chat_room_id;
        let mut latest = self.latest.get(room);
        for _ in 0..ATTEMPTS {
            let message = draft.stored_at(draft.send_time_after(latest));
            if self.try_append(&message, draft.seq).await? {
                self.latest.set(room, message.send_time);
                return Ok(Appended::Stored(message));
            }
            let (last_time, last_seq) = self.head(room).await?;
            if let (Some(seq), Some(last_seq)) = (draft.seq, last_seq)
                && last_seq >= seq
            {
                return Ok(Appended::Duplicate(self.by_seq(room, seq).await?));
            }
            self.latest.forget(room);
            latest = last_time;
        }
        Err(unavailable(format!(
            "room {room}: no free sendTime after {ATTEMPTS} attempts"
        )))
    }

    async fn history(
        &self,
        room: RoomId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<HistoryPage> {
        check_limit(limit)?;
        let to = before.map_or(i64::MAX, |before| before.saturating_sub(1));
        let messages = self.query(room, HEAD + 1, to, false, limit).await?;
        Ok(HistoryPage::from_newest_first(messages, limit))
    }

    async fn after(&self, room: RoomId, after: i64, limit: usize) -> Result<Vec<ChatMessage>> {
        check_limit(limit)?;
        self.query(room, after.saturating_add(1), i64::MAX, true, limit)
            .await
    }
}
