//! Clients for the shared services, built from configuration. Only the binary reads the
//! environment or builds AWS config; engines are handed these ready clients.

use std::time::Duration;

/// Why a configured backend could not be set up at start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Redis is configured but unreachable or misconfigured.
    #[error("redis at {url}: {source}")]
    Redis {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// The Kafka client could not be created.
    #[cfg(feature = "kafka")]
    #[error("kafka brokers {brokers}: {source}")]
    Kafka {
        /// The broker list.
        brokers: String,
        /// The driver's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

/// A Redis connection manager (reconnects by itself). Fails when Redis cannot be reached now:
/// a node that starts without its configured Redis should not pretend to be ready.
pub async fn redis(url: &str) -> Result<redis::aio::ConnectionManager, BackendError> {
    let wrap = |source| BackendError::Redis {
        url: crate::config::mask_url_password(url),
        source,
    };
    let client = redis::Client::open(url).map_err(wrap)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .map_err(wrap)
}

/// The shared Redis connection and whether Redis is known to be up: engines built on it ask it
/// only while it is ([`crate::outage`]).
#[derive(Clone)]
pub struct SharedRedis {
    /// The connection manager (reconnects by itself).
    pub connection: redis::aio::ConnectionManager,
    /// Redis's state, kept by a background probe and by the engines' errors.
    pub dependency: std::sync::Arc<crate::outage::Dependency>,
}

/// The librdkafka settings shared by every Kafka client of the server.
#[cfg(feature = "kafka")]
pub fn kafka_config(brokers: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "10000")
        .set("client.id", "somsom-server");
    config
}

/// The AWS SDK configuration: the standard chain (credentials, region, `AWS_ENDPOINT_URL`), with
/// the region and endpoint of `settings` taking precedence when set.
///
/// Every call is bounded ([`aws_timeouts`]): by default the SDK bounds only the connect, so a
/// service that accepts connections and never answers would hold a call indefinitely.
#[cfg(feature = "aws")]
pub async fn aws_config(settings: &crate::config::AwsSettings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(aws_timeouts(Duration::from_secs(5)));
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// Two seconds to connect, `attempt` for one try, three tries' worth for a whole call.
#[cfg(feature = "aws")]
pub fn aws_timeouts(attempt: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(attempt)
        .operation_timeout(attempt * 3)
        .build()
}

/// An SQS client for long polls (a receive may wait 20 s for messages by design).
#[cfg(feature = "aws")]
pub fn sqs_long_poll(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(aws_timeouts(Duration::from_secs(25)))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}
