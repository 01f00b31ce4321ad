//! Two server nodes on one MariaDB and one Redis, as when scaled out: one catalog, one search
//! cache whose invalidations both see at once, one ticket stock that is never oversold.

use crate::common;

use reqwest::Method;
use serde_json::{Value, json};
use test_support::mysql::TestDatabase;
use test_support::{MYSQL, REDIS, require_service, unique_name};

use common::{Ctx, festival_ids as ids, start};

async fn hits(node: &Ctx) -> u64 {
    let sample = "somsom_cache_hits_total{cache=\"festival_search\"}";
    common::metric(&node.server.url(""), sample).await
}

/// Two nodes on a fresh MariaDB database and their own Redis key prefix (the database lives as
/// long as the returned guard).
async fn two_nodes(mysql: &str, redis: &str) -> (Ctx, Ctx, TestDatabase) {
    let db = TestDatabase::create(mysql).await.unwrap();
    let prefix = format!("{}:", unique_name("nodes"));
    let tweak = |c: &mut somsom_server::Config| {
        c.database_url = db.url().to_owned();
        c.redis_url = Some(redis.to_owned());
        c.redis_key_prefix = prefix.clone();
    };
    let a = start(tweak).await;
    let b = start(tweak).await;
    (a, b, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_the_catalog_the_search_cache_and_the_stock() {
    let mysql = require_service!(MYSQL);
    let redis = require_service!(REDIS);
    let (a, b, db) = two_nodes(&mysql, &redis).await;
    let admin = a.admin_token("admin@example.com").await;

    let create =
        |title: &'static str| {
            let (a, admin) = (&a, admin.clone());
            async move {
                let (status, body) = a
                .send(
                    Method::POST,
                    "/festivals/create",
                    Some(&admin),
                    Some(json!({"title": title, "startDate": "2099-09-09", "endDate": "2099-09-09",
                                "ticketsPerDay": 30, "saleQueued": false})),
                )
                .await;
                assert_eq!(status, 201, "{body}");
                body["id"].as_i64().unwrap()
            }
        };
    let first = create("분산 축제").await;
    let search = "/festivals/search?keyword=%EB%B6%84%EC%82%B0"; // 분산
    let (_, found) = b.send(Method::GET, search, None, None).await;
    assert_eq!(ids(&found), [first]);
    let (_, again) = b.send(Method::GET, search, None, None).await;
    assert_eq!(again, found);
    assert_eq!(
        hits(&b).await,
        1,
        "the second search on node b is a cache hit"
    );

    // Created on node a; node b's very next search sees it (one Redis generation counter).
    let second = create("분산 불꽃놀이").await;
    let (_, fresh) = b.send(Method::GET, search, None, None).await;
    assert_eq!(ids(&fresh), [second, first]);

    // Buyers on both nodes, one stock.
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(a.user_token(&format!("buyer{i}@example.com")).await);
    }
    let urls = [a.server.url(""), b.server.url("")];
    let sold = common::buy_concurrently(&urls, &tokens, first, "2099-09-09", 2).await;
    assert!(sold <= 30);
    for node in [&a, &b] {
        let (_, detail) = node
            .send(Method::GET, &format!("/festivals/{first}"), None, None)
            .await;
        assert_eq!(
            detail["days"][0]["leftTickets"].as_i64().unwrap(),
            30 - sold
        );
    }
    a.server.shutdown().await;
    b.server.shutdown().await;
    db.drop_database().await.unwrap();
}

/// The same stock sold through two server processes (two OS processes, as deployed) on one
/// MariaDB: 40 buyers, 120 attempts, 50 tickets — never more sold than exist, and both processes
/// report the same stock afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_on_one_mariadb_never_oversell() {
    let mysql = require_service!(MYSQL);
    let db = TestDatabase::create(&mysql).await.unwrap();
    // Accounts and the festival are made through an in-process node on the same database;
    // tokens are signed with the key stored there, so both processes accept them.
    let setup = start(|c| {
        c.database_url = db.url().to_owned();
        // 40 sign-ups from one address.
        c.auth.attempts_per_address_per_minute = 10_000;
        c.auth.signups_per_address_per_hour = 10_000;
    })
    .await;
    let admin = setup.admin_token("admin@example.com").await;
    let (status, festival) = setup
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(json!({"title": "프로세스 두 개", "startDate": "2099-10-10", "endDate": "2099-10-10",
                        "ticketsPerDay": 50, "saleQueued": false})),
        )
        .await;
    assert_eq!(status, 201, "{festival}");
    let id = festival["id"].as_i64().unwrap();
    let mut tokens = Vec::new();
    for i in 0..40 {
        tokens.push(setup.user_token(&format!("p{i}@example.com")).await);
    }
    setup.server.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let envs = [("SOMSOM_DATABASE_URL", db.url())];
    let processes = [
        common::ServerProcess::spawn(dir.path(), &envs),
        common::ServerProcess::spawn(dir.path(), &envs),
    ];
    let urls = [processes[0].url(""), processes[1].url("")];
    let sold = common::buy_concurrently(&urls, &tokens, id, "2099-10-10", 2).await;
    let http = reqwest::Client::new();
    assert!(sold <= 50, "sold {sold} of 50");
    assert!(
        sold >= 45,
        "120 attempts for 50 tickets should nearly sell out, sold {sold}"
    );
    for process in &processes {
        let detail: Value = http
            .get(process.url(&format!("/festivals/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            detail["days"][0]["leftTickets"].as_i64().unwrap(),
            50 - sold
        );
    }
    for process in processes {
        assert!(process.terminate().await.success());
    }
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_waiting_room_and_trust_each_others_admission_tokens() {
    let mysql = require_service!(MYSQL);
    let redis = require_service!(REDIS);
    let (a, b, _db) = two_nodes(&mysql, &redis).await;
    let admin = a.admin_token("admin@example.com").await;
    let (_, created) = a
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(json!({"title": "줄서기", "startDate": "2099-09-09", "endDate": "2099-09-09"})),
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    let (status, _) = a
        .send(
            Method::PUT,
            &format!("/admin/queues/festival{id}"),
            Some(&admin),
            Some(json!({"batchSize": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = b
        .send(
            Method::POST,
            &format!("/admin/queues/festival{id}/pause"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200);

    // Joins alternate between the nodes; ranks are one line.
    let mut tokens = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        let email = format!("fan{i}@example.com");
        let token = a.user_token(&email).await;
        let (_, body) = node
            .get(
                &format!("/queues/festival{id}/waiting-room/users/{email}"),
                Some(&token),
            )
            .await;
        assert_eq!(
            (body["allowed"].as_bool(), body["rank"].as_i64()),
            (Some(false), Some(i + 1))
        );
        tokens.push((email, token));
    }
    let (email, token) = &tokens[5];
    let (_, body) = a
        .get(
            &format!("/queues/festival{id}/users/{email}/rank"),
            Some(token),
        )
        .await;
    assert_eq!(body["rank"], 6);

    let (status, _) = b
        .send(
            Method::POST,
            &format!("/admin/queues/festival{id}/admit?count=1"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (email, token) = &tokens[0];
    let res = a
        .http
        .get(
            a.server
                .url(&format!("/queues/festival{id}/users/{email}/allowed")),
        )
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let admission = res.headers()["admission-token"]
        .to_str()
        .unwrap()
        .to_owned();
    // Issued by node a, accepted by node b: the token key is shared through the database.
    let res = b
        .http
        .post(b.server.url("/reservations"))
        .bearer_auth(token)
        .header("Admission-Token", &admission)
        .json(&json!({"festivalId": id, "festivalDate": "2099-09-09"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, stats) = a
        .get(&format!("/admin/queues/festival{id}"), Some(&admin))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            stats["waiting"].as_u64(),
            stats["admitted"].as_u64(),
            stats["admissionsConsumed"].as_u64()
        ),
        (Some(5), Some(0), Some(1)),
        "the booking used the admission up: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_out_on_one_node_ends_the_session_on_the_other() {
    let mysql = require_service!(MYSQL);
    let db = TestDatabase::create(&mysql).await.unwrap();
    let url = db.url().to_owned();
    let a = start(|c| c.database_url = url.clone()).await;
    // Node b trusts no session from memory, so the sign-out on node a must reach it at once.
    let b = start(|c| {
        c.database_url = url.clone();
        c.auth.session_cache_secs = 0;
    })
    .await;
    let token = a.user_token("leaving@example.com").await;
    for node in [&a, &b] {
        assert_eq!(node.get("/verify-token", Some(&token)).await.0, 200);
    }
    let res = a
        .http
        .post(a.server.url("/signout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for node in [&a, &b] {
        let (status, body) = node.get("/verify-token", Some(&token)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("TOKEN_VERIFICATION_FAILED")),
            "the node that signed out trusts nothing cached, and b caches nothing"
        );
    }
}
