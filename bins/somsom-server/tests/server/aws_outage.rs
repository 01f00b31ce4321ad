//! The AWS services going away under a running node: a node whose accounts are in Cognito and
//! whose chat messages are in DynamoDB, both on moto behind the black-hole proxy.
//!
//! While they are known to be down, a login and a chat history answer 503 with `Retry-After`
//! without asking AWS (the proxy sees nothing but the probes), signed-in users keep going (their
//! tokens are verified locally), and routes that need neither answer as usual. Once AWS is back
//! everything works again by itself.

use crate::common;
use crate::outage::Proxy;

use reqwest::Method;
use serde_json::{Value, json};

use common::{eventually, metric, start};

/// The AWS operations (`X-Amz-Target`) in what clients sent.
fn operations(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-target")
                .then(|| value.trim().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fails_fast_while_cognito_and_dynamodb_are_down_and_recovers_by_itself() {
    let endpoint = test_support::require_service!(test_support::AWS);
    let target = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let direct = somsom_server::config::AwsSettings {
        region: Some(std::env::var("AWS_REGION").unwrap_or_else(|_| "ap-northeast-2".into())),
        endpoint_url: Some(endpoint.clone()),
    };
    let (pool_id, client_id) = crate::auth::cognito_pool(&direct).await;
    let proxy = Proxy::start(&target).await;
    let table = test_support::unique_name("Message");
    let ctx = start(|c| {
        c.aws = somsom_server::config::AwsSettings {
            endpoint_url: Some(format!("http://{}", proxy.addr)),
            ..direct.clone()
        };
        c.auth.backend = somsom_server::config::AuthBackend::Cognito;
        c.auth.cognito.user_pool_id = pool_id.clone();
        c.auth.cognito.client_id = client_id.clone();
        c.chat.store = somsom_server::config::ChatStoreKind::Dynamodb;
        c.chat.dynamodb_table = table.clone();
        c.admin_emails = vec!["aws-admin@example.com".into()];
    })
    .await;
    let signed_in = async |email: &str| {
        ctx.signed_up(email).await;
        let (status, body) = ctx
            .post("/confirm-signup", json!({"email": email, "code": "123456"}))
            .await;
        assert_eq!(status, 200, "{body}");
        ctx.login(email).await["accessToken"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admin = signed_in("aws-admin@example.com").await;
    let fan = signed_in("aws-fan@example.com").await;
    let (status, created) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(json!({"title": "클라우드 축제", "description": "AWS", "startDate": "2099-05-01", "endDate": "2099-05-01"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let room = created["id"].as_i64().unwrap();
    let (status, _) = ctx
        .send(
            Method::POST,
            &format!("/festivals/chatting/{room}/join"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let history = format!("/festivals/chatting/{room}");
    assert_eq!(ctx.get(&history, Some(&fan)).await.0, 200);
    let base = ctx.server.url("");
    let up = |name: &str| format!(r#"somsom_dependency_up{{dependency="{name}"}}"#);
    let login = || {
        ctx.post(
            "/login",
            json!({"email": "aws-fan@example.com", "password": "Festival1!"}),
        )
    };

    // Figures for docs/benchmarks.md, printed, never asserted.
    let cut = std::time::Instant::now();
    proxy.set_blackhole(true);
    for name in ["cognito", "dynamodb"] {
        eventually(&format!("the node notices that {name} is gone"), || async {
            metric(&base, &up(name)).await == 0
        })
        .await;
    }
    let noticed = cut.elapsed();
    let (status, ready) = ctx.get("/readyz", None).await;
    assert_eq!(status, 200, "the node stays in the load balancer: {ready}");
    assert_eq!(ready["components"]["cognito"]["status"], "DOWN", "{ready}");
    assert_eq!(ready["components"]["dynamodb"]["status"], "DOWN", "{ready}");
    let before = proxy.swallowed().len();

    let down = std::time::Instant::now();
    for _ in 0..10 {
        let (status, body) = login().await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("SERVICE_UNAVAILABLE")),
            "{body}"
        );
        let response = ctx
            .http
            .get(ctx.server.url(&history))
            .bearer_auth(&fan)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert!(response.headers().contains_key("retry-after"));
    }
    let per_request = down.elapsed() / 20;
    // Signed-in users keep going where neither service is needed.
    assert_eq!(ctx.get("/verify-token", Some(&fan)).await.0, 200);
    assert_eq!(ctx.get("/festivals", None).await.0, 200);
    let asked: Vec<String> = operations(&proxy.swallowed()[before..])
        .into_iter()
        .filter(|op| !op.ends_with(".DescribeUserPool") && !op.ends_with(".DescribeTable"))
        .collect();
    assert!(
        asked.is_empty(),
        "requests asked AWS while it was known to be down: {asked:?}"
    );

    let back = std::time::Instant::now();
    proxy.set_blackhole(false);
    eventually("logins work again", || async { login().await.0 == 200 }).await;
    eventually("the history answers again", || async {
        ctx.get(&history, Some(&fan)).await.0 == 200
    })
    .await;
    let recovered = back.elapsed();
    for name in ["cognito", "dynamodb"] {
        assert_eq!(metric(&base, &up(name)).await, 1);
    }
    let (_, page): (u16, Value) = ctx.get(&history, Some(&fan)).await;
    assert!(page["messages"].is_array(), "{page}");
    eprintln!(
        "aws outage: noticed {} ms after the cut, then 503 in {} µs per request (HTTP), \
         back {} ms after AWS returned",
        noticed.as_millis(),
        per_request.as_micros(),
        recovered.as_millis()
    );
    ctx.server.shutdown().await;
}
