//! The festival routes over a real socket: admin-only create (JSON, form and query forms),
//! listing and search with the seed's shapes and cursor, cache invalidation, and bad input.

use crate::common;

use reqwest::Method;
use serde_json::{Value, json};

use common::{festival_ids as ids, start};

fn festival(title: &str, description: &str) -> Value {
    json!({"title": title, "description": description,
           "startDate": "2027-01-10", "endDate": "2027-01-12"})
}

#[tokio::test]
async fn admins_create_and_everyone_lists_finds_and_reads() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let user = ctx.user_token("fan@example.com").await;

    // Only admins create; without a token it is 401, as a user 403.
    let body = festival("여의도 불꽃축제", "서울의 가을 밤하늘을 수놓는 불꽃");
    let (status, answer) = ctx
        .send(Method::POST, "/festivals/create", None, Some(body.clone()))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (status, answer) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&user),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );

    let (status, fireworks) = ctx
        .send(Method::POST, "/festivals/create", Some(&admin), Some(body))
        .await;
    assert_eq!(status, 201, "{fireworks}");
    assert_eq!(fireworks["name"], "여의도 불꽃축제");
    assert_eq!(fireworks["startDate"], "2027-01-10");

    // The seed's clients sent form fields or query parameters.
    let form = ctx
        .http
        .post(ctx.server.url("/festivals/create"))
        .bearer_auth(&admin)
        .form(&[
            ("title", "Busan Sea Festival"),
            ("description", "해운대 바다 축제"),
            ("startDate", "2027-07-01"),
            ("endDate", "2027-07-03"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 201);
    let sea: Value = form.json().await.unwrap();
    let (status, lantern) = ctx
        .send(
            Method::POST,
            "/api/festivals/create?title=Seoul%20Lantern&description=%EC%B2%AD%EA%B3%84%EC%B2%9C%20%EC%B6%95%EC%A0%9C&startDate=2027-11-01&endDate=2027-11-01",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 201, "{lantern}");

    // Newest first, with the seed's shape and cursor.
    let (status, page) = ctx
        .send(Method::GET, "/festivals?limit=2", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&page),
        [lantern["id"].as_i64().unwrap(), sea["id"].as_i64().unwrap()]
    );
    assert_eq!(page["hasNext"], true);
    assert_eq!(page["lastId"], sea["id"]);
    let preview = &page["festivals"][0];
    let mut keys: Vec<&str> = preview
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "description",
            "endDate",
            "id",
            "name",
            "saleClosesAt",
            "saleOpensAt",
            "saleQueued",
            "saleState",
            "startDate"
        ],
        "the seed's fields and the sale's"
    );
    assert_eq!(
        (
            preview["saleState"].as_str(),
            preview["saleQueued"].as_bool()
        ),
        (Some("ON_SALE"), Some(true)),
        "on sale from its creation, behind the waiting room"
    );
    let (_, rest) = ctx
        .send(
            Method::GET,
            &format!("/festivals?lastId={}&limit=2", sea["id"]),
            None,
            None,
        )
        .await;
    assert_eq!(ids(&rest), [fireworks["id"].as_i64().unwrap()]);
    assert_eq!(
        (rest["hasNext"].clone(), rest["lastId"].clone()),
        (json!(false), Value::Null)
    );

    // Detail.
    let (status, detail) = ctx
        .send(
            Method::GET,
            &format!("/festivals/{}", fireworks["id"]),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(detail["description"], "서울의 가을 밤하늘을 수놓는 불꽃");

    // Search: Korean syllables, case, description.
    let search = |q: &'static str| {
        let ctx = &ctx;
        async move {
            let (status, body) = ctx
                .send(Method::GET, &format!("/festivals/search?{q}"), None, None)
                .await;
            assert_eq!(status, 200, "{q}: {body}");
            ids(&body)
        }
    };
    let (f, s, l) = (
        fireworks["id"].as_i64().unwrap(),
        sea["id"].as_i64().unwrap(),
        lantern["id"].as_i64().unwrap(),
    );
    assert_eq!(search("keyword=%EC%B6%95%EC%A0%9C").await, [l, s, f]); // 축제
    assert_eq!(search("keyword=%EB%B6%88%EA%BD%83").await, [f]); // 불꽃
    assert_eq!(search("keyword=SEOUL").await, [l]);
    assert_eq!(search("keyword=busan&limit=1").await, [s]);
    assert_eq!(search("keyword=nothing-like-this").await, Vec::<i64>::new());
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn search_answers_are_cached_and_every_change_invalidates_them() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let base = ctx.server.url("");
    let metric = |name: &'static str| {
        let sample = format!("somsom_{name}_total{{cache=\"festival_search\"}}");
        let base = base.clone();
        async move { common::metric(&base, &sample).await }
    };
    let (_, first) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(festival("진해 군항제", "벚꽃")),
        )
        .await;
    let url = "/festivals/search?keyword=%EB%B2%9A%EA%BD%83"; // 벚꽃
    let (_, one) = ctx.send(Method::GET, url, None, None).await;
    let (_, again) = ctx.send(Method::GET, url, None, None).await;
    assert_eq!(one, again);
    assert_eq!(ids(&one), [first["id"].as_i64().unwrap()]);
    assert_eq!(
        (metric("cache_misses").await, metric("cache_hits").await),
        (1, 1)
    );

    // A new festival shows up in the very next search.
    let (_, second) = ctx
        .send(
            Method::POST,
            "/festivals/create",
            Some(&admin),
            Some(festival("여좌천 벚꽃길", "")),
        )
        .await;
    let (_, after_create) = ctx.send(Method::GET, url, None, None).await;
    assert_eq!(
        ids(&after_create),
        [
            second["id"].as_i64().unwrap(),
            first["id"].as_i64().unwrap()
        ]
    );
    // So does a rename.
    let (status, _) = ctx
        .send(
            Method::PATCH,
            &format!("/festivals/{}", first["id"]),
            Some(&admin),
            Some(json!({"name": "진해 군항제", "description": "해군 행사"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, after_update) = ctx.send(Method::GET, url, None, None).await;
    assert_eq!(ids(&after_update), [second["id"].as_i64().unwrap()]);
    assert_eq!(metric("cache_misses").await, 3);
    ctx.server.shutdown().await;
}

/// Method, path, body, expected status, fields named in `errors`.
type Case = (Method, String, Option<Value>, u16, Vec<&'static str>);

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_unknown_ids_404() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let field = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_object()
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default()
    };
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/festivals/search".into(),
            None,
            400,
            vec!["keyword"],
        ),
        (
            Method::GET,
            "/festivals/search?keyword=".into(),
            None,
            400,
            vec!["keyword"],
        ),
        (
            Method::GET,
            "/festivals/search?keyword=%20%20".into(),
            None,
            400,
            vec!["keyword"],
        ),
        (
            Method::GET,
            format!("/festivals/search?keyword={}", "a".repeat(51)),
            None,
            400,
            vec!["keyword"],
        ),
        (
            Method::GET,
            "/festivals/search?keyword=a&limit=0".into(),
            None,
            400,
            vec!["limit"],
        ),
        (
            Method::GET,
            "/festivals?limit=101".into(),
            None,
            400,
            vec!["limit"],
        ),
        (
            Method::GET,
            "/festivals?limit=ten".into(),
            None,
            400,
            vec!["limit"],
        ),
        (
            Method::GET,
            "/festivals?lastId=-3".into(),
            None,
            400,
            vec!["lastId"],
        ),
        (
            Method::GET,
            "/festivals/abc".into(),
            None,
            400,
            vec!["festivalId"],
        ),
        (
            Method::POST,
            "/festivals/create".into(),
            Some(json!({})),
            400,
            vec!["endDate", "startDate", "title"],
        ),
        (
            Method::POST,
            "/festivals/create".into(),
            Some(json!({"title": "t", "startDate": "2027-01-10", "endDate": "2027-01-09"})),
            400,
            vec!["endDate"],
        ),
        (
            Method::POST,
            "/festivals/create".into(),
            Some(json!({"title": "t", "startDate": "10/01/2027", "endDate": "2027-01-09"})),
            400,
            vec!["startDate"],
        ),
        (
            Method::POST,
            "/festivals/create".into(),
            Some(
                json!({"title": "가".repeat(101), "startDate": "2027-01-10", "endDate": "2027-01-10"}),
            ),
            400,
            vec!["name"],
        ),
        (
            Method::POST,
            "/festivals/create".into(),
            Some(
                json!({"title": "t", "description": "d".repeat(2001), "startDate": "2027-01-10", "endDate": "2027-01-10"}),
            ),
            400,
            vec!["description"],
        ),
        (
            Method::PATCH,
            "/festivals/1".into(),
            Some(json!({"name": " "})),
            400,
            vec!["name"],
        ),
    ];
    for (method, path, body, status, fields) in cases {
        let (got, answer) = ctx.send(method.clone(), &path, Some(&admin), body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_eq!(answer["status"], status, "{answer}");
        assert_eq!(field(&answer), fields, "{method} {path}: {answer}");
    }
    for path in ["/festivals/999", "/festivals?lastId=999"] {
        let (status, answer) = ctx.send(Method::GET, path, None, None).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (404, Some("FESTIVAL_NOT_FOUND")),
            "{path}"
        );
        assert_eq!(answer["message"], "존재하지 않는 축제입니다.");
    }
    let (status, answer) = ctx
        .send(
            Method::PATCH,
            "/festivals/999",
            Some(&admin),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("FESTIVAL_NOT_FOUND"))
    );
    ctx.server.shutdown().await;
}

/// A form body and the query string are both request parameters, as in the seed's Spring
/// binding: fields split between them make one festival, and a field in both is refused.
#[tokio::test]
async fn create_reads_a_form_body_and_the_query_string_together() {
    let ctx = start(|_| {}).await;
    let admin = ctx.admin_token("admin@example.com").await;
    let split = ctx
        .http
        .post(
            ctx.server
                .url("/festivals/create?startDate=2027-07-01&endDate=2027-07-03"),
        )
        .bearer_auth(&admin)
        .form(&[("title", "Gangneung Coffee"), ("description", "커피 축제")])
        .send()
        .await
        .unwrap();
    assert_eq!(split.status().as_u16(), 201);
    let created: Value = split.json().await.unwrap();
    assert_eq!(created["name"], "Gangneung Coffee");
    assert_eq!(created["startDate"], "2027-07-01");

    let twice = ctx
        .http
        .post(
            ctx.server
                .url("/festivals/create?title=A&startDate=2027-07-01&endDate=2027-07-01"),
        )
        .bearer_auth(&admin)
        .form(&[("title", "B")])
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status().as_u16(), 400);
    let error: Value = twice.json().await.unwrap();
    assert_eq!(error["code"], "BAD_REQUEST", "{error}");
}
