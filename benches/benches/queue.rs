//! The waiting-queue engine in memory: joins and ranks with a million people in line, the
//! footprint of that line, and the opening of a sale with a million in its pre-queue (printed,
//! not asserted).
//!
//! `cargo bench -p somsom-benches --bench queue`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::FutureExt;
use waiting_queue::{ManualClock, MemoryQueue, Policy, QueueName, TickRule, WaitingQueue};

const LINE: u64 = 1_000_000;

/// The memory engine's futures never wait, so one poll runs them (no runtime overhead measured).
fn now<T>(f: impl Future<Output = T>) -> T {
    f.now_or_never().expect("the memory engine never waits")
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn full_line() -> (MemoryQueue, QueueName) {
    let engine = MemoryQueue::default();
    let queue = QueueName::new("festival1").unwrap();
    for i in 0..LINE {
        now(engine.join(&queue, &format!("user{i}@example.com"))).unwrap();
    }
    (engine, queue)
}

fn footprint() {
    let before = rss_kib().unwrap_or(0);
    let (engine, queue) = full_line();
    let after = rss_kib().unwrap_or(0);
    let waiting = now(engine.stats(&queue)).unwrap().waiting;
    eprintln!(
        "footprint: {waiting} waiters in one memory queue: {} MiB resident ({} bytes each, keys included)",
        (after - before) / 1024,
        (after - before) * 1024 / waiting
    );
}

/// A sale opening with a million people in its pre-queue: the first tick after the opening puts
/// them in line in lottery order (the order was kept as they joined, so this is one walk).
fn opening() {
    let clock = ManualClock::starting_now();
    let engine = MemoryQueue::new()
        .with_clock(Arc::new(clock.clone()))
        .with_default_policy(Policy::default().with_batch_size(500));
    let queue = QueueName::new("festival1").unwrap();
    let opens = chrono::Utc::now() + chrono::Duration::minutes(1);
    now(engine.schedule(&queue, Some(opens))).unwrap();
    for i in 0..LINE {
        now(engine.join(&queue, &format!("user{i}@example.com"))).unwrap();
    }
    clock.advance(chrono::Duration::minutes(2));
    let started = std::time::Instant::now();
    let tick = now(engine.tick(&queue, TickRule::Due)).unwrap();
    let opened = started.elapsed();
    let stats = now(engine.stats(&queue)).unwrap();
    eprintln!(
        "opening: {LINE} pre-queued -> first tick admitted {}, {} waiting, in {:.1} ms",
        tick.admitted.len(),
        stats.waiting,
        opened.as_secs_f64() * 1000.0
    );
}

fn bench(c: &mut Criterion) {
    footprint();
    opening();
    let (engine, queue) = full_line();
    let engine = Arc::new(engine);
    let mut group = c.benchmark_group("waiting_queue_memory");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    group.bench_function("rank, 1M waiting", |b| {
        b.iter(|| {
            i = (i + 7919) % LINE;
            black_box(now(engine.rank(&queue, &format!("user{i}@example.com"))).unwrap())
        })
    });
    let mut n = LINE;
    group.bench_function("join at the back, 1M waiting", |b| {
        b.iter_batched(
            || {
                n += 1;
                format!("user{n}@example.com")
            },
            |user| black_box(now(engine.join(&queue, &user)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    let mut j = 0u64;
    group.throughput(Throughput::Elements(2));
    group.bench_function("join again + rank (a waiter's poll), 1M waiting", |b| {
        b.iter(|| {
            j = (j + 104_729) % LINE;
            let user = format!("user{j}@example.com");
            black_box(now(engine.join(&queue, &user)).unwrap());
            black_box(now(engine.rank(&queue, &user)).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
