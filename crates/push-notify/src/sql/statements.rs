//! The statements, written once and instantiated for SQLite and for MySQL/MariaDB; they differ
//! in how a transaction begins, row locking, and the upsert syntax.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::token_hash;
use crate::{
    Begin, Claimed, DeliveryId, Device, DeviceType, Finish, Notification, Reminder, ReminderKey,
};

/// Rows per multi-row statement (at most four placeholders each).
const ROWS: usize = 1_000;

const REMINDER_COLUMNS: &str =
    "user_id, festival_id, festival_date, due_at, title, body, attempts + 0 AS attempts";

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

macro_rules! dialect {
    ($module:ident, $db:ty, begin: $begin:literal, for_update: $for_update:literal, skip_locked: $skip_locked:literal,
     insert_ignore: $insert_ignore:literal, upsert_device: $upsert_device:literal) => {
        pub(super) mod $module {
            use super::*;
            use sqlx::{Pool, QueryBuilder, Row};

            type Db = $db;
            type Result<T> = std::result::Result<T, sqlx::Error>;

            fn reminder(row: &<Db as sqlx::Database>::Row) -> Result<(Reminder, u32)> {
                let attempts: i64 = row.try_get::<i64, _>("attempts")?;
                Ok((
                    Reminder {
                        key: ReminderKey {
                            user: row.try_get("user_id")?,
                            festival: row.try_get("festival_id")?,
                            date: row.try_get::<NaiveDate, _>("festival_date")?,
                        },
                        due: at(row.try_get("due_at")?),
                        title: row.try_get("title")?,
                        body: row.try_get("body")?,
                    },
                    u32::try_from(attempts).unwrap_or(u32::MAX),
                ))
            }

            pub async fn counts(pool: &Pool<Db>) -> Result<Vec<(String, i64)>> {
                sqlx::query_as("SELECT state, COUNT(*) FROM push_reminders GROUP BY state ORDER BY state")
                    .fetch_all(pool)
                    .await
            }

            pub async fn next_due(pool: &Pool<Db>) -> Result<Option<i64>> {
                sqlx::query_scalar("SELECT MIN(due_at) FROM push_reminders WHERE state = 'pending'")
                    .fetch_one(pool)
                    .await
            }

            pub async fn activate(pool: &Pool<Db>, device: &Device, now: i64) -> Result<()> {
                sqlx::query(concat!(
                    "INSERT INTO push_devices (token_hash, token, user_id, device_type, active, updated_at) ",
                    "VALUES (?, ?, ?, ?, 1, ?) ",
                    $upsert_device
                ))
                .bind(token_hash(&device.token))
                .bind(&device.token)
                .bind(device.user)
                .bind(device.device_type.as_str())
                .bind(now)
                .execute(pool)
                .await?;
                Ok(())
            }

            /// Deletes `user`'s devices past the newest `max` (the one just activated counts as
            /// newest), active or not: a user's rows never pile up.
            pub async fn prune_devices(pool: &Pool<Db>, user: i64, keep: &str, max: usize) -> Result<u64> {
                let others: Vec<String> = sqlx::query_scalar(
                    "SELECT token_hash FROM push_devices WHERE user_id = ? AND token_hash <> ? \
                     ORDER BY updated_at DESC, token_hash",
                )
                .bind(user)
                .bind(token_hash(keep))
                .fetch_all(pool)
                .await?;
                let beyond: Vec<String> = others.into_iter().skip(max.saturating_sub(1)).collect();
                if beyond.is_empty() {
                    return Ok(0);
                }
                let mut q = QueryBuilder::<Db>::new("DELETE FROM push_devices WHERE user_id = ");
                q.push_bind(user).push(" AND token_hash IN (");
                let mut list = q.separated(", ");
                for hash in &beyond {
                    list.push_bind(hash);
                }
                q.push(")");
                Ok(q.build().execute(pool).await?.rows_affected())
            }

            pub async fn deactivate(pool: &Pool<Db>, user: Option<i64>, token: &str, now: i64) -> Result<bool> {
                let done = match user {
                    Some(user) => sqlx::query(
                        "UPDATE push_devices SET active = 0, updated_at = ? WHERE token_hash = ? AND user_id = ? AND active = 1",
                    )
                    .bind(now)
                    .bind(token_hash(token))
                    .bind(user)
                    .execute(pool)
                    .await?,
                    None => sqlx::query(
                        "UPDATE push_devices SET active = 0, updated_at = ? WHERE token_hash = ? AND active = 1",
                    )
                    .bind(now)
                    .bind(token_hash(token))
                    .execute(pool)
                    .await?,
                };
                Ok(done.rows_affected() > 0)
            }

            pub async fn devices(pool: &Pool<Db>, users: &[i64]) -> Result<Vec<Device>> {
                let mut found = Vec::new();
                for chunk in users.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new(
                        "SELECT user_id, token, device_type FROM push_devices WHERE active = 1 AND user_id IN (",
                    );
                    let mut list = q.separated(", ");
                    for user in chunk {
                        list.push_bind(*user);
                    }
                    q.push(") ORDER BY user_id, token");
                    for row in q.build().fetch_all(pool).await? {
                        let kind: String = row.try_get("device_type")?;
                        found.push(Device {
                            user: row.try_get("user_id")?,
                            token: row.try_get("token")?,
                            device_type: DeviceType::parse(&kind).unwrap_or(DeviceType::Web),
                        });
                    }
                }
                Ok(found)
            }

            pub async fn schedule(pool: &Pool<Db>, r: &Reminder) -> Result<bool> {
                let due = r.due.timestamp_millis();
                let done = sqlx::query(concat!(
                    $insert_ignore,
                    " INTO push_reminders (user_id, festival_id, festival_date, due_at, title, body, state, available_at, attempts) ",
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, 0)"
                ))
                .bind(r.key.user)
                .bind(r.key.festival)
                .bind(r.key.date)
                .bind(due)
                .bind(&r.title)
                .bind(&r.body)
                .bind(due)
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            pub async fn cancel(pool: &Pool<Db>, key: &ReminderKey) -> Result<bool> {
                let done = sqlx::query(
                    "DELETE FROM push_reminders WHERE user_id = ? AND festival_id = ? AND festival_date = ? AND state = 'pending'",
                )
                .bind(key.user)
                .bind(key.festival)
                .bind(key.date)
                .execute(pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            pub async fn pending(pool: &Pool<Db>, key: &ReminderKey) -> Result<Option<Reminder>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {REMINDER_COLUMNS} FROM push_reminders \
                     WHERE user_id = ? AND festival_id = ? AND festival_date = ? AND state = 'pending'"
                )))
                .bind(key.user)
                .bind(key.festival)
                .bind(key.date)
                .fetch_optional(pool)
                .await?;
                row.map(|row| reminder(&row).map(|(r, _)| r)).transpose()
            }

            pub async fn pending_keys(pool: &Pool<Db>, keys: &[ReminderKey]) -> Result<Vec<ReminderKey>> {
                let mut found = Vec::new();
                // Four placeholders a key (its user twice).
                for chunk in keys.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new(
                        "SELECT user_id, festival_id, festival_date FROM push_reminders WHERE state = 'pending' AND ",
                    );
                    push_keys(&mut q, chunk.iter());
                    for row in q.build().fetch_all(pool).await? {
                        found.push(ReminderKey {
                            user: row.try_get("user_id")?,
                            festival: row.try_get("festival_id")?,
                            date: row.try_get::<NaiveDate, _>("festival_date")?,
                        });
                    }
                }
                Ok(found)
            }

            /// `user_id IN (…) AND (user_id, festival_id, festival_date) IN (…)`: the first part
            /// lets both databases use the primary key's leading column (neither reliably uses an
            /// index for a list of row values alone), the second picks the exact rows.
            fn push_keys<'a>(q: &mut QueryBuilder<Db>, keys: impl Iterator<Item = &'a ReminderKey> + Clone) {
                push_users(q, keys.clone().map(|k| k.user));
                q.push(" AND (user_id, festival_id, festival_date) IN (");
                let mut first = true;
                for key in keys {
                    q.push(if first { "(" } else { ", (" });
                    first = false;
                    q.push_bind(key.user).push(", ").push_bind(key.festival).push(", ").push_bind(key.date).push(")");
                }
                q.push(")");
            }

            fn push_users(q: &mut QueryBuilder<Db>, users: impl Iterator<Item = i64>) {
                let mut users: Vec<i64> = users.collect();
                users.sort_unstable();
                users.dedup();
                q.push("user_id IN (");
                let mut list = q.separated(", ");
                for user in users {
                    list.push_bind(user);
                }
                q.push(")");
            }

            pub async fn claim(pool: &Pool<Db>, max: usize, now: i64, until: i64, lease: &str) -> Result<Vec<Claimed>> {
                let mut tx = pool.begin_with($begin).await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {REMINDER_COLUMNS} FROM push_reminders WHERE state = 'pending' AND available_at <= ? \
                     ORDER BY available_at LIMIT ?{}",
                    $skip_locked
                )))
                .bind(now)
                .bind(i64::try_from(max).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
                let claimed: Vec<(Reminder, u32)> = rows.iter().map(reminder).collect::<Result<_>>()?;
                for chunk in claimed.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new("UPDATE push_reminders SET lease = ");
                    q.push_bind(lease.to_owned()).push(", available_at = ").push_bind(until);
                    q.push(", attempts = attempts + 1 WHERE ");
                    push_keys(&mut q, chunk.iter().map(|(r, _)| &r.key));
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(claimed
                    .into_iter()
                    .map(|(reminder, attempt)| Claimed { reminder, attempt, receipt: lease.to_owned() })
                    .collect())
            }

            pub async fn finish(pool: &Pool<Db>, done: &[(Claimed, Finish)]) -> Result<()> {
                let mut tx = pool.begin_with($begin).await?;
                // One statement per (lease, outcome): a round's claims share one lease.
                let mut groups: HashMap<(&str, Finish), Vec<&ReminderKey>> = HashMap::new();
                for (c, how) in done {
                    groups.entry((c.receipt.as_str(), *how)).or_default().push(&c.reminder.key);
                }
                for ((lease, how), keys) in groups {
                    for chunk in keys.chunks(ROWS) {
                        let mut q = QueryBuilder::<Db>::new("UPDATE push_reminders SET state = ");
                        q.push_bind(how.as_str()).push(", lease = NULL WHERE state = 'pending' AND lease = ");
                        q.push_bind(lease.to_owned()).push(" AND ");
                        push_keys(&mut q, chunk.iter().copied());
                        q.build().execute(&mut *tx).await?;
                    }
                }
                tx.commit().await
            }

            pub async fn retry(pool: &Pool<Db>, c: &Claimed, at: i64) -> Result<()> {
                sqlx::query(
                    "UPDATE push_reminders SET available_at = ? \
                     WHERE user_id = ? AND festival_id = ? AND festival_date = ? AND state = 'pending' AND lease = ?",
                )
                .bind(at)
                .bind(c.reminder.key.user)
                .bind(c.reminder.key.festival)
                .bind(c.reminder.key.date)
                .bind(&c.receipt)
                .execute(pool)
                .await?;
                Ok(())
            }

            fn push_deliveries(q: &mut QueryBuilder<Db>, ids: &[(DeliveryId, String)]) {
                push_users(q, ids.iter().map(|(id, _)| id.reminder.user));
                q.push(" AND (user_id, festival_id, festival_date, token_hash) IN (");
                for (n, (id, hash)) in ids.iter().enumerate() {
                    q.push(if n == 0 { "(" } else { ", (" });
                    q.push_bind(id.reminder.user).push(", ").push_bind(id.reminder.festival).push(", ");
                    q.push_bind(id.reminder.date).push(", ").push_bind(hash.clone()).push(")");
                }
                q.push(")");
            }

            pub async fn begin(pool: &Pool<Db>, ids: &[DeliveryId], now: i64, stale: i64) -> Result<Vec<Begin>> {
                let hashed: Vec<(DeliveryId, String)> =
                    ids.iter().map(|id| (id.clone(), token_hash(&id.token))).collect();
                let mut tx = pool.begin_with($begin).await?;
                let mut known: HashMap<(ReminderKey, String), (bool, i64)> = HashMap::new();
                for chunk in hashed.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new(
                        "SELECT user_id, festival_id, festival_date, token_hash, sent + 0 AS sent, at FROM push_deliveries WHERE ",
                    );
                    push_deliveries(&mut q, chunk);
                    q.push($for_update);
                    for row in q.build().fetch_all(&mut *tx).await? {
                        let key = ReminderKey {
                            user: row.try_get("user_id")?,
                            festival: row.try_get("festival_id")?,
                            date: row.try_get("festival_date")?,
                        };
                        let sent: i64 = row.try_get("sent")?;
                        known.insert((key, row.try_get("token_hash")?), (sent != 0, row.try_get("at")?));
                    }
                }
                let mut fresh = Vec::new();
                let mut doubted = Vec::new();
                let mut answers = Vec::with_capacity(ids.len());
                for (id, hash) in &hashed {
                    let answer = match known.get(&(id.reminder, hash.clone())) {
                        None => {
                            fresh.push((id.clone(), hash.clone()));
                            known.insert((id.reminder, hash.clone()), (false, now));
                            Begin::Fresh
                        }
                        Some((true, _)) => Begin::Sent,
                        Some((false, began)) if *began < stale => {
                            doubted.push((id.clone(), hash.clone()));
                            Begin::InDoubt
                        }
                        Some(_) => Begin::Busy,
                    };
                    answers.push(answer);
                }
                for chunk in fresh.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new(
                        "INSERT INTO push_deliveries (user_id, festival_id, festival_date, token_hash, sent, at) ",
                    );
                    q.push_values(chunk, |mut row, (id, hash)| {
                        row.push_bind(id.reminder.user)
                            .push_bind(id.reminder.festival)
                            .push_bind(id.reminder.date)
                            .push_bind(hash.clone())
                            .push_bind(0_i64)
                            .push_bind(now);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                for chunk in doubted.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new("UPDATE push_deliveries SET at = ");
                    q.push_bind(now).push(" WHERE sent = 0 AND ");
                    push_deliveries(&mut q, chunk);
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(answers)
            }

            pub async fn sent(pool: &Pool<Db>, ids: &[DeliveryId], now: i64) -> Result<()> {
                let hashed: Vec<(DeliveryId, String)> =
                    ids.iter().map(|id| (id.clone(), token_hash(&id.token))).collect();
                for chunk in hashed.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new("UPDATE push_deliveries SET sent = 1, at = ");
                    q.push_bind(now).push(" WHERE sent = 0 AND ");
                    push_deliveries(&mut q, chunk);
                    q.build().execute(pool).await?;
                }
                Ok(())
            }

            pub async fn abandon(pool: &Pool<Db>, ids: &[DeliveryId]) -> Result<()> {
                let hashed: Vec<(DeliveryId, String)> =
                    ids.iter().map(|id| (id.clone(), token_hash(&id.token))).collect();
                for chunk in hashed.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new("DELETE FROM push_deliveries WHERE sent = 0 AND ");
                    push_deliveries(&mut q, chunk);
                    q.build().execute(pool).await?;
                }
                Ok(())
            }

            pub async fn notified(pool: &Pool<Db>, reminders: &[Reminder], now: i64) -> Result<()> {
                for chunk in reminders.chunks(ROWS) {
                    let mut q = QueryBuilder::<Db>::new(concat!(
                        $insert_ignore,
                        " INTO push_inbox (user_id, festival_id, festival_date, title, body, delivered_at) "
                    ));
                    q.push_values(chunk, |mut row, r| {
                        row.push_bind(r.key.user)
                            .push_bind(r.key.festival)
                            .push_bind(r.key.date)
                            .push_bind(r.title.clone())
                            .push_bind(r.body.clone())
                            .push_bind(now);
                    });
                    q.build().execute(pool).await?;
                }
                Ok(())
            }

            pub async fn recent(pool: &Pool<Db>, user: i64, limit: usize) -> Result<Vec<Notification>> {
                let rows = sqlx::query(
                    "SELECT user_id, festival_id, festival_date, title, body, delivered_at FROM push_inbox \
                     WHERE user_id = ? ORDER BY delivered_at DESC, festival_id DESC, festival_date DESC LIMIT ?",
                )
                .bind(user)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(Notification {
                            key: ReminderKey {
                                user: row.try_get("user_id")?,
                                festival: row.try_get("festival_id")?,
                                date: row.try_get("festival_date")?,
                            },
                            title: row.try_get("title")?,
                            body: row.try_get("body")?,
                            delivered_at: at(row.try_get("delivered_at")?),
                        })
                    })
                    .collect()
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
    skip_locked: "",
    insert_ignore: "INSERT OR IGNORE",
    upsert_device: "ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id, \
        device_type = excluded.device_type, active = 1, updated_at = excluded.updated_at"
);
#[cfg(feature = "mysql")]
dialect!(
    mysql,
    sqlx::MySql,
    begin: "BEGIN",
    for_update: " FOR UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    insert_ignore: "INSERT IGNORE",
    upsert_device: "ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), \
        device_type = VALUES(device_type), active = 1, updated_at = VALUES(updated_at)"
);
