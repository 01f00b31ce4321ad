//! A ticket drop of its own, with `waiting-queue` in front of it and nothing from SomSom's
//! server: people join the line, watch their rank, and once admitted buy with the admission
//! token, whose signature the buying handler checks, and which the queue lets it use once.
//!
//! ```sh
//! cargo run -p somsom-examples --example waiting_room            # serves on 127.0.0.1:8082
//! curl -X POST localhost:8082/line/ana     # {"rank":1} ... later {"token":"wq2..."}
//! curl -X POST localhost:8082/buy/ana -H "x-admission: wq2..."
//! cargo run -p somsom-examples --example waiting_room -- --demo  # 40 buyers, 25 tickets
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use waiting_queue::driver::IntervalDriver;
use waiting_queue::{AdmissionTokens, MemoryQueue, Place, Policy, QueueName, WaitingQueue};

#[derive(Clone)]
struct Drop {
    line: Arc<dyn WaitingQueue>,
    queue: QueueName,
    tokens: AdmissionTokens,
    stock: Arc<AtomicU32>,
}

/// `POST /line/{user}`: join, or see where you are; admitted users get their token.
async fn join_line(
    State(drop): State<Drop>,
    Path(user): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    match drop.line.join(&drop.queue, &user).await {
        Ok(Place::Waiting { rank, .. }) => Ok(Json(json!({ "rank": rank }))),
        Ok(Place::PreQueue { opens_at, .. }) => Ok(Json(json!({ "opensAt": opens_at }))),
        Ok(Place::Admitted(admission)) => {
            let token = drop.tokens.issue(&drop.queue, &user, &admission);
            Ok(Json(json!({ "token": token })))
        }
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

/// `POST /buy/{user}`: one ticket, for admitted users only (checked from the token alone).
async fn buy(
    State(drop): State<Drop>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let token = headers
        .get("x-admission")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let verified = match drop
        .tokens
        .verify(token, &drop.queue, &user, chrono::Utc::now())
    {
        Ok(verified) => verified,
        Err(e) => {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": e.to_string() })),
            );
        }
    };
    // Genuine; but unused? A replayed or shared token stops here.
    match drop
        .line
        .consume(&drop.queue, &user, verified.admission)
        .await
    {
        Ok(waiting_queue::Consumption::Consumed) => {}
        Ok(_) => {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": "this admission was used already" })),
            );
        }
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": e.to_string() })),
            );
        }
    }
    let sold = drop
        .stock
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        });
    match sold {
        Ok(left) => (
            StatusCode::OK,
            Json(json!({ "bought": 1, "left": left - 1 })),
        ),
        Err(_) => (StatusCode::CONFLICT, Json(json!({ "error": "sold out" }))),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    let line: Arc<dyn WaitingQueue> = Arc::new(MemoryQueue::default());
    let queue = QueueName::new("drop")?;
    // Five people a quarter second, never more than ten shopping at once, thirty seconds each.
    let policy = Policy::default()
        .with_batch_size(5)
        .with_interval(Duration::from_millis(250))
        .with_max_active(Some(10))
        .with_admitted_ttl(Duration::from_secs(30));
    line.configure(&queue, Some(policy)).await?;
    let secret: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(97) ^ 0x5a);
    let state = Drop {
        line: line.clone(),
        queue,
        tokens: AdmissionTokens::new(&secret).expect("32 bytes"),
        stock: Arc::new(AtomicU32::new(25)),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn(IntervalDriver::new(line, Duration::from_millis(25)).run(
        async {
            let _ = stop_rx.await;
        },
        |_, tick| eprintln!("tick {}: admitted {:?}", tick.tick, tick.admitted),
    ));
    let app = Router::new()
        .route("/line/{user}", post(join_line))
        .route("/buy/{user}", post(buy))
        .with_state(state);
    let addr = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8082"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    eprintln!("ticket drop on {base}");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if demo {
        run_demo(&base).await?;
    } else {
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(());
    driver.await?;
    server.abort();
    Ok(())
}

/// Forty buyers for twenty-five tickets: each polls its place until admitted, then buys.
async fn run_demo(base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let http = reqwest::Client::new();
    let buyers = (0..40).map(|i| {
        let (http, base) = (http.clone(), base.to_owned());
        tokio::spawn(async move {
            let user = format!("buyer{i:02}");
            loop {
                let place: Value = http
                    .post(format!("{base}/line/{user}"))
                    .send()
                    .await?
                    .json()
                    .await?;
                if let Some(token) = place["token"].as_str() {
                    let answer = http
                        .post(format!("{base}/buy/{user}"))
                        .header("x-admission", token)
                        .send()
                        .await?;
                    return Ok::<_, reqwest::Error>((user, answer.status().as_u16()));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let mut bought = 0;
    for outcome in futures::future::join_all(buyers).await {
        let (user, status) = outcome??;
        bought += usize::from(status == 200);
        eprintln!("{user}: {status}");
    }
    eprintln!("{bought} tickets sold to 40 buyers");
    assert_eq!(bought, 25, "every ticket sold, none twice");
    Ok(())
}
