//! `somsom-chat-load`: N subscriber connections spread over R rooms, P publishers sending M
//! messages a second in total for D seconds; prints deliveries per second, end-to-end latency
//! percentiles, this tool's CPU per delivery and (with `--server-pid`) the server's resident
//! memory per connection and CPU per delivery, as JSON.
//!
//! Each message carries its send time (microseconds on this process's monotonic clock), so a
//! delivery's latency is measured on one clock. `--target somsom` sends SomSom's chat JSON to
//! `/publish/chat.send` and subscribes to `/topic/chat/chatRoomId{N}`; `--target rabbitmq`
//! sends the bare time to `/topic/chat.{N}` and subscribes there (RabbitMQ Web-STOMP).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_relay::client::Client;
use chat_relay::stomp::Command;
use clap::{Parser, ValueEnum};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Target {
    Somsom,
    Rabbitmq,
}

#[derive(Debug, Parser)]
struct Args {
    /// WebSocket URL (`ws://127.0.0.1:8080/ws-chat`, `ws://127.0.0.1:15674/ws`).
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value = "somsom")]
    target: Target,
    /// CONNECT headers `name=value` (`Authorization=Bearer …`, `login=guest`, `passcode=guest`).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Room ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    rooms: Vec<i64>,
    /// Subscriber connections, spread evenly over the rooms.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Publisher connections.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Messages per second, all publishers together.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds to sit idle with every connection open before publishing (memory reading).
    #[arg(long, default_value_t = 2)]
    idle: u64,
    /// The server's process id, to read its resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User and system CPU seconds of a process so far (`/proc/PID/stat`, in clock ticks of 10 ms).
fn cpu_seconds(pid: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the line (1-based); the state, field 3, is index 0.
    Some((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

/// CPU seconds the machine spent (all cores) by kind, from `/proc/stat`'s first line.
fn machine_seconds() -> Option<Vec<f64>> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    line.split_whitespace()
        .map(|n| n.parse::<f64>().ok().map(|t| t / 100.0))
        .collect()
}

/// CPU use over the publishing window: the server's and this tool's own (user and system
/// seconds, and microseconds per delivery), and the whole machine's share of each kind. The
/// CPU a build costs per delivery varies far less between runs than its tail latency does.
struct CpuWindow {
    server_pid: Option<String>,
    server: Option<(f64, f64)>,
    tool: Option<(f64, f64)>,
    machine: Option<Vec<f64>>,
}

impl CpuWindow {
    fn start(server_pid: Option<u32>) -> Self {
        let server_pid = server_pid.map(|pid| pid.to_string());
        Self {
            server: server_pid.as_deref().and_then(cpu_seconds),
            server_pid,
            tool: cpu_seconds("self"),
            machine: machine_seconds(),
        }
    }

    fn report(&self, delivered: u64) -> serde_json::Value {
        let per = |before: Option<(f64, f64)>, after: Option<(f64, f64)>| {
            let ((u0, s0), (u1, s1)) = (before?, after?);
            let (user, system) = (u1 - u0, s1 - s0);
            Some(json!({
                "user_seconds": round2(user),
                "system_seconds": round2(system),
                "us_per_delivery": round2((user + system) * 1e6 / delivered.max(1) as f64),
            }))
        };
        let machine = self
            .machine
            .as_ref()
            .zip(machine_seconds())
            .map(|(before, after)| {
                let spent: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
                let total: f64 = spent.iter().sum::<f64>().max(f64::EPSILON);
                let share = |i: usize| round2(spent.get(i).copied().unwrap_or(0.0) * 100.0 / total);
                // /proc/stat: user nice system idle iowait irq softirq steal …
                json!({
                    "user_percent": share(0) + share(1),
                    "system_percent": share(2),
                    "softirq_percent": share(6),
                    "idle_percent": share(3) + share(4),
                    "steal_percent": share(7),
                })
            });
        json!({
            "server": per(self.server, self.server_pid.as_deref().and_then(cpu_seconds)),
            "tool": per(self.tool, cpu_seconds("self")),
            "machine": machine,
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn destination(target: Target, room: i64) -> String {
    match target {
        Target::Somsom => format!("/topic/chat/chatRoomId{room}"),
        Target::Rabbitmq => format!("/topic/chat.{room}"),
    }
}

async fn connect(args: &Args) -> Client {
    let headers: Vec<(&str, &str)> = args
        .headers
        .iter()
        .map(|h| h.split_once('=').expect("headers are name=value"))
        .collect();
    let (client, answer) = Client::connect(&args.url, &headers).await.expect("connect");
    assert_eq!(answer.command, Command::Connected, "{answer:?}");
    client
}

/// The send time a delivery carries.
fn sent_micros(target: Target, body: &[u8]) -> Option<u64> {
    match target {
        Target::Rabbitmq => std::str::from_utf8(body).ok()?.parse().ok(),
        Target::Somsom => {
            // Only the one field, borrowed: the tool shares the cores with the server, and a
            // full `Value` per delivery cost more than the server's own work for it.
            #[derive(serde::Deserialize)]
            struct Sent<'a> {
                #[serde(borrow)]
                content: &'a str,
            }
            serde_json::from_slice::<Sent<'_>>(body)
                .ok()?
                .content
                .parse()
                .ok()
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let start = Instant::now();
    let rss_before = rss_kib(args.server_pid);

    // Subscribers.
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let received = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.subscribers.max(1));
    let mut readers = Vec::new();
    for i in 0..args.subscribers {
        let room = args.rooms[i % args.rooms.len()];
        let (args, measuring, stop, received, gate, ready) = (
            args.clone(),
            measuring.clone(),
            stop.clone(),
            received.clone(),
            gate.clone(),
            ready_tx.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut client = {
                let _permit = gate.acquire().await.unwrap();
                let mut client = connect(&args).await;
                client
                    .subscribe("0", &destination(args.target, room), &[("receipt", "r")])
                    .await
                    .unwrap();
                let receipt = client.next_frame().await.unwrap().unwrap();
                assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
                client
            };
            ready.send(()).await.unwrap();
            drop(ready);
            let mut latencies: Vec<u32> = Vec::new();
            loop {
                let frame = tokio::select! {
                    () = stop.cancelled() => break,
                    frame = client.next_frame() => match frame {
                        Ok(Some(frame)) => frame,
                        _ => panic!("a subscriber was disconnected"),
                    },
                };
                if frame.command != Command::Message {
                    panic!("unexpected {frame:?}");
                }
                let now = start.elapsed().as_micros() as u64;
                if measuring.load(Ordering::Relaxed)
                    && let Some(sent) = sent_micros(args.target, &frame.body)
                {
                    latencies.push(now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < args.subscribers && ready_rx.recv().await.is_some() {
        connected += 1;
    }
    let connect_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.idle)).await;
    let rss_connected = rss_kib(args.server_pid);

    // Publishers, each at rate / publishers, rooms in turn.
    measuring.store(true, Ordering::Relaxed);
    let sent = Arc::new(AtomicU64::new(0));
    let publish_start = Instant::now();
    let cpu = CpuWindow::start(args.server_pid);
    let mut writers = Vec::new();
    for p in 0..args.publishers {
        let (args, sent) = (args.clone(), sent.clone());
        writers.push(tokio::spawn(async move {
            let mut client = connect(&args).await;
            let per_second = (args.rate as f64 / args.publishers as f64).max(0.001);
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + Duration::from_secs(args.duration);
            let mut n = p;
            while Instant::now() < end {
                tick.tick().await;
                let room = args.rooms[n % args.rooms.len()];
                n += 1;
                let now = start.elapsed().as_micros().to_string();
                match args.target {
                    Target::Somsom => client
                        .send_json(
                            "/publish/chat.send",
                            &json!({"chatRoomId": room, "content": now}),
                            &[],
                        )
                        .await
                        .unwrap(),
                    Target::Rabbitmq => {
                        let frame = chat_relay::stomp::Frame::new(Command::Send)
                            .with("destination", destination(args.target, room))
                            .with_body(now);
                        client.send_frame(&frame).await.unwrap();
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let publish_secs = publish_start.elapsed().as_secs_f64();
    let delivered_while_publishing = received.load(Ordering::Relaxed);
    let cpu = cpu.report(delivered_while_publishing);
    // Let deliveries in flight arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(reader.await.unwrap());
    }
    latencies.sort_unstable();
    let sent = sent.load(Ordering::Relaxed);
    let delivered = received.load(Ordering::Relaxed);
    let expected = sent * (args.subscribers / args.rooms.len()) as u64;
    let per_connection = match (rss_before, rss_connected) {
        (Some(before), Some(after)) => {
            Some((after.saturating_sub(before)) as f64 / connected as f64)
        }
        _ => None,
    };
    let report = json!({
        "target": format!("{:?}", args.target).to_lowercase(),
        "connections": connected,
        "connect_seconds": (connect_secs * 10.0).round() / 10.0,
        "rooms": args.rooms.len(),
        "server_rss_kib_before": rss_before,
        "server_rss_kib_connected": rss_connected,
        "server_kib_per_connection": per_connection.map(|k| (k * 10.0).round() / 10.0),
        "sent": sent,
        "delivered": delivered,
        "expected_deliveries": expected,
        "deliveries_per_second": (delivered as f64 / publish_secs).round(),
        "latency_ms": {
            "p50": percentile(&latencies, 0.50),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        },
        "cpu_while_publishing": cpu,
    });
    eprintln!("{report}");
}
