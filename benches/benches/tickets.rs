//! Booking throughput on one hot festival day: `cargo bench -p somsom-benches --bench tickets`.
//!
//! Each sample books `BATCH` one-ticket reservations from 64 concurrent buyers against one day's
//! stock, on the memory engine and on SQLite with both strategies (a temporary file, WAL), and on
//! MariaDB with both strategies when `TEST_MYSQL_URL` is set (`source scripts/services.sh`).
//! Criterion reports reservations per second as its throughput.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ticket_lock::sql::{SqlPool, SqlTickets, Strategy};
use ticket_lock::{Booking, FestivalId, MemoryTickets, NewInventory, Rules, TicketEngine, UserId};

const BUYERS: usize = 64;
const BATCH: usize = 640;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2099, 8, 15).unwrap()
}

/// Books `BATCH` tickets from `BUYERS` tasks against a fresh festival; returns the elapsed time.
async fn batch(engine: Arc<dyn TicketEngine>, festival: i64) -> Duration {
    engine
        .create_inventory(NewInventory {
            festival: FestivalId(festival),
            days: vec![(day(), 1_000_000)],
            rules: Rules {
                max_per_reservation: 1,
                max_per_user_per_day: 1_000,
            },
        })
        .await
        .unwrap();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in 0..BUYERS {
        let engine = engine.clone();
        tasks.spawn(async move {
            for _ in 0..BATCH / BUYERS {
                engine
                    .reserve(Booking {
                        user: UserId(buyer as i64),
                        festival: FestivalId(festival),
                        date: day(),
                        quantity: 1,
                        idempotency_key: None,
                    })
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

fn bench_tickets(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut engines: Vec<(String, Arc<dyn TicketEngine>)> =
        vec![("memory".into(), Arc::new(MemoryTickets::default()))];
    for strategy in [
        Strategy::RowLock,
        Strategy::ConditionalUpdate,
        Strategy::GroupCommit,
    ] {
        let path = dir.path().join(format!("{strategy:?}.db"));
        let pool = runtime.block_on(async {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&format!(
                "sqlite://{}",
                path.display()
            ))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .unwrap()
        });
        let engine = SqlTickets::new(SqlPool::Sqlite(pool), strategy);
        runtime.block_on(engine.migrate()).unwrap();
        engines.push((format!("sqlite/{strategy:?}"), Arc::new(engine)));
    }
    if let Ok(url) = std::env::var("TEST_MYSQL_URL") {
        for strategy in [
            Strategy::RowLock,
            Strategy::ConditionalUpdate,
            Strategy::GroupCommit,
        ] {
            let (db, engine) = runtime.block_on(async {
                let db = test_support::mysql::TestDatabase::create(&url)
                    .await
                    .unwrap();
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(32)
                    .connect(db.url())
                    .await
                    .unwrap();
                let engine = SqlTickets::new(SqlPool::MySql(pool), strategy);
                engine.migrate().await.unwrap();
                (db, engine)
            });
            engines.push((format!("mariadb/{strategy:?}"), Arc::new(engine)));
            std::mem::forget(db); // dropped by scripts/services.sh's sweep of somsom_t_* databases
        }
    } else {
        eprintln!("TEST_MYSQL_URL not set: MariaDB left out (source scripts/services.sh)");
    }

    let festivals = AtomicI64::new(1);
    let mut group = c.benchmark_group("reserve_64_buyers_one_day");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    for (name, engine) in engines {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let festival = festivals.fetch_add(1, Ordering::Relaxed);
                    total += runtime.block_on(batch(engine.clone(), festival));
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_tickets);
criterion_main!(benches);
