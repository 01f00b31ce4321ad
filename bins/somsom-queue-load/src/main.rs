//! `somsom-queue-load`: drives SomSom's waiting-room routes the way the seed's load test did,
//! and at a larger scale, and prints one JSON line per phase (requests, requests/s, mean, p50,
//! p99 and max latency, errors, and the same per route).
//!
//! * `seed`: virtual users start in steps (+100 every 30 s up to 1,000). Each joins the waiting
//!   room, asks its rank every 5 s, and once admitted leaves the proceed set and starts over, as
//!   the seed's k6 iterations did. `--time-scale 0.1` runs the same shape ten times faster.
//! * `scaled`: `--waiters` users join one queue, then `--ranks` rank requests from random
//!   waiters measure the rank route with the queue full.
//!
//! * `drop`: a ticket drop: `--waiters` users join over the last seconds before the sale opens,
//!   on every node given, then poll, book with the admission they get, and stop when booked,
//!   refused or told it is sold out (see `drop.rs`).
//!
//! Accounts come from `somsom-server provision-accounts` (`email<TAB>token` lines).

mod drop;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    url: String,
    /// The queue, e.g. `festival1`.
    #[arg(long)]
    queue: String,
    /// `email<TAB>token` lines, one account per virtual user or waiter.
    #[arg(long)]
    accounts: std::path::PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The seed's k6 scenario.
    Seed {
        /// Most virtual users.
        #[arg(long, default_value_t = 1000)]
        max_vus: usize,
        /// Users added per step.
        #[arg(long, default_value_t = 100)]
        step: usize,
        /// Seconds per step.
        #[arg(long, default_value_t = 30.0)]
        step_secs: f64,
        /// Seconds between rank polls.
        #[arg(long, default_value_t = 5.0)]
        poll_secs: f64,
        /// Multiplies every duration (0.1: ten times faster).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Many waiters in one queue.
    Scaled {
        /// Users who join.
        #[arg(long, default_value_t = 100_000)]
        waiters: usize,
        /// Rank requests after everyone joined.
        #[arg(long, default_value_t = 200_000)]
        ranks: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// A ticket drop: pre-queue, opening, admissions, bookings, sold out.
    Drop {
        /// Other nodes' base URLs (comma-separated); waiters are spread over them and `--url`.
        #[arg(long, value_delimiter = ',')]
        also: Vec<String>,
        /// Users who join before the opening.
        #[arg(long, default_value_t = 100_000)]
        waiters: usize,
        /// The festival whose queue `--queue` is.
        #[arg(long)]
        festival: i64,
        /// The day to book.
        #[arg(long)]
        date: String,
        /// When the sale opens (RFC 3339), as set on the festival.
        #[arg(long)]
        opens_at: chrono::DateTime<chrono::Utc>,
        /// Joins are spread over this many seconds before the opening.
        #[arg(long, default_value_t = 10.0)]
        join_secs: f64,
        /// Seconds between a waiter's questions after the opening.
        #[arg(long, default_value_t = 5.0)]
        poll_secs: f64,
        /// Waiters stop asking this many seconds after the opening.
        #[arg(long, default_value_t = 300.0)]
        give_up_secs: f64,
        /// An admin's token, to read the queue's statistics.
        #[arg(long)]
        admin_token: String,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 512)]
        in_flight: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Route {
    Join,
    Rank,
    Allowed,
    LeaveProceed,
    Book,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Join => "waiting-room",
            Route::Rank => "rank",
            Route::Allowed => "allowed",
            Route::LeaveProceed => "leave-proceed",
            Route::Book => "reservations",
        }
    }
}

/// One request's route, latency in microseconds, and whether it succeeded.
type Sample = (Route, u32, bool);

struct Client {
    http: reqwest::Client,
    base: String,
    queue: String,
}

impl Client {
    /// Sends one request; returns the JSON answer (Null when there is none) or `None` on failure.
    async fn call(
        &self,
        route: Route,
        email: &str,
        token: &str,
        samples: &mut Vec<Sample>,
    ) -> Option<Value> {
        let (q, base) = (&self.queue, &self.base);
        let (method, url) = match route {
            Route::Join => (
                reqwest::Method::GET,
                format!("{base}/queues/{q}/waiting-room/users/{email}"),
            ),
            Route::Rank => (
                reqwest::Method::GET,
                format!("{base}/queues/{q}/users/{email}/rank"),
            ),
            Route::Allowed => (
                reqwest::Method::GET,
                format!("{base}/queues/{q}/users/{email}/allowed"),
            ),
            Route::LeaveProceed => (
                reqwest::Method::DELETE,
                format!("{base}/queues/{q}/users/{email}/leave-proceed"),
            ),
            Route::Book => unreachable!("the drop scenario books through its own client"),
        };
        let started = Instant::now();
        let result = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .send()
            .await;
        let answer = match result {
            Ok(response) if response.status().is_success() => {
                let bytes = response.bytes().await.ok();
                Some(
                    bytes
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or(Value::Null),
                )
            }
            _ => None,
        };
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        samples.push((route, micros, answer.is_some()));
        answer
    }
}

fn summary(samples: &mut [Sample], seconds: f64) -> Value {
    fn stats(latencies: &mut [u32], errors: usize, seconds: f64) -> Value {
        latencies.sort_unstable();
        let n = latencies.len();
        let at = |q: f64| {
            latencies
                .get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let ms = |us: u32| f64::from(us) / 1000.0;
        let mean = latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / n.max(1) as f64 / 1000.0;
        json!({
            "requests": n,
            "rps": (n as f64 / seconds).round(),
            "mean_ms": (mean * 1000.0).round() / 1000.0,
            "p50_ms": ms(at(0.50)),
            "p99_ms": ms(at(0.99)),
            "max_ms": ms(latencies.last().copied().unwrap_or(0)),
            "errors": errors,
        })
    }
    let mut by_route: BTreeMap<Route, (Vec<u32>, usize)> = BTreeMap::new();
    for (route, micros, ok) in samples.iter() {
        let entry = by_route.entry(*route).or_default();
        entry.0.push(*micros);
        entry.1 += usize::from(!ok);
    }
    let mut all: Vec<u32> = samples.iter().map(|s| s.1).collect();
    let errors = samples.iter().filter(|s| !s.2).count();
    let mut out = stats(&mut all, errors, seconds);
    out["seconds"] = json!((seconds * 10.0).round() / 10.0);
    out["routes"] = by_route
        .into_iter()
        .map(|(route, (mut l, e))| (route.name().to_owned(), stats(&mut l, e, seconds)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    out
}

async fn seed(
    client: Arc<Client>,
    accounts: Arc<Vec<(String, String)>>,
    max_vus: usize,
    step: usize,
    step_every: Duration,
    poll: Duration,
) -> Value {
    let steps = max_vus.div_ceil(step.max(1));
    let total = step_every * u32::try_from(steps).unwrap_or(u32::MAX);
    let started = tokio::time::Instant::now();
    let deadline = started + total;
    let admitted = Arc::new(AtomicUsize::new(0));
    let users = (0..max_vus).map(|vu| {
        let (client, accounts, admitted) = (client.clone(), accounts.clone(), admitted.clone());
        tokio::spawn(async move {
            let (email, token) = &accounts[vu % accounts.len()];
            let mut samples = Vec::new();
            let offset = step_every * u32::try_from(vu / step.max(1)).unwrap_or(u32::MAX);
            tokio::time::sleep_until(started + offset).await;
            'iterations: while tokio::time::Instant::now() < deadline {
                let Some(joined) = client.call(Route::Join, email, token, &mut samples).await
                else {
                    tokio::time::sleep(poll).await;
                    continue;
                };
                if joined["allowed"] == true {
                    client
                        .call(Route::LeaveProceed, email, token, &mut samples)
                        .await;
                    admitted.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                loop {
                    tokio::time::sleep(poll).await;
                    if tokio::time::Instant::now() >= deadline {
                        break 'iterations;
                    }
                    let rank = client.call(Route::Rank, email, token, &mut samples).await;
                    if rank.is_some_and(|r| r["rank"] == -1) {
                        let allowed = client
                            .call(Route::Allowed, email, token, &mut samples)
                            .await;
                        if allowed.is_some_and(|a| a["allowed"] == true) {
                            client
                                .call(Route::LeaveProceed, email, token, &mut samples)
                                .await;
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                }
            }
            samples
        })
    });
    let mut samples: Vec<Sample> = futures::future::join_all(users)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap_or_default())
        .collect();
    let mut out = summary(&mut samples, started.elapsed().as_secs_f64());
    out["scenario"] = json!("seed");
    out["max_vus"] = json!(max_vus);
    out["admitted"] = json!(admitted.load(Ordering::Relaxed));
    out
}

/// Runs `count` calls of `route` from `concurrency` tasks; call `i` uses account `pick(i)`.
async fn phase(
    client: Arc<Client>,
    accounts: Arc<Vec<(String, String)>>,
    route: Route,
    count: usize,
    concurrency: usize,
    pick: fn(usize, usize) -> usize,
) -> Value {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, accounts, next) = (client.clone(), accounts.clone(), next.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return samples;
                }
                let (email, token) = &accounts[pick(i, accounts.len())];
                client.call(route, email, token, &mut samples).await;
            }
        })
    });
    let mut samples: Vec<Sample> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap_or_default())
        .collect();
    let mut out = summary(&mut samples, started.elapsed().as_secs_f64());
    out["phase"] = json!(route.name());
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let accounts: Vec<(String, String)> = match std::fs::read_to_string(&args.accounts) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(e, t)| (e.to_owned(), t.trim().to_owned()))
            .collect(),
        Err(e) => {
            eprintln!("somsom-queue-load: {}: {e}", args.accounts.display());
            return ExitCode::FAILURE;
        }
    };
    if accounts.is_empty() {
        eprintln!(
            "somsom-queue-load: no accounts in {}",
            args.accounts.display()
        );
        return ExitCode::FAILURE;
    }
    let accounts = Arc::new(accounts);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    let client = Arc::new(Client {
        http,
        base: args.url.trim_end_matches('/').to_owned(),
        queue: args.queue.clone(),
    });
    let results = match args.scenario {
        Scenario::Seed {
            max_vus,
            step,
            step_secs,
            poll_secs,
            time_scale,
        } => vec![
            seed(
                client,
                accounts,
                max_vus,
                step,
                Duration::from_secs_f64(step_secs * time_scale),
                Duration::from_secs_f64(poll_secs * time_scale),
            )
            .await,
        ],
        Scenario::Scaled {
            waiters,
            ranks,
            concurrency,
        } => {
            let waiters = waiters.min(accounts.len());
            let accounts = Arc::new(accounts[..waiters].to_vec());
            let join = phase(
                client.clone(),
                accounts.clone(),
                Route::Join,
                waiters,
                concurrency,
                |i, _| i,
            )
            .await;
            // Spread over the line: a multiplicative step visits waiters in a scattered order.
            let rank = phase(client, accounts, Route::Rank, ranks, concurrency, |i, n| {
                i.wrapping_mul(7919) % n
            })
            .await;
            vec![join, rank]
        }
        Scenario::Drop {
            also,
            waiters,
            festival,
            date,
            opens_at,
            join_secs,
            poll_secs,
            give_up_secs,
            admin_token,
            in_flight,
        } => {
            let mut nodes = vec![client.base.clone()];
            nodes.extend(also.iter().map(|u| u.trim_end_matches('/').to_owned()));
            let waiters = waiters.min(accounts.len());
            let setup = drop::Drop {
                nodes,
                queue: client.queue.clone(),
                festival,
                date,
                opens_at,
                join_window: Duration::from_secs_f64(join_secs),
                poll: Duration::from_secs_f64(poll_secs),
                give_up: Duration::from_secs_f64(give_up_secs),
                admin_token,
                in_flight,
            };
            let report = drop::run(client.http.clone(), &accounts[..waiters], setup).await;
            vec![report]
        }
    };
    let mut failed = false;
    for result in results {
        failed |= result["errors"].as_u64().unwrap_or(0) > 0;
        #[expect(clippy::print_stdout, reason = "the JSON report is this tool's output")]
        {
            println!("{result}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
