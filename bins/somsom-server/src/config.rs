//! Configuration: documented defaults that need nothing, overridden by an optional TOML file,
//! overridden in turn by `SOMSOM_*` environment variables (and the standard `AWS_*` ones).
//!
//! Environment names are the TOML keys in upper case with `SOMSOM_` in front; nested keys are
//! joined with a double underscore: `SOMSOM_HTTP__BODY_LIMIT_BYTES` sets `[http] body_limit_bytes`.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// The whole server configuration. `Config::default()` is the embedded default: listen on
/// `0.0.0.0:8080`, a SQLite file under `./data/`, every engine in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on (`SOMSOM_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://PATH` (embedded) or `mysql://USER:PASS@HOST/DB` (scaled out) (`SOMSOM_DATABASE_URL`).
    pub database_url: String,
    /// Setting it moves the engines that can use Redis onto it (`SOMSOM_REDIS_URL`).
    #[serde(deserialize_with = "empty_is_none")]
    pub redis_url: Option<String>,
    /// Comma-separated `host:port` list; setting it moves the chat relay onto Kafka
    /// (`SOMSOM_KAFKA_BROKERS`).
    #[serde(deserialize_with = "empty_is_none")]
    pub kafka_brokers: Option<String>,
    /// Where the AWS backends (chosen by name in their own sections) talk to.
    pub aws: AwsSettings,
    /// HTTP behaviour shared by every route.
    pub http: HttpSettings,
    /// Logging.
    pub log: LogSettings,
    /// How long a graceful shutdown waits for in-flight requests and background tasks.
    pub shutdown_grace_secs: u64,
    /// E-mail addresses that become admins once confirmed (`SOMSOM_ADMIN_EMAILS`, comma-separated).
    #[serde(deserialize_with = "string_or_list")]
    pub admin_emails: Vec<String>,
    /// The identity provider.
    pub auth: AuthSettings,
    /// Setting it e-mails confirmation codes through this SMTP server (`SOMSOM_SMTP_URL`, e.g.
    /// `smtp://127.0.0.1:2525`, `smtps://user:pass@mail.example.com`); unset, codes go to the log.
    #[serde(deserialize_with = "empty_is_none")]
    pub smtp_url: Option<String>,
    /// The sender of those e-mails (`SOMSOM_SMTP_FROM`).
    pub smtp_from: String,
    /// How long festival search answers are cached (`SOMSOM_SEARCH_CACHE_TTL_SECS`; 0 turns the
    /// cache off); the cache lives in Redis when `redis_url` is set, else in memory.
    pub search_cache_ttl_secs: u64,
    /// The start of every Redis key SomSom writes (`SOMSOM_REDIS_KEY_PREFIX`), so deployments can
    /// share one Redis.
    pub redis_key_prefix: String,
    /// Tickets.
    pub tickets: TicketSettings,
    /// Waiting rooms (`SOMSOM_QUEUE__BATCH_SIZE`, ...); in Redis when `redis_url` is set.
    pub queue: QueueSettings,
    /// Festival chat (`SOMSOM_CHAT__STORE`, ...): relayed through Kafka when `kafka_brokers` is
    /// set, presence in Redis when `redis_url` is set.
    pub chat: ChatSettings,
    /// Day-before reminders (`SOMSOM_PUSH__REMIND_AT`, ...).
    pub push: PushSettings,
}

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

/// Festival chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// Where messages are kept: `sql` (the server's database), `dynamodb` (the seed's table) or
    /// `memory` (lost at restart).
    pub store: ChatStoreKind,
    /// The DynamoDB table for `store = "dynamodb"` (created if missing).
    pub dynamodb_table: String,
    /// Prefix of the Kafka topic and group names (`chat-topic`, `chat-delivery`,
    /// `consumer-group-db`).
    pub kafka_topic_prefix: String,
    /// Partitions of new chat topics (the seed's 3).
    pub kafka_partitions: i32,
    /// Replication factor of new chat topics.
    pub kafka_replication: i32,
    /// Whether this node takes part in storing messages from Kafka (the storing consumer
    /// group). At least one node must; nodes may join and leave the group at any time (see
    /// docs/ARCHITECTURE.md on rebalances).
    pub run_sequencer: bool,
    /// Pushes a connection may have waiting before it is closed as too slow.
    pub outbound_capacity: usize,
    /// SENDs a connection may have being stored and relayed at once (a room's stay in order).
    pub sends_in_flight: usize,
    /// Heart-beats the server offers: send every / expect every, milliseconds (0 turns off).
    pub heartbeat_send_ms: u64,
    /// See `heartbeat_send_ms`.
    pub heartbeat_receive_ms: u64,
    /// Largest STOMP frame a client may send, bytes.
    pub max_frame_bytes: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Chat connections one user may have open on one node.
    pub max_connections_per_user: usize,
    /// Messages one connection may send per second, sustained (0: no limit); a flood is closed
    /// with an ERROR frame.
    pub send_rate_per_second: f64,
    /// Messages one connection may send at once before the rate applies.
    pub send_burst: u32,
    /// Most messages a `resume-after` replay sends (the newest; older ones come from history).
    pub max_replay: usize,
    /// Seconds one write to a client may take before the connection is closed as not reading.
    pub write_timeout_secs: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            store: ChatStoreKind::Sql,
            dynamodb_table: "Message".to_owned(),
            kafka_topic_prefix: String::new(),
            kafka_partitions: 3,
            kafka_replication: 1,
            run_sequencer: true,
            outbound_capacity: 1024,
            sends_in_flight: 64,
            heartbeat_send_ms: 10_000,
            heartbeat_receive_ms: 10_000,
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 64,
            max_connections_per_user: 16,
            send_rate_per_second: 5.0,
            send_burst: 20,
            max_replay: 500,
            write_timeout_secs: 10,
        }
    }
}

/// Where chat messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatStoreKind {
    /// The server's SQL database.
    Sql,
    /// DynamoDB, in the seed's `Message` table layout.
    Dynamodb,
    /// Memory (lost at restart).
    Memory,
}

/// Waiting rooms in front of ticket sales: the default admission policy and how admission is
/// driven. Every booking needs an admission unless its festival's sale is not queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// `interval` (every node ticks; each queue admits once per interval) or `sqs` (ticks travel
    /// through the SQS queue `sqs_queue`, the seed's design).
    pub driver: QueueDriver,
    /// The SQS queue of admission ticks (created if missing), for `driver = "sqs"`.
    pub sqs_queue: String,
    /// Users admitted per tick (the seed's 10).
    pub batch_size: u32,
    /// Milliseconds between ticks.
    pub interval_ms: u64,
    /// Most admitted users at once per queue (0: no cap).
    pub max_active: u32,
    /// How long an admission lasts, in seconds (the seed's never ended).
    pub admitted_ttl_secs: u64,
    /// Waiters silent this long are dropped (0: never). Asking one's rank, or an open event
    /// stream, counts as a sign of life.
    pub idle_timeout_secs: u64,
    /// Someone joining an empty waiting room is admitted at once (within the interval's batch
    /// and the cap), so a quiet festival feels like no queue at all.
    pub admit_when_idle: bool,
    /// The key of admission tokens, at least 32 bytes. Unset, one is made at first start and
    /// kept in the database, which every node shares.
    #[serde(deserialize_with = "empty_is_none")]
    pub token_secret: Option<String>,
    /// A file holding the token key (mounted secrets).
    #[serde(deserialize_with = "empty_is_none")]
    pub token_secret_file: Option<String>,
    /// How often an event stream's server looks for rank changes, in milliseconds.
    pub watch_poll_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            driver: QueueDriver::Interval,
            sqs_queue: "somsom-queue-ticks".to_owned(),
            batch_size: 10,
            interval_ms: 1_000,
            max_active: 0,
            admitted_ttl_secs: 600,
            idle_timeout_secs: 0,
            admit_when_idle: true,
            token_secret: None,
            token_secret_file: None,
            watch_poll_ms: 250,
        }
    }
}

impl QueueSettings {
    /// The default policy these settings describe.
    pub fn policy(&self) -> waiting_queue::Policy {
        use std::time::Duration;
        waiting_queue::Policy {
            batch_size: self.batch_size,
            interval: Duration::from_millis(self.interval_ms),
            max_active: (self.max_active > 0).then_some(self.max_active),
            admitted_ttl: Duration::from_secs(self.admitted_ttl_secs),
            idle_timeout: (self.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(self.idle_timeout_secs)),
            admit_when_idle: self.admit_when_idle,
        }
    }
}

/// What drives admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueDriver {
    /// A local ticker on every node.
    Interval,
    /// Tick messages through SQS.
    Sqs,
}

/// Ticket stock and booking rules (`SOMSOM_TICKETS__STRATEGY`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketSettings {
    /// `row_lock` (the seed's `SELECT … FOR UPDATE`), `conditional_update`, or `group_commit`
    /// (the row lock, a day's concurrent bookings booked in one transaction).
    pub strategy: ticket_lock::sql::Strategy,
    /// Tickets per festival day when a festival is created without a number.
    pub per_day: u32,
    /// Most tickets in one reservation, unless the festival says otherwise.
    pub max_per_reservation: u32,
    /// Most tickets one user may hold for one day, unless the festival says otherwise.
    pub max_per_user_per_day: u32,
}

impl Default for TicketSettings {
    fn default() -> Self {
        Self {
            strategy: ticket_lock::sql::Strategy::GroupCommit,
            per_day: 100,
            max_per_reservation: 4,
            max_per_user_per_day: 4,
        }
    }
}

/// Identity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `local` (the default: accounts in the database).
    pub backend: AuthBackend,
    /// `iss` of the tokens the local provider issues.
    pub issuer: String,
    /// Code attempts (confirm, resend, forgot and reset password) allowed per e-mail per minute.
    pub attempts_per_account_per_minute: u32,
    /// Attempts on any account route allowed per client address (IPv6: per /64) per minute.
    pub attempts_per_address_per_minute: u32,
    /// Sign-ups allowed per client address per hour (each costs a password hash and a mail).
    pub signups_per_address_per_hour: u32,
    /// Sign-ups allowed per e-mail per hour.
    pub signups_per_email_per_hour: u32,
    /// Failed logins per (e-mail, client address) before each further one doubles the wait.
    pub login_free_failures: u32,
    /// The longest wait after failed logins, seconds.
    pub login_max_backoff_secs: u64,
    /// Keys each attempt limit remembers (its memory is fixed at start: about 24 bytes a key).
    pub limiter_slots: usize,
    /// Password hashes (argon2id, 19 MiB each) running at once; 0: one per CPU.
    pub password_hashes_at_once: usize,
    /// Password hashes that may wait for those; past that, 503 at once.
    pub password_hashes_waiting: usize,
    /// The token signing key (PKCS#1 or PKCS#8 RSA PEM), e.g. from a secret store through the
    /// environment (`SOMSOM_AUTH__SIGNING_KEY`). Unset (and no file), one is made at first start
    /// and kept in the database.
    #[serde(deserialize_with = "empty_is_none")]
    pub signing_key: Option<String>,
    /// A file holding the signing key (mounted secrets).
    #[serde(deserialize_with = "empty_is_none")]
    pub signing_key_file: Option<String>,
    /// Seconds a node trusts a session it saw active (local provider). A sign-out is immediate on
    /// the node that handled it and takes up to this long on the others; 0 reads the database on
    /// every request.
    pub session_cache_secs: u64,
    /// The Cognito pool, for `backend = "cognito"`.
    pub cognito: CognitoSettings,
}

/// An AWS Cognito user pool and app client (`SOMSOM_AUTH__COGNITO__USER_POOL_ID`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CognitoSettings {
    /// Pool id.
    pub user_pool_id: String,
    /// App client id.
    pub client_id: String,
    /// App client secret, when the client has one (masked when printed).
    #[serde(deserialize_with = "empty_is_none")]
    pub client_secret: Option<String>,
    /// JWKS URL override; by default the pool's public one, or `{AWS_ENDPOINT_URL}/{pool}/...`
    /// when an endpoint is configured.
    #[serde(deserialize_with = "empty_is_none")]
    pub jwks_url: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            backend: AuthBackend::Local,
            issuer: "somsom".into(),
            attempts_per_account_per_minute: 10,
            attempts_per_address_per_minute: 60,
            signups_per_address_per_hour: 20,
            signups_per_email_per_hour: 5,
            login_free_failures: 5,
            login_max_backoff_secs: 900,
            limiter_slots: 65_536,
            password_hashes_at_once: 0,
            password_hashes_waiting: 64,
            session_cache_secs: 1,
            signing_key: None,
            signing_key_file: None,
            cognito: CognitoSettings::default(),
        }
    }
}

/// Which identity provider to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    /// SomSom's own accounts (argon2id, RS256), in the configured database.
    Local,
    /// An AWS Cognito user pool (`[auth.cognito]`, region and endpoint from `[aws]`).
    Cognito,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            database_url: "sqlite://data/somsom.db".to_owned(),
            redis_url: None,
            kafka_brokers: None,
            aws: AwsSettings::default(),
            http: HttpSettings::default(),
            log: LogSettings::default(),
            shutdown_grace_secs: 30,
            admin_emails: Vec::new(),
            auth: AuthSettings::default(),
            smtp_url: None,
            smtp_from: "SomSom <no-reply@somsom.local>".to_owned(),
            search_cache_ttl_secs: 600,
            redis_key_prefix: "somsom:".to_owned(),
            tickets: TicketSettings::default(),
            queue: QueueSettings::default(),
            chat: ChatSettings::default(),
            push: PushSettings::default(),
        }
    }
}

/// AWS region and endpoint. Credentials are never part of this file: they come from the standard
/// AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, instance roles).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    /// Region (`AWS_REGION`); the AWS default chain decides when unset.
    #[serde(deserialize_with = "empty_is_none")]
    pub region: Option<String>,
    /// Endpoint override (`AWS_ENDPOINT_URL`), e.g. a local `moto_server`.
    #[serde(deserialize_with = "empty_is_none")]
    pub endpoint_url: Option<String>,
}

/// HTTP behaviour shared by every route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Request bodies larger than this are refused with 413.
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS (with credentials). A comma-separated string works too
    /// (`SOMSOM_HTTP__CORS_ORIGINS=https://a.example,https://b.example`).
    #[serde(deserialize_with = "string_or_list")]
    pub cors_origins: Vec<String>,
    /// A request still running after this many seconds is answered with 408.
    pub request_timeout_secs: u64,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For`/`Forwarded` headers name the client
    /// for per-address limits; from anyone else those headers are ignored.
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// Seconds from a request's first byte to the end of its head (slow-header attacks).
    pub header_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait for its next request (keep it above the load
    /// balancer's idle timeout, 60 s on AWS ALB).
    pub keep_alive_idle_secs: u64,
    /// TCP connections open at once (WebSocket chat included); more wait in the backlog.
    pub max_connections: usize,
    /// Serve `/metrics` on this address only (not on `listen`), e.g. `127.0.0.1:9100`.
    #[serde(deserialize_with = "empty_is_none_addr")]
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            cors_origins: vec!["http://localhost:3000".to_owned()],
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            keep_alive_idle_secs: 75,
            max_connections: 20_000,
            metrics_listen: None,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter such as `info,somsom_server=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info,sqlx=warn,aws_config=warn,rdkafka=warn".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, one event a line.
    Pretty,
    /// One JSON object a line.
    Json,
}

/// A secret given inline (`name`, usually from the environment) or in a file (`name_file`):
/// the value, the file's contents trimmed, or `None` when neither is set.
pub fn secret(
    name: &str,
    inline: &Option<String>,
    file: &Option<String>,
) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("set {name} or {name}_file, not both")),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|e| format!("{name}_file {path}: {e}")),
        (None, None) => Ok(None),
    }
}

/// Settings that cannot work, found by [`Config::validate`] before anything connects: every
/// problem at once, each naming its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Invalid(pub Vec<String>);

impl Invalid {
    /// One problem.
    pub fn one(problem: impl Into<String>) -> Self {
        Self(vec![problem.into()])
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// Defaults, then the TOML file at `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::figment(file, Env::prefixed("SOMSOM_"), Env::raw())
    }

    /// Checks what can be checked without connecting to anything: origins, proxies, the queue
    /// policy, secrets given twice, the reminder time and zone, the identity provider's
    /// settings. [`crate::build`] calls it first.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        let invalid = crate::app::invalid_cors_origins(&self.http);
        if !invalid.is_empty() {
            problems.push(format!("http.cors_origins: not header values: {invalid:?}"));
        }
        if let Err(e) = crate::client_ip::TrustedProxies::parse(&self.http.trusted_proxies) {
            problems.push(format!("http.trusted_proxies: {e}"));
        }
        if let Err(e) = self.queue.policy().validate() {
            problems.push(format!("queue: {e}"));
        }
        if self
            .queue
            .token_secret
            .as_ref()
            .is_some_and(|s| s.len() < waiting_queue::token::SECRET_MIN)
        {
            problems.push(format!(
                "queue.token_secret: at least {} bytes",
                waiting_queue::token::SECRET_MIN
            ));
        }
        for (name, inline, file) in [
            (
                "queue.token_secret",
                &self.queue.token_secret,
                &self.queue.token_secret_file,
            ),
            (
                "push.vapid_private_key",
                &self.push.vapid_private_key,
                &self.push.vapid_private_key_file,
            ),
            (
                "auth.signing_key",
                &self.auth.signing_key,
                &self.auth.signing_key_file,
            ),
        ] {
            if inline.is_some() && file.is_some() {
                problems.push(format!("set {name} or {name}_file, not both"));
            }
        }
        if let Err(e) = push_notify::Planner::parse(&self.push.remind_at, &self.push.time_zone) {
            problems.push(format!("push.remind_at / push.time_zone: {e}"));
        }
        if self.auth.backend == AuthBackend::Cognito
            && (self.auth.cognito.user_pool_id.is_empty() || self.auth.cognito.client_id.is_empty())
        {
            problems.push(
                "auth.backend = cognito needs auth.cognito.user_pool_id and client_id".to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Invalid(problems))
        }
    }

    /// `SOMSOM_*` variables that belong to the tooling, not to the server: they are not
    /// configuration keys, so they must not trip the unknown-key check.
    const TOOLING_VARIABLES: &[&str] = &["CONFIG", "REQUIRE_SERVICES", "CACHE", "UPDATE_DOCS"];

    fn figment(file: Option<&Path>, somsom: Env, raw: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let aws = raw
            .only(&["AWS_REGION", "AWS_ENDPOINT_URL"])
            .map(|key| format!("aws.{}", &key.as_str()[4..]).to_lowercase().into());
        figment
            .merge(aws)
            .merge(somsom.ignore(Self::TOOLING_VARIABLES).split("__"))
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))
    }

    /// The configuration as JSON with every password in a URL and every secret-looking field
    /// replaced by `****`, for printing at start.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        redact(&mut value, "");
        value
    }
}

fn redact(value: &mut serde_json::Value, key: &str) {
    use serde_json::Value;
    match value {
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact(v, k)),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, key)),
        Value::String(s) if is_secret_key(key) => *s = "****".to_owned(),
        Value::String(s) if key.ends_with("url") => *s = mask_url_password(s),
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    ["secret", "password", "private_key", "signing_key", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// `mysql://user:pw@host/db` → `mysql://user:****@host/db`; anything unparsable is left alone.
pub fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.filter(|s| !s.trim().is_empty()))
}

fn empty_is_none_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    match empty_is_none(d)? {
        Some(s) => s.trim().parse().map(Some).map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
// figment's Jail returns its own (large) error type from every closure.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    /// Loads inside a jail whose environment was cleared, so the developer's or CI's variables
    /// (`AWS_ENDPOINT_URL`, `SOMSOM_REQUIRE_SERVICES`, ...) cannot leak in.
    fn load_in_jail(file: Option<&str>) -> Result<Config, ConfigError> {
        Config::figment(file.map(Path::new), Env::prefixed("SOMSOM_"), Env::raw())
    }

    #[test]
    fn validation_names_every_problem_before_anything_connects() {
        assert_eq!(Config::default().validate(), Ok(()));
        let mut config = Config::default();
        config.http.trusted_proxies = vec!["10.0.0.0/99".into()];
        config.queue.batch_size = 0;
        config.queue.token_secret = Some("short".into());
        config.auth.signing_key = Some("pem".into());
        config.auth.signing_key_file = Some("/run/key.pem".into());
        config.push.time_zone = "Mars/Olympus".into();
        config.auth.backend = AuthBackend::Cognito;
        let Invalid(problems) = config.validate().unwrap_err();
        let named: Vec<&str> = problems
            .iter()
            .map(|p| p.split([':', ' ']).next().unwrap())
            .collect();
        assert_eq!(
            named,
            [
                "http.trusted_proxies",
                "queue",
                "queue.token_secret",
                "set",
                "push.remind_at",
                "auth.backend"
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn defaults_need_nothing() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let config = load_in_jail(None).unwrap();
            assert_eq!(config, Config::default());
            assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
            assert!(config.database_url.starts_with("sqlite://data/"));
            assert!(config.redis_url.is_none() && config.kafka_brokers.is_none());
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file(
                "somsom.toml",
                r#"
                listen = "127.0.0.1:9000"
                database_url = "mysql://root:hunter2@db/somsom"
                [http]
                body_limit_bytes = 2048
                cors_origins = ["https://a.example"]
                "#,
            )?;
            jail.set_env("SOMSOM_LISTEN", "127.0.0.1:9100");
            jail.set_env("SOMSOM_REDIS_URL", "redis://127.0.0.1:6379");
            jail.set_env("SOMSOM_KAFKA_BROKERS", "127.0.0.1:9092");
            jail.set_env(
                "SOMSOM_HTTP__CORS_ORIGINS",
                "https://b.example, https://c.example",
            );
            jail.set_env("AWS_REGION", "ap-northeast-2");
            jail.set_env("AWS_ENDPOINT_URL", "http://127.0.0.1:5000");
            jail.set_env("SOMSOM_ADMIN_EMAILS", "root@example.com, ops@example.com");
            let config = load_in_jail(Some("somsom.toml")).unwrap();
            assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
            assert_eq!(config.database_url, "mysql://root:hunter2@db/somsom");
            assert_eq!(config.http.body_limit_bytes, 2048);
            assert_eq!(
                config.http.cors_origins,
                vec!["https://b.example", "https://c.example"]
            );
            assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
            assert_eq!(config.kafka_brokers.as_deref(), Some("127.0.0.1:9092"));
            assert_eq!(config.aws.region.as_deref(), Some("ap-northeast-2"));
            assert_eq!(
                config.admin_emails,
                vec!["root@example.com", "ops@example.com"]
            );
            assert_eq!(
                config.aws.endpoint_url.as_deref(),
                Some("http://127.0.0.1:5000")
            );
            Ok(())
        });
    }

    #[test]
    fn empty_service_variables_mean_unset() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("SOMSOM_REDIS_URL", "");
            jail.set_env("SOMSOM_REQUIRE_SERVICES", "1");
            let config = load_in_jail(None).unwrap();
            assert!(config.redis_url.is_none());
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("bad.toml", "listen_port = 1\n")?;
            let err = load_in_jail(Some("bad.toml")).unwrap_err().to_string();
            assert!(err.contains("listen_port"), "{err}");
            jail.set_env("SOMSOM_LISTEN", "not-an-address");
            let err = load_in_jail(None).unwrap_err().to_string().to_lowercase();
            assert!(err.contains("listen"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            assert!(load_in_jail(Some("nope.toml")).is_err());
            Ok(())
        });
    }

    #[test]
    fn secrets_come_inline_or_from_a_file_never_both_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  s3cr3t-value\n").unwrap();
        let file = Some(path.display().to_string());
        assert_eq!(
            secret("x", &None, &file).unwrap().as_deref(),
            Some("s3cr3t-value")
        );
        assert_eq!(
            secret("x", &Some("inline".into()), &None)
                .unwrap()
                .as_deref(),
            Some("inline")
        );
        assert!(secret("x", &Some("inline".into()), &file).is_err());
        assert!(secret("x", &None, &Some("/no/such/file".into())).is_err());
        assert_eq!(secret("x", &None, &None).unwrap(), None);
        let mut config = Config::default();
        config.auth.signing_key = Some("-----BEGIN PRIVATE KEY----- abc".into());
        config.queue.token_secret = Some("0123456789abcdef0123456789abcdef".into());
        config.push.vapid_private_key = Some("vapid-secret".into());
        let printed = config.redacted().to_string();
        for leaked in ["BEGIN PRIVATE KEY", "0123456789abcdef", "vapid-secret"] {
            assert!(!printed.contains(leaked), "{leaked} in {printed}");
        }
    }

    #[test]
    fn redaction_masks_url_passwords() {
        let config = Config {
            database_url: "mysql://root:hunter2@db:3306/somsom".into(),
            redis_url: Some("redis://:sesame@cache:6379".into()),
            ..Config::default()
        };
        let printed = config.redacted().to_string();
        assert!(
            !printed.contains("hunter2") && !printed.contains("sesame"),
            "{printed}"
        );
        assert!(
            printed.contains("mysql://root:****@db:3306/somsom"),
            "{printed}"
        );
    }
}
