//! The waiting-queue engine in memory: joins and ranks with a million people in line, and the
//! footprint of that line (printed, not asserted).
//!
//! `cargo bench -p somsom-benches --bench queue`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::FutureExt;
use waiting_queue::{MemoryQueue, QueueName, WaitingQueue};

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

fn bench(c: &mut Criterion) {
    footprint();
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
