//! The checks every [`TicketEngine`] passes, contention included.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::NaiveDate;
use engine_clock::{Clock, ManualClock};

use crate::{
    Booking, FestivalId, NewInventory, ReservationId, Rules, Status, TicketEngine, TicketError,
    UserId, Window,
};

/// Makes an empty engine that reads the time from the given clock.
pub type Factory =
    dyn Fn(Arc<dyn Clock>) -> Pin<Box<dyn Future<Output = Arc<dyn TicketEngine>> + Send>> + Sync;

/// 10 January 2027 + `n` days.
pub fn day(n: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 10).unwrap() + chrono::Days::new(n)
}

/// A clock at 5 January 2027, before the festival days.
pub fn clock() -> ManualClock {
    ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2027-01-05T00:00:00Z")
            .unwrap()
            .to_utc(),
    )
}

/// A booking without an idempotency key.
pub fn booking(user: i64, festival: i64, date: NaiveDate, quantity: u32) -> Booking {
    Booking {
        user: UserId(user),
        festival: FestivalId(festival),
        date,
        quantity,
        idempotency_key: None,
    }
}

/// Stock for `festival`: three days of `per_day` tickets, default rules.
pub fn inventory(festival: i64, per_day: u32) -> NewInventory {
    NewInventory {
        festival: FestivalId(festival),
        days: (0..3).map(|n| (day(n), per_day)).collect(),
        rules: Rules::default(),
    }
}

/// Runs every check (each on a fresh engine where it counts stock from zero).
pub async fn run_all(factory: &Factory) {
    let c = clock();
    let engine = factory(Arc::new(c.clone())).await;
    inventory_is_created_once_and_read_back(&*engine).await;
    booking_rules(&*engine, &c).await;
    cancellation(&*engine).await;
    idempotent_retries(&*engine).await;
    reservations_page_newest_first(&*engine).await;
    holdings_and_the_walk_over_active_bookings(&*engine).await;
    a_day_and_a_reservation_read_by_anyone(&*engine).await;
    no_oversell_under_contention(std::slice::from_ref(&engine), 1).await;
    user_cap_holds_under_contention(std::slice::from_ref(&engine), 2).await;
    retry_storm_books_once(std::slice::from_ref(&engine), 3).await;
    cancel_and_rebuy_race(std::slice::from_ref(&engine), 4).await;
}

fn left(inventory: &crate::Inventory, date: NaiveDate) -> u32 {
    inventory.days.iter().find(|d| d.date == date).unwrap().left
}

/// Stock reads back as created; creating again changes nothing; bad stock is refused.
pub async fn inventory_is_created_once_and_read_back(engine: &dyn TicketEngine) {
    let created = engine.create_inventory(inventory(10, 100)).await.unwrap();
    assert_eq!(created.days.len(), 3);
    assert!(created.days.iter().all(|d| d.total == 100 && d.left == 100));
    assert_eq!(created.days[0].date, day(0));
    assert_eq!(created.rules, Rules::default());
    let again = engine.create_inventory(inventory(10, 5)).await.unwrap();
    assert_eq!(again, created, "a second create keeps the first stock");
    assert_eq!(engine.inventory(FestivalId(10)).await.unwrap(), created);
    assert!(matches!(
        engine.inventory(FestivalId(999)).await,
        Err(TicketError::NotFound)
    ));
    let mut bad = inventory(11, 10);
    bad.rules.max_per_reservation = 0;
    assert!(matches!(
        engine.create_inventory(bad).await,
        Err(TicketError::Invalid {
            field: "maxPerReservation",
            ..
        })
    ));
    let empty = NewInventory {
        days: vec![],
        ..inventory(12, 1)
    };
    assert!(matches!(
        engine.create_inventory(empty).await,
        Err(TicketError::Invalid { .. })
    ));
}

/// Each rule refuses with its own error and changes nothing.
pub async fn booking_rules(engine: &dyn TicketEngine, clock: &ManualClock) {
    let mut small = inventory(20, 100);
    small.days[2].1 = 2;
    engine.create_inventory(small).await.unwrap();

    let booked = engine.reserve(booking(1, 20, day(0), 3)).await.unwrap();
    assert!(!booked.replayed);
    let r = booked.reservation;
    assert_eq!(
        (r.user, r.festival, r.date, r.quantity, r.status),
        (UserId(1), FestivalId(20), day(0), 3, Status::Active)
    );
    assert_eq!(
        r.created_at.timestamp_millis(),
        clock.now().timestamp_millis()
    );
    assert_eq!(
        left(&engine.inventory(FestivalId(20)).await.unwrap(), day(0)),
        97
    );

    let refusals = [
        (booking(1, 20, day(0), 0), "quantity 0"),
        (
            booking(1, 20, day(0), 5),
            "more than one reservation may hold",
        ),
    ];
    for (b, why) in refusals {
        assert!(
            matches!(
                engine.reserve(b).await,
                Err(TicketError::Invalid {
                    field: "quantity",
                    ..
                })
            ),
            "{why}"
        );
    }
    assert!(matches!(
        engine.reserve(booking(1, 20, day(0), 2)).await,
        Err(TicketError::LimitExceeded { limit: 4, held: 3 })
    ));
    // The cap is per day: another day is fine.
    engine.reserve(booking(1, 20, day(1), 4)).await.unwrap();
    assert!(matches!(
        engine.reserve(booking(2, 20, day(2), 3)).await,
        Err(TicketError::SoldOut { left: 2 })
    ));
    assert!(matches!(
        engine.reserve(booking(2, 20, day(5), 1)).await,
        Err(TicketError::NotFound)
    ));
    assert!(matches!(
        engine.reserve(booking(2, 999, day(0), 1)).await,
        Err(TicketError::NotFound)
    ));
    assert_eq!(
        left(&engine.inventory(FestivalId(20)).await.unwrap(), day(0)),
        97,
        "refusals change nothing"
    );

    // Once the day is over where the festival is (KST), it can no longer be booked.
    clock.advance(chrono::Duration::days(6)); // 2027-01-11 00:00 UTC = 09:00 KST
    assert!(matches!(
        engine.reserve(booking(3, 20, day(0), 1)).await,
        Err(TicketError::DayClosed)
    ));
    engine.reserve(booking(3, 20, day(1), 1)).await.unwrap();
    clock.advance(chrono::Duration::days(-6));
}

/// Only the owner cancels, once; the tickets go back; the cap frees up.
pub async fn cancellation(engine: &dyn TicketEngine) {
    engine.create_inventory(inventory(30, 10)).await.unwrap();
    let r = engine
        .reserve(booking(7, 30, day(0), 4))
        .await
        .unwrap()
        .reservation;
    assert_eq!(
        left(&engine.inventory(FestivalId(30)).await.unwrap(), day(0)),
        6
    );
    assert!(matches!(
        engine.cancel(UserId(8), r.id).await,
        Err(TicketError::ReservationNotFound)
    ));
    assert!(matches!(
        engine.reservation(UserId(8), r.id).await,
        Err(TicketError::ReservationNotFound)
    ));
    let cancelled = engine.cancel(UserId(7), r.id).await.unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert!(cancelled.cancelled_at.is_some());
    assert_eq!(
        engine.reservation(UserId(7), r.id).await.unwrap(),
        cancelled
    );
    assert_eq!(
        left(&engine.inventory(FestivalId(30)).await.unwrap(), day(0)),
        10
    );
    assert!(matches!(
        engine.cancel(UserId(7), r.id).await,
        Err(TicketError::AlreadyProcessed)
    ));
    assert_eq!(
        left(&engine.inventory(FestivalId(30)).await.unwrap(), day(0)),
        10,
        "no double return"
    );
    engine.reserve(booking(7, 30, day(0), 4)).await.unwrap();
    assert!(matches!(
        engine.cancel(UserId(7), ReservationId(987_654)).await,
        Err(TicketError::ReservationNotFound)
    ));
}

/// `held` counts a user's active tickets for a day; `active_from` walks every user's active
/// bookings from a day on, in id order, page by page.
pub async fn holdings_and_the_walk_over_active_bookings(engine: &dyn TicketEngine) {
    engine.create_inventory(inventory(60, 100)).await.unwrap();
    let a = engine
        .reserve(booking(81, 60, day(0), 2))
        .await
        .unwrap()
        .reservation;
    let b = engine
        .reserve(booking(81, 60, day(0), 1))
        .await
        .unwrap()
        .reservation;
    let c = engine
        .reserve(booking(82, 60, day(1), 3))
        .await
        .unwrap()
        .reservation;
    let d = engine
        .reserve(booking(82, 60, day(2), 1))
        .await
        .unwrap()
        .reservation;
    assert_eq!(
        engine
            .held(UserId(81), FestivalId(60), day(0))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        engine
            .held(UserId(82), FestivalId(60), day(0))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        engine
            .held(UserId(82), FestivalId(60), day(1))
            .await
            .unwrap(),
        3
    );
    engine.cancel(UserId(81), a.id).await.unwrap();
    assert_eq!(
        engine
            .held(UserId(81), FestivalId(60), day(0))
            .await
            .unwrap(),
        1,
        "cancelled tickets are not held"
    );

    // Other checks' bookings may share the engine: look at festival 60 only.
    let mut walked = Vec::new();
    let mut after = ReservationId(0);
    loop {
        let page = engine.active_from(day(1), after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        assert!(page.windows(2).all(|w| w[0].id < w[1].id), "id order");
        walked.extend(
            page.into_iter()
                .filter(|r| r.festival == FestivalId(60))
                .map(|r| r.id),
        );
    }
    assert_eq!(walked, vec![c.id, d.id], "from day 1 on, active only");
    let all: Vec<_> = engine
        .active_from(day(0), ReservationId(0), 10_000)
        .await
        .unwrap();
    let ours: Vec<_> = all
        .iter()
        .filter(|r| r.festival == FestivalId(60))
        .map(|r| r.id)
        .collect();
    assert_eq!(ours, vec![b.id, c.id, d.id]);
}

/// Any reservation reads back by id whoever booked it; a day's reservations, cancelled ones too,
/// walk in id order and no other day's or festival's come with them.
pub async fn a_day_and_a_reservation_read_by_anyone(engine: &dyn TicketEngine) {
    engine.create_inventory(inventory(61, 100)).await.unwrap();
    engine.create_inventory(inventory(62, 100)).await.unwrap();
    let mut booked = Vec::new();
    for (user, festival, n) in [
        (91, 61, 0),
        (92, 61, 0),
        (93, 61, 1),
        (94, 62, 0),
        (95, 61, 0),
    ] {
        let r = engine
            .reserve(booking(user, festival, day(n), 1))
            .await
            .unwrap()
            .reservation;
        booked.push(r);
    }
    engine.cancel(UserId(92), booked[1].id).await.unwrap();
    let read = engine.reservation_by_id(booked[3].id).await.unwrap();
    assert_eq!(read.user, UserId(94));
    assert!(matches!(
        engine.reservation_by_id(ReservationId(i64::MAX)).await,
        Err(TicketError::ReservationNotFound)
    ));
    let mut walked = Vec::new();
    let mut after = ReservationId(0);
    loop {
        let page = engine
            .day_reservations(FestivalId(61), day(0), after, 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        walked.extend(page.into_iter().map(|r| (r.id, r.status)));
    }
    assert_eq!(
        walked,
        vec![
            (booked[0].id, Status::Active),
            (booked[1].id, Status::Cancelled),
            (booked[4].id, Status::Active),
        ]
    );
}

/// The same key books once and answers with the first reservation; a different booking under
/// the same key is refused; keys are per user.
pub async fn idempotent_retries(engine: &dyn TicketEngine) {
    engine.create_inventory(inventory(40, 10)).await.unwrap();
    let keyed = |user, quantity| Booking {
        idempotency_key: Some("retry-1".into()),
        ..booking(user, 40, day(0), quantity)
    };
    let first = engine.reserve(keyed(1, 2)).await.unwrap();
    let second = engine.reserve(keyed(1, 2)).await.unwrap();
    assert!(!first.replayed && second.replayed);
    assert_eq!(first.reservation, second.reservation);
    assert_eq!(
        left(&engine.inventory(FestivalId(40)).await.unwrap(), day(0)),
        8
    );
    assert!(matches!(
        engine.reserve(keyed(1, 3)).await,
        Err(TicketError::KeyReused)
    ));
    let other = engine.reserve(keyed(2, 2)).await.unwrap();
    assert!(!other.replayed);
    assert_ne!(other.reservation.id, first.reservation.id);
    assert_eq!(
        engine
            .reservation_by_key(UserId(1), "retry-1")
            .await
            .unwrap(),
        Some(first.reservation.clone()),
        "the key finds the reservation it made"
    );
    assert_eq!(
        engine
            .reservation_by_key(UserId(3), "retry-1")
            .await
            .unwrap(),
        None,
        "keys are per user"
    );
    let too_long = Booking {
        idempotency_key: Some("k".repeat(101)),
        ..booking(3, 40, day(0), 1)
    };
    assert!(matches!(
        engine.reserve(too_long).await,
        Err(TicketError::Invalid {
            field: "Idempotency-Key",
            ..
        })
    ));
}

/// A user's reservations, newest first, with the cursor; others' are not listed.
pub async fn reservations_page_newest_first(engine: &dyn TicketEngine) {
    let mut new = inventory(50, 100);
    new.rules.max_per_user_per_day = 100;
    new.rules.max_per_reservation = 1;
    engine.create_inventory(new).await.unwrap();
    let mut mine = Vec::new();
    for i in 0..12 {
        mine.push(
            engine
                .reserve(booking(500, 50, day(i % 3), 1))
                .await
                .unwrap()
                .reservation
                .id,
        );
        engine.reserve(booking(501, 50, day(0), 1)).await.unwrap();
    }
    mine.reverse();
    let mut seen = Vec::new();
    let mut cursor = ReservationId(0);
    loop {
        let page = engine
            .reservations(UserId(500), Window::new(cursor, 5).unwrap())
            .await
            .unwrap();
        assert!(page.reservations.iter().all(|r| r.user == UserId(500)));
        seen.extend(page.reservations.iter().map(|r| r.id));
        match page.last_id {
            Some(last) => cursor = last,
            None => break,
        }
    }
    assert_eq!(seen, mine);
    assert!(matches!(
        Window::new(0, 0),
        Err(TicketError::Invalid { field: "limit", .. })
    ));
    assert!(matches!(
        Window::new(0, 101),
        Err(TicketError::Invalid { field: "limit", .. })
    ));
}

/// 1,000 buyers at once for 100 tickets (spread over `engines`, e.g. two nodes on one
/// database): exactly 100 sold, stock never below zero, every answer true.
pub async fn no_oversell_under_contention(engines: &[Arc<dyn TicketEngine>], festival_base: i64) {
    let festival = 1_000 + festival_base;
    let new = NewInventory {
        days: vec![(day(0), 100)],
        ..inventory(festival, 0)
    };
    engines[0].create_inventory(new).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in 0..1_000i64 {
        let engine = engines[buyer as usize % engines.len()].clone();
        tasks.spawn(async move {
            engine
                .reserve(booking(10_000 + buyer, festival, day(0), 1))
                .await
        });
    }
    let (mut sold, mut sold_out) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(booked) => {
                assert_eq!(booked.reservation.quantity, 1);
                sold += 1;
            }
            Err(TicketError::SoldOut { left }) => {
                assert_eq!(left, 0, "refused while tickets were left");
                sold_out += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((sold, sold_out), (100, 900));
    for engine in engines {
        assert_eq!(
            left(
                &engine.inventory(FestivalId(festival)).await.unwrap(),
                day(0)
            ),
            0
        );
    }
}

/// One user firing 20 one-ticket bookings at once gets exactly the cap.
pub async fn user_cap_holds_under_contention(
    engines: &[Arc<dyn TicketEngine>],
    festival_base: i64,
) {
    let festival = 1_000 + festival_base;
    engines[0]
        .create_inventory(inventory(festival, 100))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20usize {
        let engine = engines[i % engines.len()].clone();
        tasks.spawn(async move { engine.reserve(booking(77, festival, day(0), 1)).await });
    }
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => ok += 1,
            Err(TicketError::LimitExceeded { limit: 4, held }) => assert_eq!(held, 4),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 4);
    assert_eq!(
        left(
            &engines[0].inventory(FestivalId(festival)).await.unwrap(),
            day(0)
        ),
        96
    );
}

/// 50 concurrent retries of one keyed booking make one reservation, and all see it.
pub async fn retry_storm_books_once(engines: &[Arc<dyn TicketEngine>], festival_base: i64) {
    let festival = 1_000 + festival_base;
    engines[0]
        .create_inventory(inventory(festival, 100))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50usize {
        let engine = engines[i % engines.len()].clone();
        tasks.spawn(async move {
            engine
                .reserve(Booking {
                    idempotency_key: Some("storm".into()),
                    ..booking(88, festival, day(1), 3)
                })
                .await
                .unwrap()
        });
    }
    let mut ids = Vec::new();
    let mut fresh = 0;
    while let Some(result) = tasks.join_next().await {
        let booked = result.unwrap();
        fresh += usize::from(!booked.replayed);
        ids.push(booked.reservation.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(fresh, 1);
    assert_eq!(
        left(
            &engines[0].inventory(FestivalId(festival)).await.unwrap(),
            day(1)
        ),
        97
    );
}

/// Holders cancelling while others buy: whatever the interleaving, the stock equals the total
/// minus the active reservations.
pub async fn cancel_and_rebuy_race(engines: &[Arc<dyn TicketEngine>], festival_base: i64) {
    let festival = 1_000 + festival_base;
    let new = NewInventory {
        days: vec![(day(2), 20)],
        ..inventory(festival, 0)
    };
    engines[0].create_inventory(new).await.unwrap();
    let mut holders = Vec::new();
    for user in 0..20 {
        holders.push(
            engines[0]
                .reserve(booking(2_000 + user, festival, day(2), 1))
                .await
                .unwrap()
                .reservation,
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, r) in holders.iter().enumerate() {
        let engine = engines[i % engines.len()].clone();
        let (user, id) = (r.user, r.id);
        tasks.spawn(async move { engine.cancel(user, id).await.map(|_| UserId(0)) });
    }
    for buyer in 0..60i64 {
        let engine = engines[buyer as usize % engines.len()].clone();
        tasks.spawn(async move {
            engine
                .reserve(booking(3_000 + buyer, festival, day(2), 1))
                .await
                .map(|b| b.reservation.user)
        });
    }
    let mut bought = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(UserId(0)) => {}
            Ok(_) => bought += 1,
            Err(TicketError::SoldOut { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let stock = left(
        &engines[0].inventory(FestivalId(festival)).await.unwrap(),
        day(2),
    );
    assert!(bought <= 20);
    assert_eq!(stock, 20 - bought, "stock = total - active");
    let mut active = 0;
    for buyer in 0..60i64 {
        let page = engines[0]
            .reservations(UserId(3_000 + buyer), Window::new(0, 10).unwrap())
            .await
            .unwrap();
        active += page
            .reservations
            .iter()
            .filter(|r| r.status == Status::Active)
            .count() as u32;
    }
    assert_eq!(active, bought);
}
