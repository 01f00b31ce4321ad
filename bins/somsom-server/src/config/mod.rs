//! Configuration: documented defaults that need nothing, overridden by an optional TOML file,
//! overridden in turn by `SOMSOM_*` environment variables (and the standard `AWS_*` ones).
//!
//! Environment names are the TOML keys in upper case with `SOMSOM_` in front; nested keys are
//! joined with a double underscore: `SOMSOM_HTTP__BODY_LIMIT_BYTES` sets `[http] body_limit_bytes`.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod auth;
mod chat;
mod http;
mod push;
mod queue;
mod serde_with;
#[cfg(test)]
mod tests;

pub use auth::{AuthBackend, AuthSettings, CognitoSettings};
pub use chat::{ChatSettings, ChatStoreKind};
pub use http::{AwsSettings, HttpSettings, LogFormat, LogSettings};
pub use push::{PushSchedulerKind, PushSettings};
pub use queue::{QueueDriver, QueueSettings, TicketSettings};
use serde_with::{empty_is_none, redact, string_or_list};
pub use serde_with::{mask_url_password, secret};

/// The whole server configuration. `Config::default()` is the embedded default: listen on
/// `0.0.0.0:8080`, tickets, catalog, accounts, chat and reminders in a SQLite file under
/// `./data/`, waiting rooms, presence, the chat relay and the search cache in memory.
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
    /// On SIGTERM, how long the node keeps serving while `/readyz` already answers 503, so a
    /// load balancer moves new traffic away before connections close (0: close at once).
    pub drain_secs: u64,
    /// How long a request waits for a MySQL/MariaDB connection from the pool before it answers
    /// 503 (while the database is known to be down, requests answer 503 at once instead).
    pub database_acquire_timeout_secs: u64,
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
            drain_secs: 0,
            database_acquire_timeout_secs: 10,
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

    /// `setting` asks for a backend this build left out.
    pub fn not_built(setting: &str, feature: &str) -> Self {
        Self::one(format!(
            "{setting} needs a server built with the `{feature}` feature"
        ))
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// The embedded default kept entirely in this process: every table in an in-memory SQLite
    /// database ([`crate::db::MEMORY`]), chat messages in memory, the listener on a free
    /// loopback port. Nothing is written anywhere and nothing outside is needed: for tests that
    /// drive [`crate::Application::router`] without a socket, and for demos.
    pub fn in_memory() -> Self {
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: crate::db::MEMORY.to_owned(),
            ..Config::default()
        };
        config.chat.store = ChatStoreKind::Memory;
        config
    }

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
        if self
            .tickets
            .code_secret
            .as_ref()
            .is_some_and(|s| s.len() < crate::tickets::codes::SECRET_MIN)
        {
            problems.push(format!(
                "tickets.code_secret: at least {} bytes",
                crate::tickets::codes::SECRET_MIN
            ));
        }
        for (name, inline, file) in [
            (
                "queue.token_secret",
                &self.queue.token_secret,
                &self.queue.token_secret_file,
            ),
            (
                "tickets.code_secret",
                &self.tickets.code_secret,
                &self.tickets.code_secret_file,
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
        problems.extend(self.unbuilt().into_iter().flat_map(|e| e.0));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Invalid(problems))
        }
    }

    /// Settings that name a backend this build does not have (see the crate's features).
    fn unbuilt(&self) -> Vec<Invalid> {
        let mut missing = Vec::new();
        if !cfg!(feature = "kafka") && self.kafka_brokers.is_some() {
            missing.push(Invalid::not_built("kafka_brokers", "kafka"));
        }
        if !cfg!(feature = "aws") {
            if self.auth.backend == AuthBackend::Cognito {
                missing.push(Invalid::not_built("auth.backend = cognito", "aws"));
            }
            if self.queue.driver == QueueDriver::Sqs {
                missing.push(Invalid::not_built("queue.driver = sqs", "aws"));
            }
            if self.chat.store == ChatStoreKind::Dynamodb {
                missing.push(Invalid::not_built("chat.store = dynamodb", "aws"));
            }
            if self.push.scheduler == PushSchedulerKind::Eventbridge {
                missing.push(Invalid::not_built("push.scheduler = eventbridge", "aws"));
            }
        }
        missing
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
