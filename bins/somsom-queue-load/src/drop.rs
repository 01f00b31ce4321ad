//! The `drop` scenario: a ticket drop as it happens. `waiters` users join a festival's waiting
//! room over the last seconds before its sale opens (spread over every node given), so they all
//! wait in the pre-queue; after the opening each asks again every `poll` (with a random phase,
//! as real clients drift), books one ticket with the admission it gets, and stops when it has
//! booked, is refused, or is told the sale is sold out. A monitor reads the queue's statistics
//! from the first node every 50 ms to time the opening and the admissions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::{Route, Sample, summary};

/// What the scenario needs to know about the sale.
pub struct Drop {
    /// Every node's base URL; waiter `i` talks to node `i % nodes`.
    pub nodes: Vec<String>,
    pub queue: String,
    pub festival: i64,
    pub date: String,
    pub opens_at: DateTime<Utc>,
    pub join_window: Duration,
    pub poll: Duration,
    /// Waiters give up this long after the opening.
    pub give_up: Duration,
    pub admin_token: String,
    pub in_flight: usize,
}

/// How one waiter's drop ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Booked,
    /// Booking refused with this error code.
    Refused(String),
    ToldSoldOut,
    JoinRefused(String),
    GaveUp,
}

struct Shared {
    http: reqwest::Client,
    drop: Drop,
    gate: Semaphore,
    told_sold_out_after_ms: std::sync::Mutex<Vec<u64>>,
    sold_out_at: std::sync::Mutex<Option<Instant>>,
    pre_queued: AtomicUsize,
}

impl Shared {
    fn node(&self, waiter: usize) -> &str {
        &self.drop.nodes[waiter % self.drop.nodes.len()]
    }

    /// Joins (or asks again: the route is idempotent). Returns the answer, the admission token
    /// header, and the error code of a refusal.
    async fn join(
        &self,
        waiter: usize,
        email: &str,
        token: &str,
        samples: &mut Vec<Sample>,
    ) -> Result<(Value, Option<String>), String> {
        let url = format!(
            "{}/queues/{}/waiting-room/users/{email}",
            self.node(waiter),
            self.drop.queue
        );
        let _permit = self.gate.acquire().await.expect("never closed");
        let started = std::time::Instant::now();
        let result = self.http.get(url).bearer_auth(token).send().await;
        let out = match result {
            Ok(response) => {
                let ok = response.status().is_success();
                let admission = response
                    .headers()
                    .get("admission-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if ok {
                    Ok((body, admission))
                } else {
                    Err(body["code"].as_str().unwrap_or("HTTP_ERROR").to_owned())
                }
            }
            Err(_) => Err("CONNECTION".to_owned()),
        };
        samples.push((Route::Join, micros(started), out.is_ok()));
        out
    }

    async fn book(
        &self,
        waiter: usize,
        token: &str,
        admission: &str,
        samples: &mut Vec<Sample>,
    ) -> End {
        let url = format!("{}/reservations", self.node(waiter));
        let body = json!({"festivalId": self.drop.festival, "festivalDate": self.drop.date, "quantity": 1});
        let _permit = self.gate.acquire().await.expect("never closed");
        let started = std::time::Instant::now();
        let result = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("admission-token", admission)
            .header("idempotency-key", format!("drop-{waiter}"))
            .json(&body)
            .send()
            .await;
        let end = match result {
            Ok(response) if response.status().is_success() => End::Booked,
            Ok(response) => {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                End::Refused(body["code"].as_str().unwrap_or("HTTP_ERROR").to_owned())
            }
            Err(_) => End::Refused("CONNECTION".to_owned()),
        };
        // A refusal is an answer, not a failed request: only transport errors count as errors.
        let ok = !matches!(&end, End::Refused(code) if code == "CONNECTION");
        samples.push((Route::Book, micros(started), ok));
        end
    }

    /// One waiter, from joining before the opening to the end of its drop.
    async fn waiter(
        self: Arc<Self>,
        i: usize,
        email: String,
        token: String,
        join_at: Instant,
        opens: Instant,
    ) -> (End, Vec<Sample>) {
        let mut samples = Vec::new();
        tokio::time::sleep_until(join_at).await;
        match self.join(i, &email, &token, &mut samples).await {
            Ok((answer, _)) if answer["waitingForOpening"] == true => {
                self.pre_queued.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(code) => return (End::JoinRefused(code), samples),
        }
        // A random phase within the poll interval: clients do not ask in lockstep.
        let phase = self.drop.poll.mul_f64(fastrand_unit(i));
        let mut next = opens + phase;
        let deadline = opens + self.drop.give_up;
        loop {
            tokio::time::sleep_until(next).await;
            if Instant::now() >= deadline {
                return (End::GaveUp, samples);
            }
            next += self.drop.poll;
            let (answer, admission) = match self.join(i, &email, &token, &mut samples).await {
                Ok(answer) => answer,
                Err(code) if code == "QUEUE_SOLD_OUT" => {
                    self.told(Instant::now());
                    return (End::ToldSoldOut, samples);
                }
                Err(_) => continue,
            };
            if answer["soldOut"] == true {
                self.told(Instant::now());
                return (End::ToldSoldOut, samples);
            }
            if let (true, Some(admission)) = (answer["allowed"] == true, admission) {
                let end = self.book(i, &token, &admission, &mut samples).await;
                return (end, samples);
            }
        }
    }

    fn told(&self, at: Instant) {
        let sold_out_at = *self.sold_out_at.lock().expect("not poisoned");
        if let Some(sold_out_at) = sold_out_at {
            let after = at.saturating_duration_since(sold_out_at).as_millis();
            self.told_sold_out_after_ms
                .lock()
                .expect("not poisoned")
                .push(u64::try_from(after).unwrap_or(u64::MAX));
        }
    }
}

/// A deterministic number in [0, 1) per waiter (splitmix64), so runs are comparable.
fn fastrand_unit(i: usize) -> f64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn micros(started: std::time::Instant) -> u32 {
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// What the monitor saw: when the first admission was issued and when the queue closed, and
/// the admissions issued by then.
#[derive(Default)]
struct Timeline {
    first_admission: Option<Instant>,
    sold_out: Option<(Instant, u64)>,
    last: Value,
}

async fn monitor(shared: Arc<Shared>, opens: Instant, stop: Arc<tokio::sync::Notify>) -> Timeline {
    let url = format!(
        "{}/admin/queues/{}",
        shared.drop.nodes[0], shared.drop.queue
    );
    let mut timeline = Timeline::default();
    let mut every = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.notified() => return timeline,
        }
        let Ok(response) = shared
            .http
            .get(&url)
            .bearer_auth(&shared.drop.admin_token)
            .send()
            .await
        else {
            continue;
        };
        let Ok(stats) = response.json::<Value>().await else {
            continue;
        };
        let now = Instant::now();
        let admitted = stats["admittedTotal"].as_u64().unwrap_or(0);
        if timeline.first_admission.is_none() && admitted > 0 && now >= opens {
            timeline.first_admission = Some(now);
        }
        if timeline.sold_out.is_none() && stats["soldOut"] == true {
            timeline.sold_out = Some((now, admitted));
            *shared.sold_out_at.lock().expect("not poisoned") = Some(now);
        }
        timeline.last = stats;
    }
}

pub async fn run(http: reqwest::Client, accounts: &[(String, String)], drop: Drop) -> Value {
    let waiters = accounts.len();
    let to_opening = (drop.opens_at - Utc::now()).to_std().unwrap_or_default();
    let opens = Instant::now() + to_opening;
    let window = drop.join_window.min(to_opening);
    let first_join = opens - window;
    let shared = Arc::new(Shared {
        http,
        gate: Semaphore::new(drop.in_flight.max(1)),
        drop,
        told_sold_out_after_ms: std::sync::Mutex::default(),
        sold_out_at: std::sync::Mutex::default(),
        pre_queued: AtomicUsize::new(0),
    });
    let stop = Arc::new(tokio::sync::Notify::new());
    let watcher = tokio::spawn(monitor(shared.clone(), opens, stop.clone()));
    let tasks: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(i, (email, token))| {
            let join_at = first_join + window.mul_f64(i as f64 / waiters.max(1) as f64);
            tokio::spawn(
                shared
                    .clone()
                    .waiter(i, email.clone(), token.clone(), join_at, opens),
            )
        })
        .collect();
    let mut ends: BTreeMap<End, usize> = BTreeMap::new();
    let mut joins = Vec::new();
    let mut rest = Vec::new();
    for task in tasks {
        let (end, samples) = task.await.expect("a waiter task");
        *ends.entry(end).or_default() += 1;
        // A waiter's first request is its join before the opening; the rest is the sale.
        let mut samples = samples.into_iter();
        joins.extend(samples.next());
        rest.extend(samples);
    }
    let ended = Instant::now();
    stop.notify_one();
    let timeline = watcher.await.expect("the monitor");
    let stats = &timeline.last;
    let policy_rate = stats["batchSize"].as_f64().unwrap_or(0.0)
        / (stats["intervalMs"].as_f64().unwrap_or(1000.0) / 1000.0);
    let admissions_per_sec = match (timeline.first_admission, timeline.sold_out) {
        (Some(first), Some((closed, admitted))) if closed > first => {
            admitted as f64 / (closed - first).as_secs_f64()
        }
        _ => 0.0,
    };
    let mut told = shared
        .told_sold_out_after_ms
        .lock()
        .expect("not poisoned")
        .clone();
    told.sort_unstable();
    let count = |end: &End| ends.get(end).copied().unwrap_or(0);
    let refused: BTreeMap<String, usize> = ends
        .iter()
        .filter_map(|(end, n)| match end {
            End::Refused(code) | End::JoinRefused(code) => Some((code.clone(), *n)),
            _ => None,
        })
        .collect();
    let ms = |a: Instant, b: Instant| {
        u64::try_from(b.saturating_duration_since(a).as_millis()).unwrap_or(u64::MAX)
    };
    json!({
        "scenario": "drop",
        "waiters": waiters,
        "nodes": shared.drop.nodes.len(),
        "pre_queued": shared.pre_queued.load(Ordering::Relaxed),
        "joins": summary(&mut joins, window.as_secs_f64().max(0.001)),
        "sale": summary(&mut rest, ended.saturating_duration_since(opens).as_secs_f64().max(0.001)),
        "opening_to_first_admission_ms": timeline.first_admission.map(|t| ms(opens, t)),
        "admissions_per_sec": admissions_per_sec.round(),
        "policy_admissions_per_sec": policy_rate.round(),
        "opening_to_sold_out_ms": timeline.sold_out.map(|(t, _)| ms(opens, t)),
        "admissions_issued": stats["admittedTotal"],
        "admissions_consumed": stats["admissionsConsumed"],
        "booked": count(&End::Booked),
        "told_sold_out": count(&End::ToldSoldOut),
        "told_sold_out_within_ms": {
            "p50": told.get(told.len() / 2),
            "max": told.last(),
        },
        "refused": refused,
        "gave_up": count(&End::GaveUp),
        "shuffle_seed": stats["shuffleSeed"],
    })
}
