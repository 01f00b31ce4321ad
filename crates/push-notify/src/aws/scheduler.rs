//! Reminders as EventBridge Scheduler schedules that target an SNS topic.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use engine_clock::{Clock, SystemClock};

use super::aws_error;
use crate::{Reminder, ReminderKey, Result, Scheduler};

/// Plans reminders on EventBridge Scheduler; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct EventBridgeScheduler {
    scheduler: aws_sdk_scheduler::Client,
    sns: aws_sdk_sns::Client,
    group: String,
    topic_arn: String,
    role_arn: String,
    clock: Arc<dyn Clock>,
}

impl EventBridgeScheduler {
    /// Schedules in `group` (created if missing by [`ensure_group`](Self::ensure_group)) that
    /// publish to `topic_arn`, assuming `role_arn` (a role allowed `sns:Publish` on it).
    pub fn new(
        scheduler: aws_sdk_scheduler::Client,
        sns: aws_sdk_sns::Client,
        group: impl Into<String>,
        topic_arn: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        Self {
            scheduler,
            sns,
            group: group.into(),
            topic_arn: topic_arn.into(),
            role_arn: role_arn.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// With time from `clock` (what counts as "due at once").
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Creates the schedule group unless it exists.
    pub async fn ensure_group(&self) -> Result<()> {
        if self.group == "default" {
            return Ok(());
        }
        match self
            .scheduler
            .create_schedule_group()
            .name(&self.group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_error("scheduler", e)),
        }
    }

    /// Publishes a reminder to the topic now.
    async fn publish(&self, reminder: &Reminder) -> Result<()> {
        let body = serde_json::to_string(reminder).map_err(|e| aws_error("sns", e))?;
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .send()
            .await
            .map_err(|e| aws_error("sns", e))?;
        Ok(())
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn schedule(&self, reminder: &Reminder) -> Result<bool> {
        // The scheduler refuses times in the past and fires within a minute anyway.
        if reminder.due <= self.clock.now() + chrono::Duration::minutes(1) {
            self.publish(reminder).await?;
            return Ok(true);
        }
        let input = serde_json::to_string(reminder).map_err(|e| aws_error("scheduler", e))?;
        let target = Target::builder()
            .arn(&self.topic_arn)
            .role_arn(&self.role_arn)
            .input(input)
            .build()
            .map_err(|e| aws_error("scheduler", e))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| aws_error("scheduler", e))?;
        let result = self
            .scheduler
            .create_schedule()
            .name(reminder.key.id())
            .group_name(&self.group)
            .schedule_expression(format!("at({})", reminder.due.format("%Y-%m-%dT%H:%M:%S")))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(aws_error("scheduler", e)),
        }
    }

    async fn cancel(&self, key: &ReminderKey) -> Result<bool> {
        match self
            .scheduler
            .delete_schedule()
            .name(key.id())
            .group_name(&self.group)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(aws_error("scheduler", e)),
        }
    }

    async fn pending(&self, key: &ReminderKey) -> Result<Option<Reminder>> {
        match self
            .scheduler
            .get_schedule()
            .name(key.id())
            .group_name(&self.group)
            .send()
            .await
        {
            Ok(found) => Ok(found
                .target()
                .and_then(|t| t.input())
                .and_then(|input| serde_json::from_str(input).ok())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error("scheduler", e)),
        }
    }
}
