//! Helpers shared by SomSom's tests (a dev-dependency only, never published).
//!
//! * [`service_url`] / [`require_service!`]: find a real service through one environment variable.
//!   When it is missing the test prints a loud skip line and returns, except under
//!   `SOMSOM_REQUIRE_SERVICES=1` (set by `.ci/run`), where a missing service fails the test.
//! * [`unique_name`]: a fresh name per test for key prefixes, topics, queues and tables, so tests
//!   run in parallel against one server without seeing each other's data.
//! * [`mysql::TestDatabase`]: a throwaway MySQL/MariaDB database per test.

pub mod mysql;
pub mod smtp;

use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that turns a missing service from a skip into a failure.
pub const REQUIRE_SERVICES: &str = "SOMSOM_REQUIRE_SERVICES";

/// Environment variable naming the Redis server for tests, e.g. `redis://127.0.0.1:6379`.
pub const REDIS: &str = "TEST_REDIS_URL";
/// Environment variable naming the MySQL/MariaDB server for tests, e.g. `mysql://root@127.0.0.1:3306`.
pub const MYSQL: &str = "TEST_MYSQL_URL";
/// Environment variable naming the Kafka-protocol brokers for tests, e.g. `127.0.0.1:19092`.
pub const KAFKA: &str = "TEST_KAFKA_BROKERS";
/// Environment variable naming the AWS endpoint (moto) for tests, e.g. `http://127.0.0.1:5000`.
pub const AWS: &str = "AWS_ENDPOINT_URL";
/// Environment variable naming a Python interpreter with PyJWT, for independent checks.
pub const PYTHON: &str = "TEST_PYTHON";
/// A `node_modules` folder holding `@stomp/stompjs` and `ws` (Node.js STOMP client tests).
pub const NODE_MODULES: &str = "TEST_NODE_MODULES";

/// Debian's `haproxy` binary, for the rolling-restart test behind a real load balancer.
pub const HAPROXY: &str = "TEST_HAPROXY";
/// The `tansu` broker binary, for tests that start a Kafka-protocol broker of their own (one
/// they can cut off behind a proxy that it advertises as its address).
pub const TANSU: &str = "TEST_TANSU";
/// Prometheus's `promtool`, which checks and unit-tests the alert rules in `deploy/`.
pub const PROMTOOL: &str = "TEST_PROMTOOL";

/// True when `.ci/run` (or a developer) demands that every service be present.
pub fn services_required() -> bool {
    matches!(
        std::env::var(REQUIRE_SERVICES).as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Looks up the service named by `var`.
///
/// Returns `None` after printing a loud skip line when it is not set, and panics instead when
/// [`services_required`] is true: under CI a missing service is a failure, never a skip.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ if services_required() => panic!(
            "{test}: {var} is not set but {REQUIRE_SERVICES}=1 requires every service \
             (run the tests through scripts/test.sh, which starts them)"
        ),
        _ => {
            eprintln!(
                "\n!!!!!!!! SKIPPED {test}: {var} is not set, so this test did not run against \
                 a real service. Set {var} (scripts/test.sh does) or {REQUIRE_SERVICES}=1 to fail instead.\n"
            );
            None
        }
    }
}

/// `let Some(url) = require_service!(TEST_REDIS_URL) else { return };` in one line:
/// evaluates to the service URL, or returns from the test after a loud skip line.
#[macro_export]
macro_rules! require_service {
    ($var:expr) => {
        match $crate::service_url($var, module_path!()) {
            Some(url) => url,
            None => return,
        }
    };
}

/// A name no other test (in this process or another) will use: `prefix` plus process id,
/// a counter and random bits. Contains only `[a-z0-9_]`, so it is valid as a Redis key prefix, a
/// SQL identifier, a Kafka topic, an SQS queue or a DynamoDB table name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{n}_{}", std::process::id(), &random[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_identifier_safe() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
        assert!(a.starts_with("t_"));
    }
}
