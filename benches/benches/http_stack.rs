//! The cost of the middleware every request pays (request id, tracing span, CORS, JSON errors,
//! panic catcher, body limit, timeout, routing, metrics), measured through the router without a
//! socket: `cargo bench -p somsom-benches --bench http_stack`.

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use somsom_server::AppState;
use somsom_server::config::HttpSettings;
use somsom_server::db::Database;
use somsom_server::metrics::Metrics;
use somsom_server::readiness::Readiness;
use tower::ServiceExt;

fn bench_http_stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let router = runtime.block_on(async {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        somsom_server::app(AppState {
            db,
            readiness: Readiness::default(),
            metrics: Arc::new(Metrics::new()),
            http: Arc::new(HttpSettings::default()),
            shutdown: Default::default(),
        })
    });
    let mut group = c.benchmark_group("http_stack");
    for (name, path) in [
        ("healthz", "/api/healthz"),
        ("unknown_route_404", "/api/nope"),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let request = Request::get(path).body(Body::empty()).unwrap();
                let router = router.clone();
                async move { black_box(router.oneshot(request).await.unwrap().status()) }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_http_stack);
criterion_main!(benches);
