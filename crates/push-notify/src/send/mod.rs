//! Senders: one trait, a provider behind each implementation.

#[cfg(feature = "webpush")]
pub mod endpoint;
#[cfg(feature = "fcm")]
pub mod fcm;
#[cfg(any(feature = "fcm", feature = "webpush"))]
mod http;
#[cfg(feature = "webpush")]
pub mod webpush;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::{Device, Reminder};

/// What a device is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The same for every attempt of one reminder: providers collapse repeats by it, so a
    /// resend after a crash replaces the first copy instead of adding a second.
    pub collapse_id: String,
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
}

impl From<&Reminder> for Message {
    fn from(r: &Reminder) -> Self {
        Self {
            collapse_id: r.key.id(),
            title: r.title.clone(),
            body: r.body.clone(),
        }
    }
}

/// How one send went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider accepted it.
    Delivered,
    /// The provider says the token is gone for good; it should be deactivated.
    Gone,
    /// A passing failure (rate limit, provider error, network); try again, not before `after`
    /// when the provider said so.
    Retry {
        /// The provider's `Retry-After`.
        after: Option<Duration>,
        /// What happened.
        reason: String,
    },
    /// A failure that a retry will not fix (a malformed request, bad credentials).
    Failed {
        /// What happened.
        reason: String,
    },
}

/// Sends one message to one device.
#[async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    /// Sends; never panics, every failure is an outcome.
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome;
}

/// Writes each notification to the log (the embedded default: no provider needed).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSender;

#[async_trait]
impl Sender for LogSender {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        tracing::info!(user = device.user, device = device.device_type.as_str(),
            id = %message.collapse_id, title = %message.title, body = %message.body, "push notification");
        SendOutcome::Delivered
    }
}

/// Keeps every message it is given (tests and benchmarks: a local sink).
#[derive(Debug, Clone, Default)]
pub struct RecordingSender {
    sent: Arc<Mutex<Vec<(Device, Message)>>>,
}

impl RecordingSender {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<(Device, Message)> {
        self.sent.lock().expect("not poisoned").clone()
    }

    /// How many were sent.
    pub fn len(&self) -> usize {
        self.sent.lock().expect("not poisoned").len()
    }

    /// Nothing sent yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Sender for RecordingSender {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        self.sent
            .lock()
            .expect("not poisoned")
            .push((device.clone(), message.clone()));
        SendOutcome::Delivered
    }
}

/// Chooses a sender by the token's form: a Web Push subscription (a JSON object with an
/// `endpoint`) goes to Web Push, any other token to FCM; whichever is not configured falls back
/// to the log.
#[derive(Debug, Clone)]
pub struct Route {
    web_push: Arc<dyn Sender>,
    fcm: Arc<dyn Sender>,
}

impl Default for Route {
    fn default() -> Self {
        Self {
            web_push: Arc::new(LogSender),
            fcm: Arc::new(LogSender),
        }
    }
}

impl Route {
    /// Both kinds of token to the log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Web Push subscriptions go to `sender`.
    pub fn web_push(mut self, sender: Arc<dyn Sender>) -> Self {
        self.web_push = sender;
        self
    }

    /// FCM tokens go to `sender`.
    pub fn fcm(mut self, sender: Arc<dyn Sender>) -> Self {
        self.fcm = sender;
        self
    }

    /// Whether `token` is a Web Push subscription.
    pub fn is_web_push(token: &str) -> bool {
        token.trim_start().starts_with('{')
    }
}

#[async_trait]
impl Sender for Route {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        if Self::is_web_push(&device.token) {
            self.web_push.send(device, message).await
        } else {
            self.fcm.send(device, message).await
        }
    }
}

/// A collapse id as a Web Push `Topic` (at most 32 characters of the URL-safe Base64
/// alphabet): the id itself when it fits, else a 32-hex-digit digest of it.
pub fn topic(collapse_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let fits = collapse_id.len() <= 32
        && collapse_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        return collapse_id.to_owned();
    }
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, collapse_id).hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_fit_the_web_push_limits() {
        assert_eq!(topic("r-1-2-20261224"), "r-1-2-20261224");
        let long = topic("r-9223372036854775807-9223372036854775807-20261224");
        assert_eq!(long.len(), 32);
        assert!(long.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            long,
            topic("r-9223372036854775807-9223372036854775807-20261224")
        );
    }

    #[test]
    fn web_push_subscriptions_are_told_from_fcm_tokens() {
        assert!(Route::is_web_push(r#" {"endpoint":"https://x","keys":{}}"#));
        assert!(!Route::is_web_push("dGhpcyBpcyBhbiBGQ00gdG9rZW4"));
    }
}
