//! The cost of the middleware every request pays (request id, tracing span, CORS, JSON errors,
//! panic catcher, body limit, timeout, routing, metrics), measured through the router without a
//! socket: `cargo bench -p somsom-benches --bench http_stack`.

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use somsom_server::Config;
use std::hint::black_box;
use tower::ServiceExt;

fn bench_http_stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("somsom-bench-{}", std::process::id()));
    let router = runtime.block_on(async {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}/bench.db", dir.display()),
            ..Config::default()
        };
        let app = somsom_server::build(config).await.unwrap();
        somsom_server::app(app.state().clone())
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
