//! Prometheus metrics at `/metrics`: request counts and latency histograms per route, what a
//! drop looks like ([`Activity`]), and collectors reading the engines at scrape time.

mod activity;
mod collectors;

pub use activity::{Activity, BookingOutcome, QueueReading, QueueReadings};

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ApiError;

// Every label value comes from a fixed set: the methods below, the router's route templates, and
// status codes (three digits). Nothing a client sends becomes a new series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: &'static str,
    route: String,
}

/// The method label: the standard methods by name, anything invented as `other`.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

type LatencyFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

/// The registry and the HTTP metrics recorded by [`track`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    activity: Arc<Activity>,
}

impl Metrics {
    /// A registry with the HTTP metrics registered. Engines add theirs with
    /// [`registry_mut`](Self::registry_mut) before the server starts.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("somsom");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response head, by method and route template",
            latency.clone(),
        );
        let activity = Activity::register(&mut registry);
        registry.register_collector(Box::new(collectors::QueueCollector(
            activity.queues.clone(),
        )));
        Self {
            registry,
            requests,
            latency,
            activity,
        }
    }

    /// What the workflows record into.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// Exposes a cache's counters as `somsom_cache_{hits,misses,coalesced,errors}_total{cache=name}`.
    pub fn register_cache(&mut self, name: &'static str, stats: Arc<search_cache::CacheStats>) {
        self.registry
            .register_collector(Box::new(collectors::CacheCollector { name, stats }));
    }

    /// Exposes a shared service's state as `somsom_dependency_up{dependency=name}` (1 or 0) and
    /// `somsom_dependency_outages_total{dependency=name}`.
    pub fn register_dependency(&mut self, dependency: Arc<crate::outage::Dependency>) {
        self.registry
            .register_collector(Box::new(collectors::DependencyCollector(dependency)));
    }

    /// Exposes this node's chat hub as `somsom_chat_connections`, `somsom_chat_deliveries_total`,
    /// `somsom_chat_overflows_total` and `somsom_chat_delivery_lag_seconds`.
    pub fn register_chat(&mut self, chat: chat_relay::ChatServer) {
        self.registry
            .register_collector(Box::new(collectors::ChatCollector(chat)));
    }

    /// For registering more metrics while the server is being built.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    fn observe(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                method,
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Series in the request families (for tests).
    pub fn series(&self) -> usize {
        self.encode()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("somsom_http_requests_total{"))
            .count()
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The route label: the matched template (`/festivals/{festivalId}`), the same for `/` and
/// `/api/`, and one label for every unmatched path so that scanners cannot blow up the series.
fn route_label(request: &Request) -> String {
    match request.extensions().get::<MatchedPath>() {
        Some(path) => {
            let path = path.as_str();
            path.strip_prefix("/api")
                .filter(|p| p.starts_with('/'))
                .unwrap_or(path)
                .to_owned()
        }
        None => "unmatched".to_owned(),
    }
}

/// Middleware recording one count and one latency sample per request.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = route_label(&request);
    let response = next.run(request).await;
    metrics.observe(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus/OpenMetrics text exposition", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(metrics): State<Arc<Metrics>>) -> Result<Response, ApiError> {
    let body = metrics.encode().map_err(ApiError::internal)?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
