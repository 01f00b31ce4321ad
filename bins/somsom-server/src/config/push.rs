//! `[push]`: day-before reminders.

use serde::{Deserialize, Serialize};

use super::serde_with::empty_is_none;

/// Day-before festival reminders: when they go out, where they are planned, how they are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Local time of day on the eve of a festival day, `HH:MM`.
    pub remind_at: String,
    /// The festivals' time zone (IANA name).
    pub time_zone: String,
    /// The reminder's text; `{name}` and `{date}` are filled in.
    pub reminder_text: String,
    /// Where reminders are planned: `sql` (the server's database, polled by every node) or
    /// `eventbridge` (one EventBridge Scheduler schedule each, firing into SNS → SQS).
    pub scheduler: PushSchedulerKind,
    /// A Firebase service-account key file; set, FCM tokens are sent through FCM HTTP v1.
    #[serde(deserialize_with = "empty_is_none")]
    pub fcm_service_account_file: Option<String>,
    /// The FCM endpoint (an emulator or test server may stand in).
    pub fcm_endpoint: String,
    /// The VAPID private key (Base64url scalar). Unset, one is made by the first node and
    /// kept in the database.
    #[serde(deserialize_with = "empty_is_none")]
    pub vapid_private_key: Option<String>,
    /// A file holding the VAPID private key (mounted secrets).
    #[serde(deserialize_with = "empty_is_none")]
    pub vapid_private_key_file: Option<String>,
    /// The contact push services see in VAPID tokens.
    pub vapid_subject: String,
    /// Whether this node sends due reminders (any number of nodes may; leases keep them apart).
    pub run_dispatcher: bool,
    /// Reminders claimed per round; 0 picks by database (1,024 on SQLite, 256 on MySQL, the
    /// best of each in docs/benchmarks.md).
    pub batch: usize,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Seconds a claim is held before another node may take it over.
    pub lease_secs: u64,
    /// How often an idle dispatcher looks for due reminders, milliseconds.
    pub poll_ms: u64,
    /// Attempts before a reminder is given up.
    pub max_attempts: u32,
    /// Seconds one send may take before it is retried later.
    pub send_timeout_secs: u64,
    /// Devices one user keeps (the newest; activating one more forgets the oldest).
    pub max_devices_per_user: usize,
    /// Web Push subscriptions may point at private addresses and plain http (tests, a push
    /// service on one's own network). Off, only public https push services are sent to.
    pub allow_private_endpoints: bool,
    /// The SNS topic schedules publish to (`scheduler = "eventbridge"`).
    pub sns_topic: String,
    /// The SQS queue subscribed to it (the seed's `noti`).
    pub sqs_queue: String,
    /// The schedule group.
    pub schedule_group: String,
    /// The role EventBridge Scheduler assumes to publish.
    pub scheduler_role_arn: String,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            remind_at: "09:00".to_owned(),
            time_zone: "Asia/Seoul".to_owned(),
            // The seed's text.
            reminder_text: "{date} 에 {name}이 시작됩니다.".to_owned(),
            scheduler: PushSchedulerKind::Sql,
            fcm_service_account_file: None,
            fcm_endpoint: "https://fcm.googleapis.com".to_owned(),
            vapid_private_key: None,
            vapid_private_key_file: None,
            vapid_subject: "mailto:admin@somsom.local".to_owned(),
            run_dispatcher: true,
            batch: 0,
            concurrency: 64,
            lease_secs: 60,
            poll_ms: 200,
            max_attempts: 10,
            send_timeout_secs: 10,
            max_devices_per_user: 10,
            allow_private_endpoints: false,
            sns_topic: "somsom-reminders".to_owned(),
            sqs_queue: "noti".to_owned(),
            schedule_group: "somsom".to_owned(),
            scheduler_role_arn: "arn:aws:iam::123456789012:role/somsom-scheduler".to_owned(),
        }
    }
}

/// Where reminders are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushSchedulerKind {
    /// The server's SQL database.
    Sql,
    /// EventBridge Scheduler → SNS → SQS.
    Eventbridge,
}
