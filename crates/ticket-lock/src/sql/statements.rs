//! The statements, written once and instantiated for SQLite and MySQL/MariaDB: they differ in how
//! a transaction begins, whether a read can lock (`FOR UPDATE`), `INSERT … IGNORE`, and how the
//! new id is read.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::Outcome;
use crate::model::{check, from_millis};
use crate::{
    Booking, DayStock, FestivalId, Inventory, NewInventory, Reservation, ReservationId, Rules,
    Status, TicketError, UserId,
};

#[derive(sqlx::FromRow)]
pub(crate) struct ReservationRow {
    id: ReservationId,
    user_id: UserId,
    festival_id: FestivalId,
    festival_date: NaiveDate,
    quantity: i32,
    status: String,
    created_at: i64,
    cancelled_at: Option<i64>,
}

impl From<ReservationRow> for Reservation {
    fn from(r: ReservationRow) -> Self {
        Reservation {
            id: r.id,
            user: r.user_id,
            festival: r.festival_id,
            date: r.festival_date,
            quantity: u32::try_from(r.quantity).unwrap_or(0),
            status: Status::parse(&r.status).unwrap_or(Status::Cancelled),
            created_at: from_millis(r.created_at),
            cancelled_at: r.cancelled_at.map(from_millis),
        }
    }
}

/// A reservation with its idempotency key.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyedRow {
    #[sqlx(flatten)]
    row: ReservationRow,
    /// Bytes: a `VARBINARY` on MySQL (keys compare exactly), `TEXT` on SQLite.
    idempotency_key: Vec<u8>,
}

const RESERVATION_COLUMNS: &str =
    "id, user_id, festival_id, festival_date, quantity, status, created_at, cancelled_at";

/// The reservation `booking` became, under `id`.
fn booked_as(booking: &Booking, id: ReservationId, now: i64) -> Reservation {
    Reservation {
        id,
        user: booking.user,
        festival: booking.festival,
        date: booking.date,
        quantity: booking.quantity,
        status: Status::Active,
        created_at: from_millis(now),
        cancelled_at: None,
    }
}

/// The answer to a retry under a key already used: the earlier reservation, or a refusal when
/// the key was used for a different booking.
fn replay(booking: &Booking, earlier: &Reservation) -> Outcome {
    if booking.same_as(earlier) {
        Outcome::Replayed(earlier.clone())
    } else {
        Outcome::Refused(TicketError::KeyReused)
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The same functions for each database.
macro_rules! dialect {
    ($module:ident, $db:ty, begin: $begin:literal, for_update: $for_update:literal,
     insert_ignore: $insert_ignore:literal, returning: $returning:literal,
     |$result:ident| $last_id:expr) => {
        pub(super) mod $module {
            use super::*;
            use sqlx::{Pool, QueryBuilder};

            type Db = $db;

            pub(crate) async fn create_inventory(
                pool: &Pool<Db>,
                new: &NewInventory,
            ) -> Result<(), sqlx::Error> {
                let mut tx = pool.begin_with($begin).await?;
                let inserted = sqlx::query(concat!(
                    $insert_ignore,
                    " INTO ticket_rules (festival_id, max_per_reservation, max_per_user_per_day) \
                     VALUES (?, ?, ?)"
                ))
                .bind(new.festival)
                .bind(i64::from(new.rules.max_per_reservation))
                .bind(i64::from(new.rules.max_per_user_per_day))
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    let mut q = QueryBuilder::<Db>::new(
                        "INSERT INTO ticket_days (festival_id, festival_date, total, remaining) ",
                    );
                    q.push_values(&new.days, |mut row, (date, total)| {
                        row.push_bind(new.festival)
                            .push_bind(*date)
                            .push_bind(i64::from(*total))
                            .push_bind(i64::from(*total));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await
            }

            pub(crate) async fn inventory(
                pool: &Pool<Db>,
                festival: FestivalId,
            ) -> Result<Option<Inventory>, sqlx::Error> {
                let rules: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT max_per_reservation, max_per_user_per_day FROM ticket_rules \
                     WHERE festival_id = ?",
                )
                .bind(festival)
                .fetch_optional(pool)
                .await?;
                let Some((per_reservation, per_user)) = rules else {
                    return Ok(None);
                };
                let days: Vec<(NaiveDate, i64, i64)> = sqlx::query_as(
                    "SELECT festival_date, total, remaining FROM ticket_days \
                     WHERE festival_id = ? ORDER BY festival_date",
                )
                .bind(festival)
                .fetch_all(pool)
                .await?;
                Ok(Some(Inventory {
                    festival,
                    rules: Rules {
                        max_per_reservation: count(per_reservation),
                        max_per_user_per_day: count(per_user),
                    },
                    days: days
                        .into_iter()
                        .map(|(date, total, left)| DayStock {
                            date,
                            total: count(total),
                            left: count(left),
                        })
                        .collect(),
                }))
            }

            async fn remaining_locked(
                tx: &mut sqlx::Transaction<'static, Db>,
                booking: &Booking,
            ) -> Result<Option<i64>, sqlx::Error> {
                sqlx::query_scalar(concat!(
                    "SELECT remaining FROM ticket_days WHERE festival_id = ? AND festival_date = ?",
                    $for_update
                ))
                .bind(booking.festival)
                .bind(booking.date)
                .fetch_optional(&mut **tx)
                .await
            }

            /// The festival's rules (defaults if it has none stored).
            async fn rules_in(
                tx: &mut sqlx::Transaction<'static, Db>,
                festival: FestivalId,
            ) -> Result<Rules, sqlx::Error> {
                let rules: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT max_per_reservation, max_per_user_per_day FROM ticket_rules \
                     WHERE festival_id = ?",
                )
                .bind(festival)
                .fetch_optional(&mut **tx)
                .await?;
                Ok(rules
                    .map(|(r, u)| Rules {
                        max_per_reservation: count(r),
                        max_per_user_per_day: count(u),
                    })
                    .unwrap_or_default())
            }

            /// Takes `quantity` tickets from the day of `booking`, whose row lock is held.
            async fn take_in(
                tx: &mut sqlx::Transaction<'static, Db>,
                booking: &Booking,
                quantity: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "UPDATE ticket_days SET remaining = remaining - ? \
                     WHERE festival_id = ? AND festival_date = ?",
                )
                .bind(quantity)
                .bind(booking.festival)
                .bind(booking.date)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// What each of `users` holds (active tickets) for the day of `first`, in one query
            /// for a whole group of bookings.
            async fn held_by_users_in(
                tx: &mut sqlx::Transaction<'static, Db>,
                first: &Booking,
                users: &[UserId],
            ) -> Result<std::collections::HashMap<UserId, u32>, sqlx::Error> {
                let marks = vec!["?"; users.len()].join(", ");
                let sql = format!(
                    "SELECT user_id, CAST(SUM(quantity) AS SIGNED) FROM reservations \
                     WHERE festival_id = ? AND festival_date = ? AND status = 'ACTIVE' \
                     AND user_id IN ({marks}) GROUP BY user_id"
                );
                let mut query = sqlx::query_as::<_, (UserId, i64)>(sqlx::AssertSqlSafe(sql))
                    .bind(first.festival)
                    .bind(first.date);
                for user in users {
                    query = query.bind(*user);
                }
                let rows = query.fetch_all(&mut **tx).await?;
                Ok(rows.into_iter().map(|(user, held)| (user, count(held))).collect())
            }

            /// Records the booking; the stock is taken by the caller.
            async fn insert_in(
                tx: &mut sqlx::Transaction<'static, Db>,
                booking: &Booking,
                now: i64,
            ) -> Result<Reservation, sqlx::Error> {
                let $result = sqlx::query(
                    "INSERT INTO reservations (user_id, festival_id, festival_date, quantity, \
                     status, idempotency_key, created_at) VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?)",
                )
                .bind(booking.user)
                .bind(booking.festival)
                .bind(booking.date)
                .bind(i64::from(booking.quantity))
                .bind(booking.idempotency_key.as_deref())
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(booked_as(booking, $last_id, now))
            }

            /// One booking with the conditional update: the stock is taken by the first
            /// statement (which also takes the row lock), and given back by the rollback when a
            /// later check refuses.
            pub(crate) async fn reserve_conditional(
                pool: &Pool<Db>,
                booking: &Booking,
                now: i64,
                today: NaiveDate,
            ) -> Result<Outcome, sqlx::Error> {
                let quantity = i64::from(booking.quantity);
                let mut tx = pool.begin_with($begin).await?;
                let updated = sqlx::query(
                    "UPDATE ticket_days SET remaining = remaining - ? \
                     WHERE festival_id = ? AND festival_date = ? AND remaining >= ?",
                )
                .bind(quantity)
                .bind(booking.festival)
                .bind(booking.date)
                .bind(quantity)
                .execute(&mut *tx)
                .await?;
                let taken = updated.rows_affected() == 1;
                let remaining = if taken {
                    Some(quantity)
                } else {
                    remaining_locked(&mut tx, booking).await?
                };
                let Some(remaining) = remaining else {
                    return Ok(Outcome::Refused(TicketError::NotFound));
                };
                let earlier = earlier_many_in(&mut tx, std::slice::from_ref(booking)).await?;
                if let Some(earlier) = earlier.values().next() {
                    tx.rollback().await?;
                    return Ok(replay(booking, earlier));
                }
                let rules = rules_in(&mut tx, booking.festival).await?;
                let held = held_by_users_in(&mut tx, booking, &[booking.user])
                    .await?
                    .get(&booking.user)
                    .copied()
                    .unwrap_or(0);
                if let Err(refusal) = check(booking, rules, count(remaining), held, today) {
                    tx.rollback().await?;
                    return Ok(Outcome::Refused(refusal));
                }
                if !taken {
                    // Tickets came back (a cancellation committed) between the conditional
                    // update and the locking read; the lock is held now, so take them.
                    take_in(&mut tx, booking, quantity).await?;
                }
                let reservation = insert_in(&mut tx, booking, now).await?;
                tx.commit().await?;
                Ok(Outcome::Booked(reservation))
            }

            /// The earlier reservations under the keys of `bookings`, by (user, key), in one
            /// query for a whole group.
            async fn earlier_many_in(
                tx: &mut sqlx::Transaction<'static, Db>,
                bookings: &[Booking],
            ) -> Result<HashMap<(UserId, Vec<u8>), Reservation>, sqlx::Error> {
                let keyed: Vec<(UserId, &str)> = bookings
                    .iter()
                    .filter_map(|b| b.idempotency_key.as_deref().map(|k| (b.user, k)))
                    .collect();
                if keyed.is_empty() {
                    return Ok(HashMap::new());
                }
                let marks = vec!["?"; keyed.len()].join(", ");
                let sql = format!(
                    "SELECT {RESERVATION_COLUMNS}, idempotency_key FROM reservations \
                     WHERE user_id IN ({marks}) AND idempotency_key IN ({marks})"
                );
                let mut query = sqlx::query_as::<_, KeyedRow>(sqlx::AssertSqlSafe(sql));
                for (user, _) in &keyed {
                    query = query.bind(*user);
                }
                for (_, key) in &keyed {
                    query = query.bind(*key);
                }
                let rows = query.fetch_all(&mut **tx).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| ((r.row.user_id, r.idempotency_key), Reservation::from(r.row)))
                    .collect())
            }

            /// Records the accepted bookings (`accepted` indexes `bookings`), in order; the
            /// stock is taken by the caller. A unique-key violation (the same key committed by
            /// another node meanwhile) fails the statement, and the caller runs the group again.
            async fn insert_all_in(
                tx: &mut sqlx::Transaction<'static, Db>,
                bookings: &[Booking],
                accepted: &[usize],
                now: i64,
            ) -> Result<Vec<Reservation>, sqlx::Error> {
                if accepted.is_empty() {
                    return Ok(Vec::new());
                }
                if !$returning {
                    let mut reservations = Vec::with_capacity(accepted.len());
                    for &i in accepted {
                        reservations.push(insert_in(tx, &bookings[i], now).await?);
                    }
                    return Ok(reservations);
                }
                // One statement for the group. Rows are inserted in the order given, each with a
                // larger id than any before (AUTOINCREMENT), so the sorted ids are in that order
                // too.
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO reservations (user_id, festival_id, festival_date, \
                     quantity, status, idempotency_key, created_at) ",
                );
                q.push_values(accepted, |mut row, &i| {
                    let b = &bookings[i];
                    row.push_bind(b.user)
                        .push_bind(b.festival)
                        .push_bind(b.date)
                        .push_bind(i64::from(b.quantity))
                        .push_bind("ACTIVE")
                        .push_bind(b.idempotency_key.as_deref())
                        .push_bind(now);
                });
                q.push(" RETURNING id");
                let mut ids: Vec<ReservationId> = q.build_query_scalar().fetch_all(&mut **tx).await?;
                ids.sort_unstable();
                Ok(accepted
                    .iter()
                    .zip(ids)
                    .map(|(&i, id)| booked_as(&bookings[i], id, now))
                    .collect())
            }

            /// Books several bookings of one festival day in one transaction: the day's row is
            /// locked once (`SELECT … FOR UPDATE`), each booking is checked in turn (seeing the
            /// ones before it), the accepted ones are inserted, the stock is taken once, and one
            /// commit (one log flush) covers them all. With one booking this is the plain
            /// row-lock booking. `None` for a booking whose key an earlier booking of the same
            /// group uses: the caller books it again on its own and finds that one.
            pub(crate) async fn reserve_batch(
                pool: &Pool<Db>,
                bookings: &[Booking],
                now: i64,
                today: NaiveDate,
            ) -> Result<Vec<Option<Outcome>>, sqlx::Error> {
                let Some(first) = bookings.first() else {
                    return Ok(Vec::new());
                };
                let mut tx = pool.begin_with($begin).await?;
                let Some(mut remaining) = remaining_locked(&mut tx, first).await? else {
                    tx.rollback().await?;
                    return Ok(bookings
                        .iter()
                        .map(|_| Some(Outcome::Refused(TicketError::NotFound)))
                        .collect());
                };
                // Every plain read comes after the lock: on InnoDB the first one fixes the
                // transaction's snapshot, and the holdings read below must see each booking
                // committed before the lock was granted (a rules subquery inside the locking
                // read took the snapshot before the wait, and the per-user cap broke across
                // two nodes).
                let rules = rules_in(&mut tx, first.festival).await?;
                let mut users: Vec<UserId> = bookings.iter().map(|b| b.user).collect();
                users.sort_unstable();
                users.dedup();
                // One read each for the group; bookings accepted in the loop are added as it
                // goes, so each booking still sees the ones before it.
                let mut held = held_by_users_in(&mut tx, first, &users).await?;
                let earlier = earlier_many_in(&mut tx, bookings).await?;
                let mut keys = std::collections::HashSet::new();
                let mut results = Vec::with_capacity(bookings.len());
                let mut accepted = Vec::new();
                let mut taken = 0i64;
                for (i, booking) in bookings.iter().enumerate() {
                    if let Some(key) = &booking.idempotency_key {
                        if let Some(earlier) = earlier.get(&(booking.user, key.as_bytes().to_vec())) {
                            results.push(Some(replay(booking, earlier)));
                            continue;
                        }
                        if !keys.insert((booking.user, key.as_str())) {
                            results.push(None);
                            continue;
                        }
                    }
                    let holds = held.get(&booking.user).copied().unwrap_or(0);
                    if let Err(refusal) = check(booking, rules, count(remaining), holds, today) {
                        results.push(Some(Outcome::Refused(refusal)));
                        continue;
                    }
                    *held.entry(booking.user).or_default() += booking.quantity;
                    remaining -= i64::from(booking.quantity);
                    taken += i64::from(booking.quantity);
                    accepted.push(i);
                    results.push(None);
                }
                let reservations = insert_all_in(&mut tx, bookings, &accepted, now).await?;
                for (i, reservation) in accepted.into_iter().zip(reservations) {
                    results[i] = Some(Outcome::Booked(reservation));
                }
                if taken > 0 {
                    take_in(&mut tx, first, taken).await?;
                }
                tx.commit().await?;
                Ok(results)
            }

            pub(crate) async fn cancel(
                pool: &Pool<Db>,
                user: UserId,
                id: ReservationId,
                now: i64,
                today: NaiveDate,
            ) -> Result<Result<Reservation, TicketError>, sqlx::Error> {
                let mut tx = pool.begin_with($begin).await?;
                let Some(row) = reservation_in(&mut tx, user, id).await? else {
                    return Ok(Err(TicketError::ReservationNotFound));
                };
                let reservation = Reservation::from(row);
                if reservation.status == Status::Cancelled {
                    return Ok(Err(TicketError::AlreadyProcessed));
                }
                if reservation.date < today {
                    return Ok(Err(TicketError::DayClosed));
                }
                // The day's row lock first, as bookings take it, then the status change that a
                // concurrent cancellation may have won.
                sqlx::query(
                    "UPDATE ticket_days SET remaining = remaining + ? \
                     WHERE festival_id = ? AND festival_date = ?",
                )
                .bind(i64::from(reservation.quantity))
                .bind(reservation.festival)
                .bind(reservation.date)
                .execute(&mut *tx)
                .await?;
                let changed = sqlx::query(
                    "UPDATE reservations SET status = 'CANCELLED', cancelled_at = ? \
                     WHERE id = ? AND status = 'ACTIVE'",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if changed.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(Err(TicketError::AlreadyProcessed));
                }
                tx.commit().await?;
                Ok(Ok(Reservation {
                    status: Status::Cancelled,
                    cancelled_at: Some(from_millis(now)),
                    ..reservation
                }))
            }

            async fn reservation_in(
                tx: &mut sqlx::Transaction<'static, Db>,
                user: UserId,
                id: ReservationId,
            ) -> Result<Option<ReservationRow>, sqlx::Error> {
                let sql = format!(
                    "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ? AND user_id = ?"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(user)
                    .fetch_optional(&mut **tx)
                    .await
            }

            pub(crate) async fn reservation_by_key(
                pool: &Pool<Db>,
                user: UserId,
                key: &str,
            ) -> Result<Option<Reservation>, sqlx::Error> {
                let sql = format!(
                    "SELECT {RESERVATION_COLUMNS} FROM reservations \
                     WHERE user_id = ? AND idempotency_key = ?"
                );
                let row: Option<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .bind(key)
                    .fetch_optional(pool)
                    .await?;
                Ok(row.map(Reservation::from))
            }

            pub(crate) async fn reservation(
                pool: &Pool<Db>,
                user: UserId,
                id: ReservationId,
            ) -> Result<Option<Reservation>, sqlx::Error> {
                let sql = format!(
                    "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ? AND user_id = ?"
                );
                let row: Option<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(user)
                    .fetch_optional(pool)
                    .await?;
                Ok(row.map(Reservation::from))
            }

            pub(crate) async fn held(
                pool: &Pool<Db>,
                user: UserId,
                festival: FestivalId,
                date: NaiveDate,
            ) -> Result<u32, sqlx::Error> {
                let held: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM reservations \
                     WHERE user_id = ? AND festival_id = ? AND festival_date = ? AND status = 'ACTIVE'",
                )
                .bind(user)
                .bind(festival)
                .bind(date)
                .fetch_one(pool)
                .await?;
                Ok(count(held))
            }

            pub(crate) async fn reservation_by_id(
                pool: &Pool<Db>,
                id: ReservationId,
            ) -> Result<Option<Reservation>, sqlx::Error> {
                let sql = format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?");
                let row: Option<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                Ok(row.map(Reservation::from))
            }

            pub(crate) async fn day_reservations(
                pool: &Pool<Db>,
                festival: FestivalId,
                date: NaiveDate,
                after: ReservationId,
                limit: i64,
            ) -> Result<Vec<Reservation>, sqlx::Error> {
                let sql = format!(
                    "SELECT {RESERVATION_COLUMNS} FROM reservations \
                     WHERE festival_id = ? AND festival_date = ? AND id > ? ORDER BY id LIMIT ?"
                );
                let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(festival)
                    .bind(date)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                Ok(rows.into_iter().map(Reservation::from).collect())
            }

            pub(crate) async fn active_from(
                pool: &Pool<Db>,
                from: NaiveDate,
                after: ReservationId,
                limit: i64,
            ) -> Result<Vec<Reservation>, sqlx::Error> {
                let sql = format!(
                    "SELECT {RESERVATION_COLUMNS} FROM reservations \
                     WHERE id > ? AND status = 'ACTIVE' AND festival_date >= ? ORDER BY id LIMIT ?"
                );
                let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(after)
                    .bind(from)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                Ok(rows.into_iter().map(Reservation::from).collect())
            }

            pub(crate) async fn reservations(
                pool: &Pool<Db>,
                user: UserId,
                below: ReservationId,
                limit: i64,
            ) -> Result<Vec<Reservation>, sqlx::Error> {
                let sql = format!(
                    "SELECT {RESERVATION_COLUMNS} FROM reservations \
                     WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
                );
                let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .bind(below)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                Ok(rows.into_iter().map(Reservation::from).collect())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
dialect!(
    sqlite,
    sqlx::Sqlite,
    begin: "BEGIN IMMEDIATE",
    for_update: "",
    insert_ignore: "INSERT OR IGNORE",
    returning: true,
    |result| ReservationId(result.last_insert_rowid())
);
#[cfg(feature = "mysql")]
dialect!(
    mysql,
    sqlx::MySql,
    begin: "BEGIN",
    for_update: " FOR UPDATE",
    insert_ignore: "INSERT IGNORE",
    returning: false,
    |result| ReservationId(i64::try_from(result.last_insert_id()).unwrap_or(i64::MAX))
);
