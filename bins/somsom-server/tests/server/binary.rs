//! The README's run command: the real binary, no config file and no services, in an empty
//! directory. It must serve `/healthz`, create its SQLite file under `./data/`, and exit cleanly
//! on SIGTERM.

use crate::common;

use std::process::Command;

#[tokio::test]
async fn binary_runs_on_the_embedded_default_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port differs from the default, so parallel tests never collide on 8080.
    let mut server = common::ServerProcess::spawn(dir.path(), &[]);
    let addr = server.addr.clone();
    let config_printed = server
        .startup
        .iter()
        .find(|e| e["message"] == "effective configuration")
        .map(|e| e["config"].to_string());
    let config_printed = config_printed.expect("the effective configuration is printed at start");
    assert!(
        config_printed.contains("sqlite://data/somsom.db"),
        "{config_printed}"
    );

    let body: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "UP");
    assert!(
        dir.path().join("data/somsom.db").exists(),
        "database file under ./data/"
    );

    let events = std::mem::replace(&mut server.events, std::sync::mpsc::channel().1);
    let status = server.terminate().await;
    assert!(status.success(), "graceful exit on SIGTERM, got {status}");
    let shutdown_logged = events
        .try_iter()
        .any(|e| e["message"] == "shutdown complete");
    assert!(shutdown_logged, "the shutdown is logged");
}

#[tokio::test]
async fn grant_admin_command_promotes_a_confirmed_user() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/data/somsom.db", dir.path().display());
    // Make a confirmed account through the library, as the server would.
    let codes = Arc::new(cognito_auth::sender::MemorySender::new());
    let config = somsom_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.clone(),
        ..Default::default()
    };
    let app = somsom_server::build_with(
        config,
        somsom_server::Overrides {
            code_sender: Some(codes.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // What a one-off command builds runs no worker: they wait for the server to serve.
    assert!(
        app.tasks().waiting() >= 4,
        "the queue driver, reminder planner and dispatcher, and reconciliation are registered, not started: {}",
        app.tasks().waiting()
    );
    let auth = app.state().auth.clone();
    auth.sign_up(cognito_auth::SignUp {
        email: "chief@example.com".into(),
        password: "Festival1!".into(),
        name: "chief".into(),
    })
    .await
    .unwrap();
    auth.confirm_sign_up(
        "chief@example.com",
        &codes.last_code("chief@example.com").unwrap(),
        None,
    )
    .await
    .unwrap();
    app.state().db.close().await;
    drop(app);

    let run = |email: &str| {
        Command::new(env!("CARGO_BIN_EXE_somsom-server"))
            .args(["grant-admin", email])
            .env("SOMSOM_DATABASE_URL", &database_url)
            .output()
            .unwrap()
    };
    let ok = run("chief@example.com");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let unknown = run("nobody@example.com");
    assert!(!unknown.status.success());

    let db = somsom_server::db::Database::connect(&database_url)
        .await
        .unwrap();
    let profile = {
        let app = somsom_server::build(somsom_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: database_url.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        app.state().auth.profile("chief@example.com").await.unwrap()
    };
    assert_eq!(profile.role, cognito_auth::Role::Admin);
    let user = somsom_server::auth::users::by_username(&db, &profile.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role, cognito_auth::Role::Admin);
}

#[tokio::test]
async fn provisioned_accounts_can_use_the_api_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_somsom-server"))
        .current_dir(dir.path())
        .env_remove("SOMSOM_DATABASE_URL")
        .env_remove("SOMSOM_REDIS_URL")
        .args(["provision-accounts", "--count", "3", "--prefix", "fan"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<(String, String)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (email, token) = l.split_once('\t').unwrap();
            (email.to_owned(), token.to_owned())
        })
        .collect();
    let emails: Vec<&str> = lines.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        emails,
        ["fan0@bench.local", "fan1@bench.local", "fan2@bench.local"]
    );

    let server = common::ServerProcess::spawn(dir.path(), &[]);
    let http = reqwest::Client::new();
    for (email, token) in &lines {
        let me: serde_json::Value = http
            .get(server.url("/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            me["profile"]["email"].as_str(),
            Some(email.as_str()),
            "{me}"
        );
    }
    assert!(server.terminate().await.success());
}
