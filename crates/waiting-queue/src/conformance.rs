//! The checks every [`WaitingQueue`] backend passes.
//!
//! A backend's test calls [`run_all`] with a factory that makes a fresh, empty engine reading
//! the given clock (for a shared store: a fresh key prefix), and [`two_engines_agree`] with two
//! engines over one store, as two server nodes would hold.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use engine_clock::{Clock, ManualClock};

use crate::{Consumption, Place, Policy, QueueError, QueueName, TickRule, WaitingQueue};

/// Makes an empty engine that reads the time from the given clock.
pub type Factory =
    dyn Fn(Arc<dyn Clock>) -> Pin<Box<dyn Future<Output = Arc<dyn WaitingQueue>> + Send>> + Sync;

/// A manual clock at a fixed instant.
pub fn clock() -> ManualClock {
    ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2027-03-01T09:00:00Z")
            .unwrap()
            .to_utc(),
    )
}

fn q(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

fn policy(batch_size: u32) -> Policy {
    Policy {
        batch_size,
        ..Policy::default()
    }
}

async fn engine(factory: &Factory) -> (Arc<dyn WaitingQueue>, ManualClock) {
    let clock = clock();
    (factory(Arc::new(clock.clone())).await, clock)
}

/// Runs every check, each on a fresh engine.
pub async fn run_all(factory: &Factory) {
    fifo_order_and_idempotent_join(factory).await;
    bad_users_are_refused(factory).await;
    ranks_close_up_after_leaves(factory).await;
    admission_in_batches_once_per_interval(factory).await;
    cap_on_active_admissions(factory).await;
    admissions_expire(factory).await;
    silent_waiters_are_dropped(factory).await;
    sequenced_ticks_apply_once(factory).await;
    pause_stops_ticks_not_overrides(factory).await;
    stats_and_queues(factory).await;
    version_moves_when_ranks_improve(factory).await;
    concurrent_joins_get_every_rank_once(factory, 10_000).await;
    the_pre_queue_opens_in_lottery_order(factory).await;
    the_first_tick_after_the_opening_admits_at_once(factory).await;
    joins_racing_the_opening_land_on_one_side_only(factory).await;
    the_seed_is_drawn_once_and_an_opening_cannot_move(factory).await;
    admissions_are_used_once(factory).await;
    sold_out_closes_the_line_until_tickets_come_back(factory).await;
    a_quiet_queue_admits_at_once(factory).await;
}

fn at(clock: &ManualClock, seconds: i64) -> chrono::DateTime<chrono::Utc> {
    clock.now() + TimeDelta::seconds(seconds)
}

/// Before the opening, joiners are in the pre-queue without a rank; at the opening they are put
/// in the lottery's order (reproducible from the seed revealed in the statistics), ahead of
/// everyone who joins afterwards, in arrival order.
pub async fn the_pre_queue_opens_in_lottery_order(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("drop1");
    e.configure(&queue, Some(policy(7))).await.unwrap();
    let opens = at(&clock, 60);
    e.schedule(&queue, Some(opens)).await.unwrap();
    let early: Vec<String> = (0..50).map(|i| format!("early{i}")).collect();
    for user in &early {
        assert_eq!(
            e.join(&queue, user).await.unwrap(),
            Place::PreQueue {
                opens_at: opens,
                new: true
            }
        );
    }
    assert_eq!(
        e.join(&queue, "early3").await.unwrap(),
        Place::PreQueue {
            opens_at: opens,
            new: false
        }
    );
    assert_eq!(e.rank(&queue, "early3").await.unwrap(), None);
    assert!(
        e.leave(&queue, "early49").await.unwrap(),
        "leaving the pre-queue"
    );
    let early = &early[..49];
    let before = e.stats(&queue).await.unwrap();
    assert_eq!((before.pre_queue, before.waiting), (49, 0));
    assert_eq!(before.seed, None, "the seed is secret until the opening");
    let tick = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(
        tick.admitted.is_empty(),
        "nobody is admitted before the opening"
    );

    clock.advance(TimeDelta::seconds(60));
    assert_eq!(
        e.join(&queue, "late0").await.unwrap(),
        Place::Waiting {
            rank: 50,
            new: true
        }
    );
    e.join(&queue, "late1").await.unwrap();
    let after = e.stats(&queue).await.unwrap();
    let seed = after.seed.expect("revealed at the opening");
    assert_eq!(after.opened_at, Some(clock.now()));
    assert_eq!((after.pre_queue, after.waiting), (0, 51));
    let order = crate::lottery::order(seed, early);
    for (i, user) in order.iter().enumerate() {
        assert_eq!(
            e.rank(&queue, user).await.unwrap(),
            Some(i as u64 + 1),
            "{user}"
        );
    }
    assert_eq!(e.rank(&queue, "late1").await.unwrap(), Some(51));
    clock.advance(TimeDelta::seconds(1));
    let admitted = e.tick(&queue, TickRule::Due).await.unwrap().admitted;
    assert_eq!(admitted, order[..7], "admission follows the lottery");
}

/// The opening starts a fresh interval: the first tick at or after it admits a batch at once,
/// however recently the queue ticked before (ticks before the opening admit nobody), and from
/// then on admission is once per interval again.
pub async fn the_first_tick_after_the_opening_admits_at_once(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("drop-now");
    e.configure(&queue, Some(policy(3))).await.unwrap();
    e.schedule(&queue, Some(at(&clock, 10))).await.unwrap();
    for i in 0..5 {
        e.join(&queue, &format!("u{i}")).await.unwrap();
    }
    clock.advance(TimeDelta::milliseconds(9_900));
    let before = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(before.admitted.is_empty(), "not open yet");
    clock.advance(TimeDelta::milliseconds(100));
    let opening = e.tick(&queue, TickRule::Due).await.unwrap();
    assert_eq!(
        opening.admitted.len(),
        3,
        "admitted at the opening, not an interval after the last tick"
    );
    clock.advance(TimeDelta::milliseconds(100));
    let next = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(next.admitted.is_empty(), "then once per interval");
    clock.advance(TimeDelta::milliseconds(900));
    assert_eq!(
        e.tick(&queue, TickRule::Due).await.unwrap().admitted.len(),
        2
    );
}

/// Joins racing the opening each land on exactly one side: everyone told "pre-queue" ends up
/// ahead of everyone told a rank, and every rank is given once.
pub async fn joins_racing_the_opening_land_on_one_side_only(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("drop2");
    e.schedule(&queue, Some(at(&clock, 1))).await.unwrap();
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..400 {
        let (e, queue, clock) = (e.clone(), queue.clone(), clock.clone());
        joins.spawn(async move {
            if i == 200 {
                clock.advance(TimeDelta::seconds(1));
            }
            let user = format!("u{i}");
            let place = e.join(&queue, &user).await.unwrap();
            (user, place)
        });
    }
    let placed = joins.join_all().await;
    let pre: Vec<&String> = placed
        .iter()
        .filter(|(_, p)| matches!(p, Place::PreQueue { .. }))
        .map(|(u, _)| u)
        .collect();
    let mut ranks = Vec::new();
    for (user, _) in &placed {
        ranks.push((e.rank(&queue, user).await.unwrap().expect("in line"), user));
    }
    ranks.sort();
    assert_eq!(
        ranks.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        (1..=400).collect::<Vec<u64>>()
    );
    for (rank, user) in &ranks {
        assert_eq!(
            pre.contains(user),
            *rank <= pre.len() as u64,
            "{user} at {rank}"
        );
    }
}

/// Scheduling again before the opening moves it but keeps the seed; after the opening only the
/// same opening is accepted.
pub async fn the_seed_is_drawn_once_and_an_opening_cannot_move(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("drop3");
    e.schedule(&queue, Some(at(&clock, 30))).await.unwrap();
    e.join(&queue, "a").await.unwrap();
    e.schedule(&queue, Some(at(&clock, 60))).await.unwrap();
    clock.advance(TimeDelta::seconds(30));
    assert!(matches!(
        e.join(&queue, "b").await.unwrap(),
        Place::PreQueue { .. }
    ));
    clock.advance(TimeDelta::seconds(30));
    let stats = e.stats(&queue).await.unwrap();
    let seed = stats.seed.unwrap();
    assert_eq!(stats.opens_at, Some(clock.now()));
    let order = crate::lottery::order(seed, &["a", "b"]);
    assert_eq!(e.rank(&queue, &order[0]).await.unwrap(), Some(1));
    assert!(matches!(
        e.schedule(&queue, Some(at(&clock, 60))).await,
        Err(QueueError::Invalid { .. })
    ));
    e.schedule(&queue, stats.opens_at).await.unwrap();
    e.schedule(&queue, None).await.unwrap();
    assert_eq!(e.stats(&queue).await.unwrap().seed, Some(seed));
}

/// An admission is used once: a second use, another admission's number, and a finished one are
/// refused; a used admission frees its place under the cap; giving it back makes it live again.
pub async fn admissions_are_used_once(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("drop4");
    let capped = Policy {
        max_active: Some(1),
        ..policy(1)
    };
    e.configure(&queue, Some(capped)).await.unwrap();
    for user in ["a", "b", "c"] {
        e.join(&queue, user).await.unwrap();
    }
    e.tick(&queue, TickRule::Due).await.unwrap();
    let first = e.admission(&queue, "a").await.unwrap().expect("admitted");
    assert_eq!(
        e.consume(&queue, "b", first.id).await.unwrap(),
        Consumption::NotAdmitted,
        "someone else's admission"
    );
    assert_eq!(
        e.consume(&queue, "a", first.id + 1000).await.unwrap(),
        Consumption::NotAdmitted
    );
    assert_eq!(
        e.consume(&queue, "a", first.id).await.unwrap(),
        Consumption::Consumed
    );
    assert_eq!(
        e.consume(&queue, "a", first.id).await.unwrap(),
        Consumption::AlreadyUsed
    );
    assert!(e.admission(&queue, "a").await.unwrap().is_none(), "used");
    assert!(e.release(&queue, "a", first.id).await.unwrap());
    assert_eq!(e.admission(&queue, "a").await.unwrap(), Some(first));
    assert_eq!(
        e.consume(&queue, "a", first.id).await.unwrap(),
        Consumption::Consumed
    );
    let stats = e.stats(&queue).await.unwrap();
    assert_eq!((stats.admitted, stats.consumed_total), (0, 1));
    clock.advance(TimeDelta::seconds(1));
    let next = e.tick(&queue, TickRule::Due).await.unwrap();
    assert_eq!(next.admitted, ["b"], "a used admission frees the cap");
    let second = e.admission(&queue, "b").await.unwrap().unwrap();
    assert_ne!(second.id, first.id);
    assert!(e.finish(&queue, "b").await.unwrap());
    assert_eq!(
        e.consume(&queue, "b", second.id).await.unwrap(),
        Consumption::NotAdmitted,
        "a finished admission"
    );
    // With a used admission, joining again is a new turn at the back.
    assert_eq!(
        e.join(&queue, "a").await.unwrap(),
        Place::Waiting { rank: 2, new: true }
    );
    // Two requests at once with one admission: one wins.
    clock.advance(TimeDelta::seconds(1));
    e.tick(&queue, TickRule::Due).await.unwrap();
    let third = e.admission(&queue, "c").await.unwrap().unwrap();
    let (x, y) = tokio::join!(
        e.consume(&queue, "c", third.id),
        e.consume(&queue, "c", third.id)
    );
    let mut both = [x.unwrap(), y.unwrap()];
    both.sort_by_key(|c| *c == Consumption::Consumed);
    assert_eq!(both, [Consumption::AlreadyUsed, Consumption::Consumed]);
}

/// Sold out: ticks admit nobody and new joins are refused; waiters keep their places and are
/// admitted in order once tickets come back.
pub async fn sold_out_closes_the_line_until_tickets_come_back(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("drop5");
    e.configure(&queue, Some(policy(2))).await.unwrap();
    for i in 0..5 {
        e.join(&queue, &format!("u{i}")).await.unwrap();
    }
    let v = e.version(&queue).await.unwrap();
    e.set_sold_out(&queue, true).await.unwrap();
    assert_ne!(e.version(&queue).await.unwrap(), v, "watchers are told");
    assert!(e.stats(&queue).await.unwrap().sold_out);
    assert!(
        e.tick(&queue, TickRule::Due)
            .await
            .unwrap()
            .admitted
            .is_empty()
    );
    assert!(
        e.admit(&queue, 3).await.unwrap().admitted.is_empty(),
        "not by hand either: there is nothing to book"
    );
    assert!(matches!(
        e.join(&queue, "newcomer").await,
        Err(QueueError::SoldOut)
    ));
    assert_eq!(
        e.join(&queue, "u3").await.unwrap(),
        Place::Waiting {
            rank: 4,
            new: false
        },
        "a waiter keeps their place"
    );
    e.set_sold_out(&queue, false).await.unwrap();
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        e.tick(&queue, TickRule::Due).await.unwrap().admitted,
        ["u0", "u1"]
    );
}

/// With `admit_when_idle`, someone joining an empty line is admitted at once, within the
/// interval's batch; once anyone waits, newcomers wait behind them.
pub async fn a_quiet_queue_admits_at_once(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("drop6");
    let quiet = Policy {
        admit_when_idle: true,
        ..policy(2)
    };
    e.configure(&queue, Some(quiet)).await.unwrap();
    assert!(matches!(
        e.join(&queue, "a").await.unwrap(),
        Place::Admitted(_)
    ));
    assert!(matches!(
        e.join(&queue, "b").await.unwrap(),
        Place::Admitted(_)
    ));
    assert_eq!(
        e.join(&queue, "c").await.unwrap(),
        Place::Waiting { rank: 1, new: true },
        "the interval's batch is spent"
    );
    let tick = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(tick.admitted.is_empty(), "the tick's batch went to a and b");
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(e.tick(&queue, TickRule::Due).await.unwrap().admitted, ["c"]);
    e.join(&queue, "d").await.unwrap();
    assert!(
        matches!(e.join(&queue, "e").await.unwrap(), Place::Waiting { .. }),
        "d waits (the batch is spent), so e waits behind"
    );
}

/// Ranks follow arrival; joining again keeps one's place.
pub async fn fifo_order_and_idempotent_join(factory: &Factory) {
    let (e, _) = engine(factory).await;
    let queue = q("festival1");
    for (i, user) in ["a@x", "b@x", "c@x"].iter().enumerate() {
        assert_eq!(
            e.join(&queue, user).await.unwrap(),
            Place::Waiting {
                rank: i as u64 + 1,
                new: true
            }
        );
    }
    assert_eq!(
        e.join(&queue, "b@x").await.unwrap(),
        Place::Waiting {
            rank: 2,
            new: false
        },
        "a user joining again keeps their place"
    );
    assert_eq!(e.rank(&queue, "c@x").await.unwrap(), Some(3));
    assert_eq!(e.rank(&queue, "nobody@x").await.unwrap(), None);
    assert_eq!(e.rank(&q("elsewhere"), "a@x").await.unwrap(), None);
    assert_eq!(
        e.stats(&queue).await.unwrap().waiting,
        3,
        "one place per user"
    );
}

/// Keys that could break a token or a key layout are refused.
pub async fn bad_users_are_refused(factory: &Factory) {
    let (e, _) = engine(factory).await;
    for user in ["", "a\nb", &"x".repeat(300)] {
        assert!(
            matches!(
                e.join(&q("festival1"), user).await,
                Err(QueueError::Invalid { field: "user", .. })
            ),
            "{user:?}"
        );
    }
}

/// Leaving from the middle moves everyone behind up by one.
pub async fn ranks_close_up_after_leaves(factory: &Factory) {
    let (e, _) = engine(factory).await;
    let queue = q("festival2");
    for i in 0..6 {
        e.join(&queue, &format!("u{i}")).await.unwrap();
    }
    assert!(e.leave(&queue, "u1").await.unwrap());
    assert!(e.leave(&queue, "u4").await.unwrap());
    assert!(!e.leave(&queue, "u4").await.unwrap(), "leaving twice");
    let ranks: Vec<Option<u64>> =
        futures_ranks(&*e, &queue, &["u0", "u1", "u2", "u3", "u4", "u5"]).await;
    assert_eq!(ranks, [Some(1), None, Some(2), Some(3), None, Some(4)]);
    // Someone who left and comes back is at the back.
    assert_eq!(
        e.join(&queue, "u1").await.unwrap(),
        Place::Waiting { rank: 5, new: true }
    );
}

async fn futures_ranks(
    e: &dyn WaitingQueue,
    queue: &QueueName,
    users: &[&str],
) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for user in users {
        out.push(e.rank(queue, user).await.unwrap());
    }
    out
}

/// A tick admits the next batch in order, at most once per interval, however often it is asked.
pub async fn admission_in_batches_once_per_interval(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("festival3");
    e.configure(&queue, Some(policy(3))).await.unwrap();
    for i in 0..8 {
        e.join(&queue, &format!("u{i}")).await.unwrap();
    }
    let first = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(first.applied);
    assert_eq!(first.admitted, ["u0", "u1", "u2"]);
    assert_eq!(first.waiting, 5);
    let again = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(!again.applied && again.admitted.is_empty(), "not due yet");
    clock.advance(TimeDelta::seconds(1));
    let second = e.tick(&queue, TickRule::Due).await.unwrap();
    assert_eq!(second.admitted, ["u3", "u4", "u5"]);
    assert_eq!(second.tick, 2);

    assert_eq!(e.rank(&queue, "u6").await.unwrap(), Some(1));
    assert_eq!(
        e.rank(&queue, "u0").await.unwrap(),
        None,
        "admitted users are not waiting"
    );
    let admission = e.admission(&queue, "u0").await.unwrap().expect("admitted");
    assert_eq!(
        admission.expires_at,
        clock.now() - TimeDelta::seconds(1) + TimeDelta::seconds(600)
    );
    assert!(matches!(
        e.join(&queue, "u0").await.unwrap(),
        Place::Admitted(_)
    ));
    assert!(e.admission(&queue, "u6").await.unwrap().is_none());

    assert!(e.finish(&queue, "u0").await.unwrap());
    assert!(!e.finish(&queue, "u0").await.unwrap(), "finished already");
    assert!(e.admission(&queue, "u0").await.unwrap().is_none());
    assert_eq!(
        e.join(&queue, "u0").await.unwrap(),
        Place::Waiting { rank: 3, new: true },
        "after finishing, back of the line"
    );
}

/// No more than `max_active` admissions are live at once.
pub async fn cap_on_active_admissions(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("festival4");
    let capped = Policy {
        max_active: Some(4),
        ..policy(3)
    };
    e.configure(&queue, Some(capped)).await.unwrap();
    for i in 0..10 {
        e.join(&queue, &format!("u{i}")).await.unwrap();
    }
    assert_eq!(
        e.tick(&queue, TickRule::Due).await.unwrap().admitted.len(),
        3
    );
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        e.tick(&queue, TickRule::Due).await.unwrap().admitted,
        ["u3"]
    );
    clock.advance(TimeDelta::seconds(1));
    let full = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(full.applied && full.admitted.is_empty(), "at the cap");
    assert_eq!(
        e.admit(&queue, 5).await.unwrap().admitted.len(),
        0,
        "manual admission keeps the cap"
    );
    e.finish(&queue, "u1").await.unwrap();
    e.finish(&queue, "u2").await.unwrap();
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        e.tick(&queue, TickRule::Due).await.unwrap().admitted,
        ["u4", "u5"]
    );
    assert_eq!(e.stats(&queue).await.unwrap().admitted, 4);
}

/// An admission lapses after its time; the user must queue again.
pub async fn admissions_expire(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("festival5");
    let short = Policy {
        admitted_ttl: Duration::from_secs(60),
        max_active: Some(2),
        ..policy(2)
    };
    e.configure(&queue, Some(short)).await.unwrap();
    for user in ["a", "b", "c", "d"] {
        e.join(&queue, user).await.unwrap();
    }
    e.tick(&queue, TickRule::Due).await.unwrap();
    clock.advance(TimeDelta::seconds(59));
    assert!(e.admission(&queue, "a").await.unwrap().is_some());
    clock.advance(TimeDelta::seconds(1));
    assert!(
        e.admission(&queue, "a").await.unwrap().is_none(),
        "lapsed at 60 s"
    );
    assert_eq!(e.stats(&queue).await.unwrap().admitted, 0);
    let tick = e.tick(&queue, TickRule::Due).await.unwrap();
    assert_eq!(tick.expired, 2);
    assert_eq!(tick.admitted, ["c", "d"], "lapsed admissions free the cap");
    assert_eq!(
        e.join(&queue, "a").await.unwrap(),
        Place::Waiting { rank: 1, new: true },
        "a lapsed user starts again"
    );
}

/// With an idle timeout, waiters who stop asking are dropped at the next tick.
pub async fn silent_waiters_are_dropped(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("festival6");
    let idle = Policy {
        idle_timeout: Some(Duration::from_secs(30)),
        ..policy(1)
    };
    e.configure(&queue, Some(idle)).await.unwrap();
    for user in ["quiet", "chatty", "late"] {
        e.join(&queue, user).await.unwrap();
    }
    clock.advance(TimeDelta::seconds(20));
    assert_eq!(e.rank(&queue, "chatty").await.unwrap(), Some(2));
    e.join(&queue, "late").await.unwrap();
    clock.advance(TimeDelta::seconds(15));
    let tick = e.tick(&queue, TickRule::Due).await.unwrap();
    assert_eq!(tick.dropped, 1);
    assert_eq!(tick.admitted, ["chatty"]);
    assert_eq!(e.rank(&queue, "quiet").await.unwrap(), None);
    assert_eq!(e.rank(&queue, "late").await.unwrap(), Some(1));
}

/// Tick `n` applies only after tick `n - 1`, and only once.
pub async fn sequenced_ticks_apply_once(factory: &Factory) {
    let (e, _) = engine(factory).await;
    let queue = q("festival7");
    e.configure(&queue, Some(policy(1))).await.unwrap();
    for i in 0..5 {
        e.join(&queue, &format!("u{i}")).await.unwrap();
    }
    let one = e.tick(&queue, TickRule::Sequence(1)).await.unwrap();
    assert!(one.applied && one.tick == 1);
    assert!(
        !e.tick(&queue, TickRule::Sequence(1)).await.unwrap().applied,
        "a duplicate"
    );
    assert!(
        !e.tick(&queue, TickRule::Sequence(3)).await.unwrap().applied,
        "out of order"
    );
    // Sequenced ticks do not wait for the interval: the message delay is the interval.
    let two = e.tick(&queue, TickRule::Sequence(2)).await.unwrap();
    assert_eq!(
        (two.applied, two.tick, two.admitted),
        (true, 2, vec!["u1".to_owned()])
    );
}

/// Paused queues tick without admitting; an operator's admission still works.
pub async fn pause_stops_ticks_not_overrides(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let queue = q("festival8");
    e.configure(&queue, Some(policy(2))).await.unwrap();
    for i in 0..6 {
        e.join(&queue, &format!("u{i}")).await.unwrap();
    }
    e.set_paused(&queue, true).await.unwrap();
    let paused = e.tick(&queue, TickRule::Due).await.unwrap();
    assert!(paused.applied && paused.admitted.is_empty());
    assert!(e.stats(&queue).await.unwrap().paused);
    assert_eq!(e.admit(&queue, 1).await.unwrap().admitted, ["u0"]);
    e.set_paused(&queue, false).await.unwrap();
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        e.tick(&queue, TickRule::Due).await.unwrap().admitted,
        ["u1", "u2"]
    );
}

/// Statistics and the list of queues a driver must tick.
pub async fn stats_and_queues(factory: &Factory) {
    let (e, clock) = engine(factory).await;
    let busy = q("festival9");
    let configured = q("festival10");
    let untouched = q("festival11");
    let fresh = e.stats(&untouched).await.unwrap();
    assert_eq!(
        (fresh.waiting, fresh.admitted, fresh.tick, fresh.configured),
        (0, 0, 0, false)
    );
    assert_eq!(fresh.policy, Policy::default());
    for i in 0..25 {
        e.join(&busy, &format!("u{i}")).await.unwrap();
    }
    e.configure(&configured, Some(policy(5))).await.unwrap();
    let mut queues = e.queues().await.unwrap();
    queues.sort();
    assert_eq!(queues, [configured.clone(), busy.clone()]);
    for _ in 0..2 {
        e.tick(&busy, TickRule::Due).await.unwrap();
        clock.advance(TimeDelta::seconds(1));
    }
    let stats = e.stats(&busy).await.unwrap();
    assert_eq!(
        (
            stats.waiting,
            stats.admitted,
            stats.admitted_total,
            stats.tick
        ),
        (5, 20, 20, 2)
    );
    assert!(!stats.configured && !stats.paused);
    assert!(stats.last_tick_at.is_some());
    assert!(
        (stats.admission_rate - 10.0).abs() < 0.01,
        "20 admitted over 2 s: {}",
        stats.admission_rate
    );
    assert_eq!(stats.estimated_wait(5), Some(Duration::from_millis(500)));
    let configured_stats = e.stats(&configured).await.unwrap();
    assert!(configured_stats.configured);
    assert_eq!(configured_stats.policy.batch_size, 5);
    e.configure(&configured, None).await.unwrap();
    assert!(!e.stats(&configured).await.unwrap().configured);
    assert!(matches!(
        e.configure(&busy, Some(policy(0))).await,
        Err(QueueError::Invalid { .. })
    ));
}

/// The version moves when someone leaves or is admitted, not when someone joins at the back.
pub async fn version_moves_when_ranks_improve(factory: &Factory) {
    let (e, _) = engine(factory).await;
    let queue = q("festival12");
    let v0 = e.version(&queue).await.unwrap();
    e.join(&queue, "a").await.unwrap();
    e.join(&queue, "b").await.unwrap();
    e.join(&queue, "c").await.unwrap();
    assert_eq!(
        e.version(&queue).await.unwrap(),
        v0,
        "joining at the back changes no rank"
    );
    e.leave(&queue, "a").await.unwrap();
    let v1 = e.version(&queue).await.unwrap();
    assert_ne!(v1, v0);
    e.tick(&queue, TickRule::Due).await.unwrap();
    assert_ne!(e.version(&queue).await.unwrap(), v1);
}

/// `n` users joining at once get the ranks 1..=n, each exactly once, and ranks agree afterwards.
pub async fn concurrent_joins_get_every_rank_once(factory: &Factory, n: u64) {
    let (e, _) = engine(factory).await;
    let queue = q("festival13");
    let joins = (0..n).map(|i| {
        let e = e.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let user = format!("user{i}@x");
            match e.join(&queue, &user).await.unwrap() {
                Place::Waiting { rank, new: true } => (user, rank),
                other => panic!("{other:?}"),
            }
        })
    });
    let placed: Vec<(String, u64)> = futures::future::try_join_all(joins).await.unwrap();
    let ranks: BTreeSet<u64> = placed.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        ranks,
        (1..=n).collect::<BTreeSet<_>>(),
        "every rank exactly once"
    );
    for (user, rank) in placed.iter().step_by(97) {
        assert_eq!(e.rank(&queue, user).await.unwrap(), Some(*rank));
    }
    // Admission follows the same order.
    let admitted = e.admit(&queue, 5).await.unwrap().admitted;
    let mut first: Vec<&(String, u64)> = placed.iter().filter(|(_, r)| *r <= 5).collect();
    first.sort_by_key(|(_, r)| *r);
    let first: Vec<&str> = first.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(admitted, first);
}

/// Two engines over one store (two nodes) see one line: interleaved joins get consecutive
/// ranks, and a tick on one is not repeated by the other within the interval.
pub async fn two_engines_agree(
    a: Arc<dyn WaitingQueue>,
    b: Arc<dyn WaitingQueue>,
    clock: &ManualClock,
) {
    let queue = q("festival14");
    a.configure(&queue, Some(policy(4))).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let user = format!("u{i}");
        assert_eq!(
            node.join(&queue, &user).await.unwrap(),
            Place::Waiting {
                rank: i + 1,
                new: true
            }
        );
        expected.push(user);
    }
    assert_eq!(b.rank(&queue, "u0").await.unwrap(), Some(1));
    assert!(b.leave(&queue, "u0").await.unwrap());
    assert_eq!(a.rank(&queue, "u1").await.unwrap(), Some(1));
    expected.remove(0);
    let mut admitted = Vec::new();
    for _ in 0..5 {
        // Both nodes' drivers ask; one batch per interval results.
        let x = a.tick(&queue, TickRule::Due).await.unwrap();
        let y = b.tick(&queue, TickRule::Due).await.unwrap();
        assert!(x.applied != y.applied, "exactly one of the two applied");
        admitted.extend(x.admitted);
        admitted.extend(y.admitted);
        clock.advance(TimeDelta::seconds(1));
    }
    assert_eq!(admitted, expected);
    assert!(a.admission(&queue, "u19").await.unwrap().is_some());
    let used = b.admission(&queue, "u19").await.unwrap().unwrap();
    assert_eq!(
        a.consume(&queue, "u19", used.id).await.unwrap(),
        Consumption::Consumed
    );
    assert_eq!(
        b.consume(&queue, "u19", used.id).await.unwrap(),
        Consumption::AlreadyUsed,
        "used on one node, refused on the other"
    );

    // One opening, scheduled by both nodes: one seed, one order, the same ranks on both.
    let drop = q("festival15");
    let opens = clock.now() + TimeDelta::seconds(10);
    let (x, y) = tokio::join!(
        a.schedule(&drop, Some(opens)),
        b.schedule(&drop, Some(opens))
    );
    x.unwrap();
    y.unwrap();
    let users: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    for (i, user) in users.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        assert!(matches!(
            node.join(&drop, user).await.unwrap(),
            Place::PreQueue { .. }
        ));
    }
    clock.advance(TimeDelta::seconds(10));
    let seed = a.stats(&drop).await.unwrap().seed.unwrap();
    assert_eq!(b.stats(&drop).await.unwrap().seed, Some(seed));
    for (i, user) in crate::lottery::order(seed, &users).iter().enumerate() {
        let rank = Some(i as u64 + 1);
        assert_eq!(a.rank(&drop, user).await.unwrap(), rank);
        assert_eq!(b.rank(&drop, user).await.unwrap(), rank);
    }
}
