//! The vocabulary: devices, reminders, claims, deliveries.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::PushError;

/// A user, as the application numbers them.
pub type UserId = i64;

/// The longest device token accepted: FCM tokens are ~160 bytes, a Web Push subscription (JSON
/// with endpoint and keys) up to ~1 KiB; this leaves room without letting a client store blobs.
pub const TOKEN_MAX: usize = 4096;

/// What kind of device a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeviceType {
    /// A browser (an FCM web token or a Web Push subscription).
    Web,
    /// A phone app (an FCM registration token).
    Mobile,
}

impl DeviceType {
    /// `WEB` or `MOBILE`, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "WEB",
            Self::Mobile => "MOBILE",
        }
    }

    /// Parses `WEB` / `MOBILE`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "WEB" => Some(Self::Web),
            "MOBILE" => Some(Self::Mobile),
            _ => None,
        }
    }
}

/// An active device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Whose device it is.
    pub user: UserId,
    /// The provider's token: an FCM registration token, or a Web Push subscription as JSON.
    pub token: String,
    /// Its kind.
    pub device_type: DeviceType,
}

/// Checks a token before it is stored: not blank, at most [`TOKEN_MAX`] bytes, no control
/// characters.
pub fn validate_token(token: &str) -> Result<(), PushError> {
    let reason = if token.trim().is_empty() {
        "must not be empty"
    } else if token.len() > TOKEN_MAX {
        "is longer than 4096 bytes"
    } else if token.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(PushError::Invalid {
        field: "token",
        reason: reason.to_owned(),
    })
}

/// One reminder per user, festival and festival day, however many tickets the user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReminderKey {
    /// Who is reminded.
    pub user: UserId,
    /// Of which festival.
    pub festival: i64,
    /// The festival day the user holds tickets for.
    pub date: NaiveDate,
}

impl ReminderKey {
    /// A stable name: the schedule's name on EventBridge, the collapse key at the providers, and
    /// the ledger's key. Only `[a-z0-9-]`.
    pub fn id(&self) -> String {
        format!(
            "r-{}-{}-{}",
            self.user,
            self.festival,
            self.date.format("%Y%m%d")
        )
    }

    /// Parses [`id`](Self::id).
    pub fn parse(id: &str) -> Option<Self> {
        let mut parts = id.strip_prefix("r-")?.splitn(3, '-');
        let user = parts.next()?.parse().ok()?;
        let festival = parts.next()?.parse().ok()?;
        let date = NaiveDate::parse_from_str(parts.next()?, "%Y%m%d").ok()?;
        Some(Self {
            user,
            festival,
            date,
        })
    }
}

impl fmt::Display for ReminderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// A notification to send at `due`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Whose and what for.
    pub key: ReminderKey,
    /// When to send it.
    pub due: DateTime<Utc>,
    /// The notification's title.
    pub title: String,
    /// The notification's text.
    pub body: String,
}

/// A due reminder handed to one dispatcher, until it finishes it, retries it, or its lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The reminder.
    pub reminder: Reminder,
    /// How many times it was handed out before (0 on the first attempt).
    pub attempt: u32,
    /// The backend's handle for this claim (an SQS receipt handle, a lease id).
    pub receipt: String,
}

/// How a claimed reminder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// Sent to every active device (possibly none).
    Delivered,
    /// No longer wanted (the reservations behind it were cancelled).
    Dropped,
    /// Given up after the last retry.
    Failed,
}

impl Finish {
    /// `delivered`, `dropped` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Dropped => "dropped",
            Self::Failed => "failed",
        }
    }
}

/// One reminder to one device: the unit the ledger makes exactly-once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId {
    /// The reminder.
    pub reminder: ReminderKey,
    /// The device's token.
    pub token: String,
}

/// What the ledger says about a delivery about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Never attempted: recorded as in flight; send it.
    Fresh,
    /// An attempt began before `stale_before` and never finished (its sender crashed or
    /// failed): recorded as in flight again; send it (the provider's collapse key makes a
    /// repeat replace, not add).
    InDoubt,
    /// Another dispatcher is sending it right now: leave it.
    Busy,
    /// Sent already: skip.
    Sent,
}

/// A delivered reminder, as the user's notification list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Which reminder.
    pub key: ReminderKey,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// When it was delivered.
    pub delivered_at: DateTime<Utc>,
}
