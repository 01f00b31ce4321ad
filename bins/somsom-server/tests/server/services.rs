//! One smoke test per shared service, through the same client builders the server uses: each
//! connects and round-trips one value. Without the service's variable a test skips loudly; under
//! `SOMSOM_REQUIRE_SERVICES=1` it fails.

use crate::common;

use std::time::Duration;

use aws_config::SdkConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use somsom_server::backends;
use somsom_server::config::AwsSettings;
use somsom_server::db::Database;
use test_support::{AWS, KAFKA, MYSQL, REDIS, require_service, unique_name};

#[tokio::test]
async fn redis_round_trip() {
    let url = require_service!(REDIS);
    let mut redis = backends::redis(&url).await.unwrap();
    let key = unique_name("somsom_test");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("솜솜")
        .arg("EX")
        .arg(60)
        .query_async(&mut redis)
        .await
        .unwrap();
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(value, "솜솜");
}

#[tokio::test]
async fn mysql_migrates_and_round_trips() {
    let server = require_service!(MYSQL);
    let test_db = test_support::mysql::TestDatabase::create(&server)
        .await
        .unwrap();
    let db = Database::connect(test_db.url()).await.unwrap();
    assert_eq!(db.kind(), "mysql");
    db.migrate().await.unwrap();
    db.migrate().await.expect("migrations are idempotent");
    let Database::MySql(pool) = &db else {
        unreachable!()
    };
    sqlx::query("INSERT INTO users (name, username, email) VALUES (?, ?, ?)")
        .bind("솜솜")
        .bind("u-1")
        .bind("somsom@example.com")
        .execute(pool)
        .await
        .unwrap();
    let (name, role): (String, String) =
        sqlx::query_as("SELECT name, role FROM users WHERE email = ?")
            .bind("somsom@example.com")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((name.as_str(), role.as_str()), ("솜솜", "USER"));
    db.close().await;
    test_db.drop_database().await.unwrap();
}

#[tokio::test]
async fn kafka_round_trip() {
    let brokers = require_service!(KAFKA);
    let topic = unique_name("somsom_test");
    let config = backends::kafka_config(&brokers);

    let admin: AdminClient<_> = config.create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = config
        .clone()
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic)
                .key("chatRoomId1")
                .payload("안녕하세요"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    let consumer: StreamConsumer = config
        .clone()
        .set("group.id", unique_name("somsom_test_group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("the message arrives")
        .unwrap();
    assert_eq!(message.key(), Some(&b"chatRoomId1"[..]));
    assert_eq!(
        message.payload_view::<str>().unwrap().unwrap(),
        "안녕하세요"
    );
}

async fn aws() -> Option<SdkConfig> {
    let endpoint = test_support::service_url(AWS, "aws")?;
    let settings = AwsSettings {
        region: Some(std::env::var("AWS_REGION").unwrap_or_else(|_| "ap-northeast-2".into())),
        endpoint_url: Some(endpoint),
    };
    let config = backends::aws_config(&settings).await;
    assert!(
        config.credentials_provider().is_some(),
        "AWS credentials come from the standard chain (scripts/test.sh sets test ones)"
    );
    Some(config)
}

#[tokio::test]
async fn sqs_round_trip() {
    let Some(config) = aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name(unique_name("somsom_test"))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap();
    sqs.send_message()
        .queue_url(url)
        .message_body("대기열 입장")
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let bodies: Vec<_> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies, ["대기열 입장"]);
    sqs.delete_queue().queue_url(url).send().await.unwrap();
}

#[tokio::test]
async fn sns_to_sqs_round_trip() {
    let Some(config) = aws().await else { return };
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic_arn = sns
        .create_topic()
        .name(unique_name("somsom_test"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("somsom_test"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    sns.publish()
        .topic_arn(&topic_arn)
        .message("내일 축제가 시작됩니다")
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let bodies: Vec<_> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies, ["내일 축제가 시작됩니다"]);
}

#[tokio::test]
async fn dynamodb_round_trip() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    let Some(config) = aws().await else { return };
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("somsom_test");
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::N)
            .build()
            .unwrap()
    };
    dynamo
        .create_table()
        .table_name(&table)
        .key_schema(key("chatRoomId", KeyType::Hash))
        .key_schema(key("sendTime", KeyType::Range))
        .attribute_definitions(attr("chatRoomId"))
        .attribute_definitions(attr("sendTime"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    dynamo
        .put_item()
        .table_name(&table)
        .item("chatRoomId", AttributeValue::N("1".into()))
        .item("sendTime", AttributeValue::N("1732860000000".into()))
        .item("content", AttributeValue::S("반가워요".into()))
        .send()
        .await
        .unwrap();
    let item = dynamo
        .get_item()
        .table_name(&table)
        .key("chatRoomId", AttributeValue::N("1".into()))
        .key("sendTime", AttributeValue::N("1732860000000".into()))
        .send()
        .await
        .unwrap();
    let content = item
        .item()
        .and_then(|i| i.get("content"))
        .and_then(|v| v.as_s().ok());
    assert_eq!(content.map(String::as_str), Some("반가워요"));
    dynamo
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn cognito_round_trip() {
    use aws_sdk_cognitoidentityprovider::types::{
        AttributeType, AuthFlowType, ExplicitAuthFlowsType,
    };
    let Some(config) = aws().await else { return };
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&config);
    let pool = cognito
        .create_user_pool()
        .pool_name(unique_name("somsom_test"))
        .send()
        .await
        .unwrap();
    let pool_id = pool.user_pool().and_then(|p| p.id()).unwrap().to_owned();
    let client = cognito
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name("somsom")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .unwrap();
    let client_id = client
        .user_pool_client()
        .and_then(|c| c.client_id())
        .unwrap()
        .to_owned();
    let email = format!("{}@example.com", unique_name("user"));
    cognito
        .sign_up()
        .client_id(&client_id)
        .username(&email)
        .password("Passw0rd!")
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value(&email)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    cognito
        .admin_confirm_sign_up()
        .user_pool_id(&pool_id)
        .username(&email)
        .send()
        .await
        .unwrap();
    let auth = cognito
        .initiate_auth()
        .client_id(&client_id)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", &email)
        .auth_parameters("PASSWORD", "Passw0rd!")
        .send()
        .await
        .unwrap();
    let access = auth
        .authentication_result()
        .and_then(|r| r.access_token())
        .unwrap();
    let user = cognito
        .get_user()
        .access_token(access)
        .send()
        .await
        .unwrap();
    let got_email = user
        .user_attributes()
        .iter()
        .find(|a| a.name() == "email")
        .and_then(|a| a.value());
    assert_eq!(got_email, Some(email.as_str()));
    cognito
        .delete_user_pool()
        .user_pool_id(&pool_id)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn readiness_reports_configured_redis_and_kafka() {
    let redis_url = require_service!(REDIS);
    let brokers = require_service!(KAFKA);
    let dir = tempfile::tempdir().unwrap();
    let config = somsom_server::Config {
        redis_url: Some(redis_url),
        kafka_brokers: Some(brokers),
        ..common::config_in(dir.path())
    };
    let server = common::spawn(somsom_server::build(config).await.unwrap());
    let ready: serde_json::Value = reqwest::get(server.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "UP", "{ready}");
    for component in ["database", "redis", "kafka"] {
        assert_eq!(ready["components"][component]["status"], "UP", "{ready}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_node_does_not_start_when_its_kafka_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens there. The chat relay needs its topics
    // before the node can serve, so the node refuses to start rather than pretend.
    let config = somsom_server::Config {
        kafka_brokers: Some("127.0.0.1:9".into()),
        ..common::config_in(dir.path())
    };
    let Err(error) = somsom_server::build(config).await else {
        panic!("a node without its Kafka must not start");
    };
    assert!(error.report().contains("kafka"), "{}", error.report());
}
