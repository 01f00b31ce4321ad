//! Delivery of confirmation codes.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::AuthError;

/// Who a confirmation code goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// Sends confirmation codes.
#[async_trait]
pub trait CodeSender: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers `code` to `to`.
    async fn send_code(&self, to: &Recipient, code: &str) -> Result<(), AuthError>;
}

/// Writes the code to the log: the embedded default, for development without a mail server.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSender;

#[async_trait]
impl CodeSender for LogSender {
    async fn send_code(&self, to: &Recipient, code: &str) -> Result<(), AuthError> {
        tracing::info!(email = %to.email, code, "confirmation code (log sender: configure SMTP to e-mail it)");
        Ok(())
    }
}

/// Keeps every code in memory: for tests and for programs that deliver codes themselves.
#[derive(Debug, Default)]
pub struct MemorySender {
    sent: Mutex<Vec<(String, String)>>,
}

impl MemorySender {
    /// No codes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last code sent to `email`.
    pub fn last_code(&self, email: &str) -> Option<String> {
        let email = crate::normalize_email(email);
        self.sent
            .lock()
            .expect("sender lock")
            .iter()
            .rev()
            .find(|(to, _)| *to == email)
            .map(|(_, code)| code.clone())
    }

    /// How many codes were sent to `email`.
    pub fn count(&self, email: &str) -> usize {
        let email = crate::normalize_email(email);
        self.sent
            .lock()
            .expect("sender lock")
            .iter()
            .filter(|(to, _)| *to == email)
            .count()
    }
}

#[async_trait]
impl CodeSender for MemorySender {
    async fn send_code(&self, to: &Recipient, code: &str) -> Result<(), AuthError> {
        self.sent
            .lock()
            .expect("sender lock")
            .push((crate::normalize_email(&to.email), code.to_owned()));
        Ok(())
    }
}
