//! Due reminders from an SQS queue that the schedules' SNS topic feeds.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

use super::aws_error;
use crate::{Claimed, DueSource, Finish, Reminder, Result};

/// SQS hands out at most ten messages per receive.
const RECEIVE_MAX: usize = 10;
/// The longest visibility timeout SQS accepts (12 h).
const VISIBILITY_MAX: u64 = 12 * 3600;

/// Reminders from an SQS queue; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
}

impl SqsSource {
    /// Drains `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            wait: Duration::from_secs(1),
        }
    }

    /// How long a claim waits for the first message when the queue is empty (long polling, at
    /// most 20 s; default 1 s).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    /// Reads a body: a reminder (raw delivery) or an SNS envelope around one.
    fn reminder(body: &str) -> Option<Reminder> {
        if let Ok(r) = serde_json::from_str::<Reminder>(body) {
            return Some(r);
        }
        let envelope: serde_json::Value = serde_json::from_str(body).ok()?;
        serde_json::from_str(envelope.get("Message")?.as_str()?).ok()
    }

    async fn delete(&self, receipts: &[&str]) -> Result<()> {
        for chunk in receipts.chunks(RECEIVE_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(n, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(*receipt)
                        .build()
                        .map_err(|e| aws_error("sqs", e))
                })
                .collect::<Result<Vec<_>>>()?;
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("sqs", e))?;
        }
        Ok(())
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX)
}

#[async_trait]
impl DueSource for SqsSource {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
        let visibility = secs(lease.min(Duration::from_secs(VISIBILITY_MAX))).max(1);
        let mut claimed = Vec::new();
        let mut poison = Vec::new();
        while claimed.len() < max {
            let wait = if claimed.is_empty() {
                secs(self.wait)
            } else {
                0
            };
            let got = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(
                    i32::try_from((max - claimed.len()).min(RECEIVE_MAX)).unwrap_or(10),
                )
                .visibility_timeout(visibility)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| aws_error("sqs", e))?;
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let Some(receipt) = m.receipt_handle else {
                    continue;
                };
                let body = m.body.unwrap_or_default();
                let Some(reminder) = Self::reminder(&body) else {
                    tracing::warn!(body = %body.chars().take(200).collect::<String>(), "dropping an SQS message that is not a reminder");
                    poison.push(receipt);
                    continue;
                };
                let received: u32 = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                claimed.push(Claimed {
                    reminder,
                    attempt: received.saturating_sub(1),
                    receipt,
                });
            }
        }
        let poison: Vec<&str> = poison.iter().map(String::as_str).collect();
        self.delete(&poison).await?;
        Ok(claimed)
    }

    async fn finish(&self, done: &[(Claimed, Finish)]) -> Result<()> {
        let receipts: Vec<&str> = done.iter().map(|(c, _)| c.receipt.as_str()).collect();
        self.delete(&receipts).await
    }

    async fn retry(&self, claimed: &Claimed, after: Duration) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&claimed.receipt)
            .visibility_timeout(secs(after.min(Duration::from_secs(VISIBILITY_MAX))))
            .send()
            .await
            .map_err(|e| aws_error("sqs", e))?;
        Ok(())
    }
}

/// The SNS topic and the SQS queue subscribed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The topic schedules publish to.
    pub topic_arn: String,
    /// The queue dispatchers drain.
    pub queue_url: String,
}

impl Topology {
    /// Creates (or finds) the topic and the queue, lets the topic send to the queue, and
    /// subscribes the queue with raw delivery. Safe to run on every start of every node.
    pub async fn ensure(
        sns: &aws_sdk_sns::Client,
        sqs: &aws_sdk_sqs::Client,
        topic: &str,
        queue: &str,
    ) -> Result<Self> {
        let topic_arn = sns
            .create_topic()
            .name(topic)
            .send()
            .await
            .map_err(|e| aws_error("sns", e))?
            .topic_arn
            .ok_or_else(|| crate::PushError::unavailable("sns", "no topic ARN returned"))?;
        let queue_url = sqs
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| aws_error("sqs", e))?
            .queue_url
            .ok_or_else(|| crate::PushError::unavailable("sqs", "no queue URL returned"))?;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws_error("sqs", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| crate::PushError::unavailable("sqs", "no queue ARN returned"))?;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } }
            }]
        });
        sqs.set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(|e| aws_error("sqs", e))?;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| aws_error("sns", e))?;
        Ok(Self {
            topic_arn,
            queue_url,
        })
    }
}
