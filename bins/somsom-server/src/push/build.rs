//! Building reminders from configuration: the device store, the plan, the senders, and the
//! planner, reconciliation and dispatcher tasks.

use std::sync::Arc;
use std::time::Duration;

use cognito_auth::Clock;

use crate::application::{BuildError, engine_failed, secret_error};

use crate::config::{Config, PushSchedulerKind};
use crate::db::Database;
use crate::tasks::Tasks;

/// What the reminders are planned from and reported to.
pub(crate) struct Inputs {
    /// Bookings, which reminders follow.
    pub tickets: Arc<dyn ticket_lock::TicketEngine>,
    /// Festivals, for the reminders' text.
    pub catalog: Arc<dyn festival_catalog::Catalog>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// A sender replacing the configured one (tests).
    pub sender: Option<Arc<dyn push_notify::Sender>>,
    /// Dispatch rounds are counted here.
    pub activity: Arc<crate::metrics::Activity>,
}

/// Reminders: devices, the ledger and (with `scheduler = "sql"`) the plan in the server's
/// database, or the plan on EventBridge Scheduler feeding an SQS queue; the planner task that
/// follows reservations, a reconciliation at start, and this node's dispatcher.
pub(crate) async fn build(
    config: &Config,
    db: &Database,
    inputs: Inputs,
    tasks: &Tasks,
) -> Result<crate::push::Push, BuildError> {
    let Inputs {
        tickets,
        catalog,
        clock,
        sender,
        activity,
    } = inputs;
    use push_notify::send::Route;
    use push_notify::send::fcm::{FcmSender, ServiceAccount};
    use push_notify::send::webpush::{VapidKey, WebPushSender};
    use push_notify::{DueSource, Scheduler};

    let settings = &config.push;
    let failed = |what: &'static str, e: push_notify::PushError| engine_failed(what)(e);
    let store = Arc::new(
        push_notify::sql::SqlPush::new(db.push_pool())
            .with_clock(clock.clone())
            .with_max_devices(settings.max_devices_per_user),
    );
    store.migrate().await.map_err(|e| failed("push store", e))?;
    let planner = push_notify::Planner::parse(&settings.remind_at, &settings.time_zone)
        .map_err(|e| failed("push settings", e))?
        .with_text(settings.reminder_text.clone());
    let configured = crate::config::secret(
        "push.vapid_private_key",
        &settings.vapid_private_key,
        &settings.vapid_private_key_file,
    )
    .map_err(secret_error("push.vapid_private_key"))?;
    let vapid = match configured {
        Some(key) => VapidKey::from_base64(&key).map_err(|e| failed("push vapid key", e))?,
        None => {
            // Made by the first node to start, read back by every other one: browsers'
            // subscriptions are bound to it.
            let fresh = VapidKey::generate().private_base64();
            let kept = db
                .shared_secret("vapid_private_key", &fresh)
                .await
                .map_err(engine_failed("push vapid key"))?;
            VapidKey::from_base64(&kept).map_err(|e| failed("push vapid key", e))?
        }
    };
    let sender: Arc<dyn push_notify::Sender> = match sender {
        Some(sender) => sender,
        None => {
            let web_push = WebPushSender::with_policy(
                vapid.clone(),
                &settings.vapid_subject,
                crate::push::endpoint_policy(settings),
            )
            .map_err(|e| failed("push web push sender", e))?
            .with_clock(clock.clone());
            let mut route = Route::new().web_push(Arc::new(web_push));
            if let Some(file) = &settings.fcm_service_account_file {
                let json = std::fs::read_to_string(file).map_err(|e| BuildError::Secret {
                    name: "push.fcm_service_account_file",
                    reason: format!("{file}: {e}"),
                })?;
                let account =
                    ServiceAccount::from_json(&json).map_err(|e| failed("push fcm key", e))?;
                let fcm = FcmSender::new(account, &settings.fcm_endpoint)
                    .map_err(|e| failed("push fcm sender", e))?
                    .with_clock(clock.clone());
                route = route.fcm(Arc::new(fcm));
            }
            Arc::new(route)
        }
    };
    let (scheduler, source): (Arc<dyn Scheduler>, Arc<dyn DueSource>) = match settings.scheduler {
        PushSchedulerKind::Sql => (store.clone(), store.clone()),
        PushSchedulerKind::Eventbridge => eventbridge(config, clock.clone()).await?,
    };
    let dispatcher = push_notify::Dispatcher::new(source, store.clone(), store.clone(), sender)
        .with_clock(clock.clone())
        .with_recheck(Arc::new(crate::push::HeldCheck(tickets.clone())))
        .with_config(dispatcher_config(settings, db));
    let context = crate::push::PlanContext {
        scheduler,
        tickets,
        catalog,
        planner,
        dispatcher: Some(dispatcher.clone()),
        clock,
    };
    let reconciling = context.clone();
    tasks.spawn("push-reconcile", move |cancel| async move {
        tokio::select! {
            result = crate::push::reconcile(&reconciling) => match result {
                Ok(0) => {}
                Ok(added) => tracing::info!(added, "planned reminders missing from the plan"),
                Err(e) => tracing::error!(error = %e, "reminder reconciliation failed"),
            },
            () = cancel.cancelled() => {}
        }
    });
    let (planning, planner_task) = context.clone().start();
    tasks.spawn("push-planner", planner_task);
    if settings.run_dispatcher {
        tasks.spawn("push-dispatcher", move |cancel| async move {
            dispatcher
                .run_observed(cancel, |round| activity.reminder_round(round))
                .await;
        });
    }
    Ok(crate::push::Push {
        registry: store.clone(),
        ledger: store,
        planning,
        context,
        vapid_public_key: vapid.public_base64(),
        endpoint_policy: crate::push::endpoint_policy(settings),
    })
}

/// The plan on EventBridge Scheduler, due reminders arriving through SNS on an SQS queue.
#[cfg(feature = "aws")]
async fn eventbridge(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<
    (
        Arc<dyn push_notify::Scheduler>,
        Arc<dyn push_notify::DueSource>,
    ),
    BuildError,
> {
    let settings = &config.push;
    let failed = |what: &'static str, e: push_notify::PushError| engine_failed(what)(e);
    use push_notify::aws::{EventBridgeScheduler, SqsSource, Topology};
    let sdk = crate::backends::aws_config(&config.aws).await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = crate::backends::sqs_long_poll(&sdk);
    let topology = Topology::ensure(&sns, &sqs, &settings.sns_topic, &settings.sqs_queue)
        .await
        .map_err(|e| failed("push scheduler (sns/sqs)", e))?;
    let scheduler = EventBridgeScheduler::new(
        aws_sdk_scheduler::Client::new(&sdk),
        sns,
        &settings.schedule_group,
        &topology.topic_arn,
        &settings.scheduler_role_arn,
    )
    .with_clock(clock);
    scheduler
        .ensure_group()
        .await
        .map_err(|e| failed("push scheduler (eventbridge)", e))?;
    Ok((
        Arc::new(scheduler),
        Arc::new(SqsSource::new(sqs, topology.queue_url)),
    ))
}

#[cfg(not(feature = "aws"))]
async fn eventbridge(
    _config: &Config,
    _clock: Arc<dyn Clock>,
) -> Result<
    (
        Arc<dyn push_notify::Scheduler>,
        Arc<dyn push_notify::DueSource>,
    ),
    BuildError,
> {
    Err(crate::config::Invalid::not_built("push.scheduler = eventbridge", "aws").into())
}

/// The dispatcher's settings; an unset batch is sized for the database.
fn dispatcher_config(
    settings: &crate::config::PushSettings,
    db: &Database,
) -> push_notify::DispatcherConfig {
    let mut config = push_notify::DispatcherConfig::default();
    config.batch = match (settings.batch, db) {
        (0, Database::Sqlite(_)) => 1024,
        (0, Database::MySql(_)) => 256,
        (n, _) => n,
    };
    config.concurrency = settings.concurrency.max(1);
    config.lease = Duration::from_secs(settings.lease_secs.max(1));
    config.send_timeout = Duration::from_secs(settings.send_timeout_secs.max(1));
    config.poll = Duration::from_millis(settings.poll_ms.max(10));
    config.max_attempts = settings.max_attempts.max(1);
    config
}
