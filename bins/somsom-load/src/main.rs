//! `somsom-load`: sends `--requests` HTTP requests from `--concurrency` clients (one connection
//! each, kept alive) and prints the total time, latency percentiles, throughput and status counts
//! as one JSON line, so results can be pasted into `docs/benchmarks.md` with the command.
//!
//! In URLs and bodies, `{i}` becomes the request's number (0-based) and `{c}` the client's, so
//! each request can carry its own idempotency key, user or keyword.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

/// Load for SomSom's endpoints.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The URL; `{i}` (request number) and `{c}` (client number) are replaced.
    url: String,
    /// How many requests in all.
    #[arg(long, short = 'n', default_value_t = 100)]
    requests: usize,
    /// How many clients send at once (1: strictly one after another).
    #[arg(long, short = 'c', default_value_t = 1)]
    concurrency: usize,
    /// HTTP method.
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// A JSON body; `{i}` and `{c}` are replaced.
    #[arg(long)]
    body: Option<String>,
    /// A header `Name: value`; may repeat. `{i}` and `{c}` are replaced.
    #[arg(long, short = 'H')]
    header: Vec<String>,
    /// Bearer tokens, one per line; client `c` uses line `c % lines`.
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// Requests sent (and not counted) before the measurement, to warm connections and caches.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Words, comma-separated: `{w}` in the URL or body becomes word `i % count`
    /// (percent-encoded in the URL).
    #[arg(long, value_delimiter = ',')]
    words: Vec<String>,
    /// Words from a file, one per line (more than a command line holds: e-ticket codes).
    #[arg(long, conflicts_with = "words")]
    words_file: Option<std::path::PathBuf>,
}

fn fill(template: &str, i: usize, c: usize) -> String {
    template
        .replace("{i}", &i.to_string())
        .replace("{c}", &c.to_string())
}

fn word(words: &[String], i: usize, encode: bool) -> String {
    match words.get(i % words.len().max(1)) {
        Some(w) if encode => w
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect(),
        Some(w) => w.clone(),
        None => String::new(),
    }
}

struct Outcome {
    latency: Duration,
    status: u16,
}

async fn client(
    args: &Args,
    c: usize,
    token: Option<&str>,
    numbers: std::ops::Range<usize>,
) -> Vec<Outcome> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("HTTP client");
    let method: reqwest::Method = args.method.parse().expect("HTTP method");
    let mut outcomes = Vec::with_capacity(numbers.len());
    for i in numbers {
        let url = fill(&args.url, i, c).replace("{w}", &word(&args.words, i, true));
        let mut request = http.request(method.clone(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for header in &args.header {
            if let Some((name, value)) = header.split_once(':') {
                request = request.header(name.trim(), fill(value.trim(), i, c));
            }
        }
        if let Some(body) = &args.body {
            request = request
                .header("content-type", "application/json")
                .body(fill(body, i, c).replace("{w}", &word(&args.words, i, false)));
        }
        let started = Instant::now();
        let status = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(_) => 0,
        };
        outcomes.push(Outcome {
            latency: started.elapsed(),
            status,
        });
    }
    outcomes
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

async fn run(
    args: &Args,
    tokens: &[String],
    total: usize,
    offset: usize,
) -> (Duration, Vec<Outcome>) {
    let per_client = total.div_ceil(args.concurrency.max(1));
    let started = Instant::now();
    let clients = (0..args.concurrency.max(1)).map(|c| {
        let start = offset + (c * per_client).min(total);
        let end = offset + ((c + 1) * per_client).min(total);
        let token = (!tokens.is_empty()).then(|| tokens[c % tokens.len()].as_str());
        client(args, c, token, start..end)
    });
    let outcomes: Vec<Outcome> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();
    (started.elapsed(), outcomes)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(path) = &args.words_file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                args.words = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            Err(e) => {
                eprintln!("somsom-load: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let tokens: Vec<String> = match &args.tokens {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect(),
            Err(e) => {
                eprintln!("somsom-load: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    if args.warmup > 0 {
        run(&args, &tokens, args.warmup, 0).await;
    }
    let (elapsed, outcomes) = run(&args, &tokens, args.requests, args.warmup).await;
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort_unstable();
    let mut statuses = BTreeMap::new();
    for o in &outcomes {
        *statuses.entry(o.status.to_string()).or_insert(0usize) += 1;
    }
    let report = serde_json::json!({
        "requests": outcomes.len(),
        "concurrency": args.concurrency,
        "total_ms": (elapsed.as_secs_f64() * 1e3 * 10.0).round() / 10.0,
        "per_second": (outcomes.len() as f64 / elapsed.as_secs_f64()).round(),
        "p50_ms": (percentile(&latencies, 50.0) * 1000.0).round() / 1000.0,
        "p95_ms": (percentile(&latencies, 95.0) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&latencies, 99.0) * 1000.0).round() / 1000.0,
        "max_ms": (percentile(&latencies, 100.0) * 1000.0).round() / 1000.0,
        "statuses": statuses,
    });
    eprintln!("{report}");
    // A failed connection or a server error makes the measurement worthless: say so.
    if outcomes.iter().any(|o| o.status == 0 || o.status >= 500) {
        eprintln!("somsom-load: some requests failed (status 0 = no answer)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
