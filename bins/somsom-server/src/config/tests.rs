//! Loading, layering, validating and redacting the configuration.
// figment's Jail returns its own (large) error type from every closure.
#![allow(clippy::result_large_err)]

use super::*;
use std::path::Path;

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
    let mut expected = vec![
        "http.trusted_proxies",
        "queue",
        "queue.token_secret",
        "set",
        "push.remind_at",
        "auth.backend",
    ];
    if !cfg!(feature = "aws") {
        // Cognito itself is left out of such a build.
        expected.push("auth.backend");
    }
    assert_eq!(named, expected, "{problems:?}");
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

#[test]
fn a_backend_left_out_of_the_build_is_refused_before_anything_connects() {
    let mut config = Config {
        kafka_brokers: Some("127.0.0.1:9092".into()),
        ..Config::default()
    };
    config.queue.driver = QueueDriver::Sqs;
    config.chat.store = ChatStoreKind::Dynamodb;
    config.push.scheduler = PushSchedulerKind::Eventbridge;
    let problems = config.validate().err().map(|e| e.0).unwrap_or_default();
    let refused = |setting: &str| problems.iter().any(|p| p.starts_with(setting));
    assert_eq!(
        refused("kafka_brokers"),
        !cfg!(feature = "kafka"),
        "{problems:?}"
    );
    for setting in ["queue.driver", "chat.store", "push.scheduler"] {
        assert_eq!(refused(setting), !cfg!(feature = "aws"), "{problems:?}");
    }
}
