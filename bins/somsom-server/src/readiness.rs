//! Liveness (`/healthz`, `/actuator/health`) and readiness (`/readyz`): readiness checks every
//! configured backend, concurrently and with a deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Serialize;

use crate::db::Database;

/// One backend the server depends on.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Short name shown in `/readyz`, e.g. `database`.
    fn name(&self) -> &'static str;
    /// Succeeds when the backend answers.
    async fn check(&self) -> Result<(), String>;
    /// Whether the backend is shared by every node, with the outage handled by each node (fast
    /// 503s, fallbacks). Its failure is reported but leaves the node ready: every node sees the
    /// same outage, and a load balancer that took them all out would answer nothing at all
    /// where the nodes answer fast and honestly.
    fn shared(&self) -> bool {
        false
    }
}

/// Every check of this server. Reports are shared for a second: a flood of `/readyz` costs the
/// backends one round of checks per second, not one per request.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    /// Set at SIGTERM: not ready any more, whatever the backends say.
    draining: Arc<std::sync::atomic::AtomicBool>,
    last: Arc<tokio::sync::Mutex<Option<(tokio::time::Instant, Health)>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|c| c.name()))
            .finish()
    }
}

const CHECK_DEADLINE: Duration = Duration::from_secs(3);
const REPORT_REUSE: Duration = Duration::from_secs(1);

impl Readiness {
    /// The checks to run for `/readyz`.
    pub fn new(checks: Vec<Arc<dyn ReadinessCheck>>) -> Self {
        Self {
            checks: Arc::new(checks),
            draining: Arc::default(),
            last: Arc::default(),
        }
    }

    /// From now on `/readyz` answers 503: the node is shutting down and still serving.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The latest report, if it is under a second old; else a new one (one caller runs the
    /// checks, the others wait for its answer).
    pub async fn report(&self) -> Health {
        if self.draining.load(std::sync::atomic::Ordering::Acquire) {
            return Health {
                status: Status::Down,
                components: Some(BTreeMap::from([(
                    "node".to_owned(),
                    Component::down("draining: shutting down".to_owned()),
                )])),
            };
        }
        let mut last = self.last.lock().await;
        if let Some((at, health)) = &*last
            && at.elapsed() < REPORT_REUSE
        {
            return health.clone();
        }
        let health = self.run_checks().await;
        *last = Some((tokio::time::Instant::now(), health.clone()));
        health
    }

    /// Runs every check concurrently, each with a deadline of a few seconds.
    async fn run_checks(&self) -> Health {
        let results = futures::future::join_all(self.checks.iter().map(|check| async move {
            let outcome = match tokio::time::timeout(CHECK_DEADLINE, check.check()).await {
                Ok(Ok(())) => Component::up(),
                Ok(Err(why)) => Component::down(why),
                Err(_) => Component::down(format!("no answer within {CHECK_DEADLINE:?}")),
            };
            if let Some(why) = &outcome.error {
                tracing::warn!(backend = check.name(), error = %why, "readiness check failed");
            }
            (check.name().to_owned(), (outcome, check.shared()))
        }))
        .await;
        let all_up = results
            .iter()
            .all(|(_, (c, shared))| *shared || c.status == Status::Up);
        let results = results.into_iter().map(|(name, (c, _))| (name, c));
        Health {
            status: if all_up { Status::Up } else { Status::Down },
            components: Some(results.collect()),
        }
    }
}

/// `UP` or `DOWN`, in Spring Actuator's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Working.
    Up,
    /// Not working.
    Down,
}

/// One backend's state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Component {
    /// `UP` or `DOWN`.
    pub status: Status,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Component {
    fn up() -> Self {
        Self {
            status: Status::Up,
            error: None,
        }
    }
    fn down(why: String) -> Self {
        Self {
            status: Status::Down,
            error: Some(why),
        }
    }
}

/// A health answer: `{"status": "UP"}`, with `components` for readiness.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Overall state.
    pub status: Status,
    /// Each backend's state (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<BTreeMap<String, Component>>,
}

impl Health {
    fn alive() -> Self {
        Self {
            status: Status::Up,
            components: None,
        }
    }
}

/// `GET /healthz`: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health::alive())
}

/// `GET /actuator/health`: the seed's load-balancer check, answered like `/healthz`.
#[utoipa::path(get, path = "/actuator/health", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn actuator_health() -> Json<Health> {
    Json(Health::alive())
}

/// `GET /readyz`: whether this node should get traffic, with every configured backend's state.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The node serves; a shared service (database server, Redis, Kafka) listed as DOWN is one the node answers for fast without it", body = Health),
        (status = 503, description = "The node drains, or a backend of its own (a SQLite file) does not answer", body = Health)))]
pub async fn readyz(
    State(readiness): State<Readiness>,
    authenticated: Option<axum::Extension<cognito_auth::extract::Authenticated>>,
) -> (StatusCode, Json<Health>) {
    let mut health = readiness.report().await;
    let admin = authenticated.is_some_and(|a| a.claims.role == cognito_auth::Role::Admin);
    if !admin {
        // Backend error text names hosts, users and versions: only admins read it.
        for component in health.components.iter_mut().flat_map(|c| c.values_mut()) {
            if component.error.is_some() {
                component.error = Some("unavailable".to_owned());
            }
        }
    }
    let status = match health.status {
        Status::Up => StatusCode::OK,
        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(health))
}

/// The relational database answers `SELECT 1`.
#[derive(Debug)]
pub struct DatabaseCheck(pub Database);

#[async_trait]
impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// A shared service (MySQL/MariaDB, Redis, Kafka) as the outage watch last saw it: answered at
/// once, without asking the service (the watch probes it in the background). Reported, but it
/// leaves the node ready ([`ReadinessCheck::shared`]).
pub struct DependencyCheck(pub Arc<crate::outage::Dependency>);

#[async_trait]
impl ReadinessCheck for DependencyCheck {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.is_up() {
            Ok(())
        } else {
            Err("down (not answering the outage probe)".to_owned())
        }
    }
    fn shared(&self) -> bool {
        true
    }
}
