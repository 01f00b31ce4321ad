//! The AWS path against moto (`AWS_ENDPOINT_URL`): EventBridge Scheduler schedules, and the
//! SNS → SQS → dispatcher path fed by what a schedule publishes when it fires (moto stores
//! schedules but never fires them, so the tests publish as the schedule would).
#![cfg(feature = "aws")]

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use push_notify::aws::{EventBridgeScheduler, SqsSource, Topology};
use push_notify::conformance::{self, schedule::Harness};
use push_notify::send::RecordingSender;
use push_notify::{
    Device, DeviceRegistry, DeviceType, Dispatcher, Ledger, MemoryLedger, MemoryRegistry, Scheduler,
};
use test_support::{AWS, require_service, unique_name};

struct Aws {
    scheduler: aws_sdk_scheduler::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
}

async fn aws() -> Aws {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    Aws {
        scheduler: aws_sdk_scheduler::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
    }
}

const ROLE: &str = "arn:aws:iam::123456789012:role/somsom-scheduler";

/// A fresh topic, queue and schedule group.
async fn path(aws: &Aws) -> (EventBridgeScheduler, SqsSource) {
    let name = unique_name("push").replace('_', "-");
    let topology = Topology::ensure(&aws.sns, &aws.sqs, &name, &name)
        .await
        .unwrap();
    // Ensuring twice is harmless (every node does it at start).
    assert_eq!(
        Topology::ensure(&aws.sns, &aws.sqs, &name, &name)
            .await
            .unwrap(),
        topology
    );
    let scheduler = EventBridgeScheduler::new(
        aws.scheduler.clone(),
        aws.sns.clone(),
        &name,
        &topology.topic_arn,
        ROLE,
    );
    scheduler.ensure_group().await.unwrap();
    scheduler.ensure_group().await.unwrap();
    let source =
        SqsSource::new(aws.sqs.clone(), &topology.queue_url).with_wait(Duration::from_millis(200));
    (scheduler, source)
}

#[tokio::test]
async fn eventbridge_schedules_are_created_and_deleted() {
    let _ = require_service!(AWS);
    let aws = aws().await;
    let (scheduler, _) = path(&aws).await;
    conformance::schedule::scheduler_checks(&scheduler, chrono::Utc::now()).await;

    // What EventBridge holds: a one-time schedule at the due time (UTC), targeting the topic
    // with the reminder as input, deleted after it fires.
    let r = conformance::reminder(
        conformance::fresh_user(),
        9,
        chrono::Utc::now() + chrono::Duration::days(2),
    );
    assert!(scheduler.schedule(&r).await.unwrap());
    let group = aws
        .scheduler
        .list_schedules()
        .name_prefix(r.key.id())
        .send()
        .await
        .unwrap();
    let group_name = group.schedules()[0].group_name().unwrap().to_owned();
    let got = aws
        .scheduler
        .get_schedule()
        .name(r.key.id())
        .group_name(&group_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.schedule_expression(),
        Some(format!("at({})", r.due.format("%Y-%m-%dT%H:%M:%S")).as_str())
    );
    assert_eq!(got.schedule_expression_timezone(), Some("UTC"));
    let target = got.target().unwrap();
    assert!(target.arn().contains(":sns:"), "{}", target.arn());
    assert_eq!(target.role_arn(), ROLE);
    let input: push_notify::Reminder = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(input, r);
    assert!(scheduler.cancel(&r.key).await.unwrap());
    assert!(
        aws.scheduler
            .get_schedule()
            .name(r.key.id())
            .group_name(&group_name)
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_passes_the_due_source_suite() {
    let _ = require_service!(AWS);
    let aws = Arc::new(aws().await);
    conformance::schedule::run_all(&move || {
        let aws = aws.clone();
        async move {
            let (scheduler, source) = path(&aws).await;
            Harness {
                scheduler: Arc::new(scheduler),
                source: Arc::new(source),
                now: Box::new(chrono::Utc::now),
                advance: Box::new(|d| tokio::time::sleep(d).boxed()),
                manual_time: false,
                lease: Duration::from_secs(3),
                fences_stale_receipts: false,
                exclusive_claims: false,
            }
        }
        .boxed()
    })
    .await;
}

/// A fired schedule's message reaches the dispatcher through SNS and SQS and is sent once;
/// the same message delivered again (SQS is at-least-once) sends nothing more.
#[tokio::test]
async fn a_fired_schedule_is_sent_once() {
    let _ = require_service!(AWS);
    let aws = aws().await;
    let (scheduler, source) = path(&aws).await;
    let registry = Arc::new(MemoryRegistry::new());
    let user = conformance::fresh_user();
    for token in ["phone", "laptop"] {
        registry
            .activate(Device {
                user,
                token: token.into(),
                device_type: DeviceType::Mobile,
            })
            .await
            .unwrap();
    }
    let sink = RecordingSender::new();
    let ledger = Arc::new(MemoryLedger::new());
    let dispatcher = Dispatcher::new(
        Arc::new(source),
        registry,
        ledger.clone(),
        Arc::new(sink.clone()),
    );
    let r = conformance::reminder(user, 4, chrono::Utc::now());
    // Due now: published at once, as the schedule does when it fires.
    scheduler.schedule(&r).await.unwrap();
    let round = dispatcher.round().await.unwrap();
    assert_eq!(
        (round.claimed, round.sends, round.delivered),
        (1, 2, 1),
        "{round:?}"
    );
    scheduler.schedule(&r).await.unwrap();
    let round = dispatcher.round().await.unwrap();
    assert_eq!(
        (round.claimed, round.sends, round.delivered),
        (1, 0, 1),
        "{round:?}"
    );
    assert_eq!(sink.len(), 2);
    assert_eq!(
        dispatcher.round().await.unwrap().claimed,
        0,
        "the queue is empty"
    );
    assert_eq!(ledger.recent(user, 10).await.unwrap().len(), 1);
}
