//! FCM HTTP v1 (feature `fcm`).
//!
//! A service account's key signs a JWT assertion (RS256) that the token endpoint exchanges for
//! an OAuth2 access token (the JWT bearer grant, RFC 7523); the token is cached until a minute
//! before it expires and shared by all sends. Each message goes to
//! `POST {endpoint}/v1/projects/{project}/messages:send`. `UNREGISTERED` and
//! `INVALID_ARGUMENT` answers mean the token is gone; 429 and 5xx are retried after the
//! provider's `Retry-After`; a 401 refreshes the access token once at once.
//! Both endpoints are configurable so tests (and emulators) can stand in for Google.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine_clock::{Clock, SystemClock};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::http::{is_passing, retry_after, transport};
use crate::{Device, Message, PushError, SendOutcome, Sender};

/// The OAuth2 scope for sending.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Google's FCM endpoint.
pub const ENDPOINT: &str = "https://fcm.googleapis.com";

/// The fields of a service-account JSON key file that FCM needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    /// The Firebase project.
    pub project_id: String,
    /// The account's e-mail, the assertion's issuer.
    pub client_email: String,
    /// The RSA private key, PEM.
    pub private_key: String,
    /// Names the key in the assertion's header.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Where access tokens come from.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

impl ServiceAccount {
    /// Reads a key file's JSON.
    pub fn from_json(json: &str) -> Result<Self, PushError> {
        serde_json::from_str(json).map_err(|e| PushError::Invalid {
            field: "service_account",
            reason: e.to_string(),
        })
    }
}

#[derive(Debug, Clone)]
struct AccessToken {
    value: String,
    refresh_at: DateTime<Utc>,
}

/// Sends through FCM HTTP v1.
#[derive(Debug, Clone)]
pub struct FcmSender {
    http: reqwest::Client,
    account: Arc<ServiceAccount>,
    key: Arc<jsonwebtoken::EncodingKey>,
    send_url: String,
    token: Arc<Mutex<Option<AccessToken>>>,
    clock: Arc<dyn Clock>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: i64,
}

fn default_expiry() -> i64 {
    3600
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl ErrorDetail {
    /// The FCM error code from `details`, else the canonical status.
    fn code(&self) -> String {
        self.details
            .iter()
            .find_map(|d| d.get("errorCode").and_then(|c| c.as_str()))
            .unwrap_or(&self.status)
            .to_owned()
    }
}

impl FcmSender {
    /// A sender for `account` posting to `endpoint` ([`ENDPOINT`] in production).
    pub fn new(account: ServiceAccount, endpoint: &str) -> Result<Self, PushError> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(
            |e| PushError::Invalid {
                field: "private_key",
                reason: e.to_string(),
            },
        )?;
        let http = super::http::client("fcm")?;
        Ok(Self {
            http,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                endpoint.trim_end_matches('/'),
                account.project_id
            ),
            account: Arc::new(account),
            key: Arc::new(key),
            token: Arc::default(),
            clock: Arc::new(SystemClock),
        })
    }

    /// With time from `clock` (assertion times and the token cache).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn assertion(&self, now: DateTime<Utc>) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid.clone_from(&self.account.private_key_id);
        let iat = now.timestamp();
        let claims = json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }

    /// A valid access token, from the cache or the token endpoint.
    async fn access_token(&self) -> Result<String, SendOutcome> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if let Some(token) = cached.as_ref().filter(|t| t.refresh_at > now) {
            return Ok(token.value.clone());
        }
        let assertion = self
            .assertion(now)
            .map_err(|reason| SendOutcome::Failed { reason })?;
        let response = self
            .http
            .post(&self.account.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| transport("fcm token", &e))?;
        let status = response.status();
        if !status.is_success() {
            let after = retry_after(response.headers());
            let body = super::http::answer_text(response).await;
            // A refused assertion is a configuration problem an operator can fix: keep retrying
            // rather than dropping reminders.
            return Err(SendOutcome::Retry {
                after,
                reason: format!("fcm token endpoint answered {status}: {body}"),
            });
        }
        let token: TokenResponse = response.json().await.map_err(|e| SendOutcome::Retry {
            after: None,
            reason: format!("fcm token response: {e}"),
        })?;
        let refresh_at = now + chrono::Duration::seconds((token.expires_in - 60).max(0));
        *cached = Some(AccessToken {
            value: token.access_token.clone(),
            refresh_at,
        });
        Ok(token.access_token)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// The request body for one device.
    pub fn body(device: &Device, message: &Message) -> serde_json::Value {
        json!({
            "message": {
                "token": device.token,
                "notification": { "title": message.title, "body": message.body },
                "data": { "reminder": message.collapse_id },
                "android": { "collapse_key": message.collapse_id, "priority": "high" },
                "apns": { "headers": { "apns-collapse-id": message.collapse_id } },
                "webpush": { "headers": { "Topic": super::topic(&message.collapse_id) } },
            }
        })
    }

    async fn post(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, SendOutcome> {
        self.http
            .post(&self.send_url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| transport("fcm", &e))
    }
}

#[async_trait]
impl Sender for FcmSender {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        let body = Self::body(device, message);
        let mut refreshed = false;
        loop {
            let token = match self.access_token().await {
                Ok(token) => token,
                Err(outcome) => return outcome,
            };
            let response = match self.post(&token, &body).await {
                Ok(r) => r,
                Err(outcome) => return outcome,
            };
            let status = response.status();
            if status.is_success() {
                return SendOutcome::Delivered;
            }
            if status == reqwest::StatusCode::UNAUTHORIZED && !refreshed {
                // Revoked or expired early: one fresh token, at once.
                self.forget_token().await;
                refreshed = true;
                continue;
            }
            let after = retry_after(response.headers());
            let error: ErrorBody = response.json().await.unwrap_or_default();
            let code = error.error.code();
            let reason = format!("fcm answered {status} {code}: {}", error.error.message);
            return match code.as_str() {
                "UNREGISTERED" | "INVALID_ARGUMENT" | "SENDER_ID_MISMATCH" => SendOutcome::Gone,
                _ if is_passing(status) || status == reqwest::StatusCode::UNAUTHORIZED => {
                    SendOutcome::Retry { after, reason }
                }
                _ => SendOutcome::Failed { reason },
            };
        }
    }
}
