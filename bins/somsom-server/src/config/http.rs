//! `[http]`, `[aws]` and `[log]`: what every route and backend shares.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::serde_with::{empty_is_none, empty_is_none_addr, string_or_list};

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
