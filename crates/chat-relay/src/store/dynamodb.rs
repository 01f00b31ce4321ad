//! DynamoDB (feature `dynamodb`), in the seed's table layout: table `Message`, partition key
//! `chatRoomId` (N), sort key `sendTime` (N), attributes `content` (S), `senderId` (N) and
//! `senderName` (S).
//!
//! Appends are conditional (`attribute_not_exists(sendTime)`), so a message never replaces
//! another; on a clash the store reads the room's latest `sendTime` and tries a later one. Reads
//! are strongly consistent, so a reconnecting client's replay sees every stored message.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};

use super::{LatestCache, MessageStore, check_limit};
use crate::{ChatError, ChatMessage, Draft, HistoryPage, Result, RoomId};

/// The seed's table name.
pub const DEFAULT_TABLE: &str = "Message";

const ATTEMPTS: usize = 8;

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

fn number(value: i64) -> AttributeValue {
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
        chat_room_id: n("chatRoomId")?,
        send_time: n("sendTime")?,
        sender_id: n("senderId")?,
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

    /// Creates the table (on-demand billing) unless it exists. The seed created it by hand.
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

    async fn query(
        &self,
        room: RoomId,
        condition: &str,
        bound: i64,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<ChatMessage>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(format!("chatRoomId = :room AND {condition}"))
            .expression_attribute_values(":room", number(room))
            .expression_attribute_values(":bound", number(bound))
            .scan_index_forward(forward)
            .consistent_read(true)
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| {
                unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        output.items().iter().map(item_message).collect()
    }
}

#[async_trait]
impl MessageStore for DynamoStore {
    async fn append(&self, draft: &Draft) -> Result<ChatMessage> {
        let room = draft.chat_room_id;
        let mut latest = self.latest.get(room);
        for _ in 0..ATTEMPTS {
            let message = draft.stored_at(draft.send_time_after(latest));
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("chatRoomId", number(room))
                .item("sendTime", number(message.send_time))
                .item("senderId", number(message.sender_id))
                .item("senderName", AttributeValue::S(message.sender_name.clone()))
                .item("content", AttributeValue::S(message.content.clone()))
                .condition_expression("attribute_not_exists(sendTime)")
                .send()
                .await;
            match put {
                Ok(_) => {
                    self.latest.set(room, message.send_time);
                    return Ok(message);
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    latest = self
                        .query(room, "sendTime < :bound", i64::MAX, false, 1)
                        .await?
                        .first()
                        .map(|m| m.send_time);
                }
                Err(e) => {
                    return Err(unavailable(
                        aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                    ));
                }
            }
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
        let messages = self
            .query(
                room,
                "sendTime < :bound",
                before.unwrap_or(i64::MAX),
                false,
                limit,
            )
            .await?;
        Ok(HistoryPage::from_newest_first(messages, limit))
    }

    async fn after(&self, room: RoomId, after: i64, limit: usize) -> Result<Vec<ChatMessage>> {
        check_limit(limit)?;
        self.query(room, "sendTime > :bound", after, true, limit)
            .await
    }
}
