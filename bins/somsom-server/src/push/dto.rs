//! Notification bodies, with the seed's field names.

use chrono::NaiveDate;
use push_notify::Notification;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /notification/activate` (the seed's `FcmTokenActivateRequest`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivateRequest {
    /// An FCM registration token, or a Web Push subscription as JSON; at most 4096 bytes.
    pub token: Option<String>,
    /// `WEB` or `MOBILE`.
    pub device_type: Option<String>,
}

/// `POST /notification/deactivate` (the seed's `FcmTokenDeactivateRequest`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeactivateRequest {
    /// The token given to activate.
    pub token: Option<String>,
}

/// `GET /notification/vapid-public-key`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VapidKey {
    /// The uncompressed P-256 public key, Base64url: the `applicationServerKey` to subscribe with.
    pub public_key: String,
}

/// `GET /notifications` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct NotificationQuery {
    /// How many, 1..=100 (default 20).
    pub limit: Option<u32>,
}

/// A delivered reminder.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationItem {
    /// The festival.
    pub festival_id: i64,
    /// The festival day it was about.
    pub festival_date: NaiveDate,
    /// The title (the festival's name).
    pub title: String,
    /// The text.
    pub body: String,
    /// When it was delivered, epoch milliseconds.
    pub delivered_at: i64,
}

impl From<Notification> for NotificationItem {
    fn from(n: Notification) -> Self {
        Self {
            festival_id: n.key.festival,
            festival_date: n.key.date,
            title: n.title,
            body: n.body,
            delivered_at: n.delivered_at.timestamp_millis(),
        }
    }
}
