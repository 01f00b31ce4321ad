//! The AWS path (feature `aws`): each reminder is a one-time
//! EventBridge Scheduler schedule that publishes the reminder to an SNS topic; an SQS queue
//! subscribed to the topic (raw delivery) is the [`DueSource`](crate::DueSource) the
//! dispatchers of every node drain.
//!
//! - [`EventBridgeScheduler`]: `schedule` creates the schedule `at(due)` named by the
//!   reminder's key (a second create is a conflict: planned already), deleted by the scheduler
//!   after it fires; a reminder due within a minute is published to the topic at once instead.
//!   `cancel` deletes the schedule.
//! - [`SqsSource`]: a claim is a receive with the lease as visibility timeout; finishing deletes
//!   the message, a retry sets its visibility to the backoff. SQS may deliver a message twice;
//!   the ledger makes the second a no-op.
//! - [`Topology::ensure`] creates the topic, the queue, the queue policy that lets the topic
//!   send, and the subscription.

mod scheduler;
mod sqs;

pub use scheduler::EventBridgeScheduler;
pub use sqs::{SqsSource, Topology};

use crate::PushError;

fn aws_error<E>(service: &'static str, e: E) -> PushError
where
    E: std::error::Error + Send + Sync + 'static,
{
    // The SDK's Display is terse ("service error"); its source chain has the details.
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    PushError::unavailable(service, message)
}
