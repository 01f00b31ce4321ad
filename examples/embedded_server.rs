//! Runs SomSom inside another program, with a route of its own that gets SomSom's middleware
//! (JSON errors, request ids, metrics, the `/api` twin):
//!
//! ```sh
//! cargo run -p somsom-examples --example embedded_server
//! curl localhost:8081/api/hello
//! ```

use axum::Router;
use axum::routing::get;
use somsom_server::{AppState, Config, build, shutdown_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        listen: "127.0.0.1:8081".parse()?,
        database_url: "sqlite://data/embedded.db".into(),
        ..Config::default()
    };
    let hello = Router::<AppState>::new().route(
        "/hello",
        get(|| async { axum::Json(serde_json::json!({ "message": "안녕하세요" })) }),
    );
    let app = build(config).await?.with_routes(hello);
    eprintln!("embedded SomSom on http://{}", app.local_addr());
    app.run_until(shutdown_signal()).await?;
    Ok(())
}
