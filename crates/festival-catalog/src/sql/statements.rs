//! The statements, written once and instantiated for SQLite and for MySQL/MariaDB: the SQL is
//! portable (`?` placeholders, `instr`, integer timestamps) except the upsert of gram counts and
//! how the new id is read.

use std::collections::{BTreeMap, BTreeSet};

use super::{FestivalRow, Prepared};
use crate::{FestivalChanges, FestivalId, fold, grams};

const COLUMNS: &str = "id, name, description, location, start_date, end_date, created_at, \
                       updated_at, sale_opens_at, sale_closes_at, sale_queued";

/// Rows per multi-row statement (two placeholders each; both databases allow far more).
const ROWS_PER_STATEMENT: usize = 4_000;

/// The same functions for each database: `insert`, `update`, `get`, `list`, `search`, `count`.
macro_rules! dialect {
    ($module:ident, $db:ty, $upsert:literal, |$result:ident| $last_id:expr) => {
        pub(super) mod $module {
            use super::*;
            use sqlx::{Pool, QueryBuilder};

            type Db = $db;

            async fn add_grams(
                tx: &mut sqlx::Transaction<'_, Db>,
                postings: &[(&str, FestivalId)],
            ) -> Result<(), sqlx::Error> {
                for chunk in postings.chunks(ROWS_PER_STATEMENT) {
                    let mut q = QueryBuilder::<Db>::new("INSERT INTO festival_grams (gram, festival_id) ");
                    q.push_values(chunk, |mut row, (gram, id)| {
                        row.push_bind(*gram).push_bind(*id);
                    });
                    q.build().execute(&mut **tx).await?;
                }
                let counts = tally_postings(postings);
                let counts: Vec<_> = counts.into_iter().collect();
                for chunk in counts.chunks(ROWS_PER_STATEMENT) {
                    let mut q =
                        QueryBuilder::<Db>::new("INSERT INTO festival_gram_counts (gram, festivals) ");
                    q.push_values(chunk, |mut row, (gram, n)| {
                        row.push_bind(*gram).push_bind(*n);
                    });
                    q.push(concat!(" ", $upsert));
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            async fn remove_grams(
                tx: &mut sqlx::Transaction<'_, Db>,
                id: FestivalId,
                removed: &[&String],
            ) -> Result<(), sqlx::Error> {
                for chunk in removed.chunks(ROWS_PER_STATEMENT) {
                    let mut q = QueryBuilder::<Db>::new(
                        "UPDATE festival_gram_counts SET festivals = festivals - 1 WHERE gram IN (",
                    );
                    let mut list = q.separated(", ");
                    for gram in chunk {
                        list.push_bind(gram.as_str());
                    }
                    q.push(")");
                    q.build().execute(&mut **tx).await?;

                    let mut q = QueryBuilder::<Db>::new("DELETE FROM festival_grams WHERE festival_id = ");
                    q.push_bind(id).push(" AND gram IN (");
                    let mut list = q.separated(", ");
                    for gram in chunk {
                        list.push_bind(gram.as_str());
                    }
                    q.push(")");
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            pub(crate) async fn insert(
                pool: &Pool<Db>,
                prepared: &[Prepared],
                now: i64,
            ) -> Result<Vec<FestivalId>, sqlx::Error> {
                let mut tx = pool.begin().await?;
                let mut ids = Vec::with_capacity(prepared.len());
                for p in prepared {
                    let f = &p.festival;
                    let $result = sqlx::query(
                        "INSERT INTO festivals (name, description, location, name_folded, \
                         description_folded, start_date, end_date, created_at, updated_at, \
                         sale_opens_at, sale_closes_at, sale_queued) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&f.name)
                    .bind(&f.description)
                    .bind(&f.location)
                    .bind(&p.name_folded)
                    .bind(&p.description_folded)
                    .bind(f.start_date)
                    .bind(f.end_date)
                    .bind(now)
                    .bind(now)
                    .bind(f.sale.opens_at.map(|t| t.timestamp_millis()))
                    .bind(f.sale.closes_at.map(|t| t.timestamp_millis()))
                    .bind(f.sale.queued)
                    .execute(&mut *tx)
                    .await?;
                    ids.push($last_id);
                }
                let postings: Vec<(&str, FestivalId)> = prepared
                    .iter()
                    .zip(&ids)
                    .flat_map(|(p, id)| p.grams.iter().map(move |g| (g.as_str(), *id)))
                    .collect();
                add_grams(&mut tx, &postings).await?;
                tx.commit().await?;
                Ok(ids)
            }

            pub(crate) async fn update(
                pool: &Pool<Db>,
                id: FestivalId,
                changes: &FestivalChanges,
                now: i64,
            ) -> Result<Option<FestivalRow>, sqlx::Error> {
                let mut tx = pool.begin().await?;
                // Write first: it takes the row lock (MySQL) or the write lock (SQLite) before
                // the read, so two updates never both read the old grams.
                let touched = sqlx::query("UPDATE festivals SET updated_at = ? WHERE id = ?")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if touched.rows_affected() == 0 {
                    return Ok(None);
                }
                let sql = format!("SELECT {COLUMNS} FROM festivals WHERE id = ?");
                let row: FestivalRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut festival: crate::Festival = row.into();
                let old_grams = grams([fold(&festival.name).as_str(), fold(&festival.description).as_str()]);
                changes.apply(&mut festival);
                let (name_folded, description_folded) = (fold(&festival.name), fold(&festival.description));
                let new_grams: BTreeSet<String> = grams([name_folded.as_str(), description_folded.as_str()]);
                sqlx::query(
                    "UPDATE festivals SET name = ?, description = ?, location = ?, name_folded = ?, \
                     description_folded = ?, sale_opens_at = ?, sale_closes_at = ?, \
                     sale_queued = ? WHERE id = ?",
                )
                .bind(&festival.name)
                .bind(&festival.description)
                .bind(&festival.location)
                .bind(&name_folded)
                .bind(&description_folded)
                .bind(festival.sale.opens_at.map(|t| t.timestamp_millis()))
                .bind(festival.sale.closes_at.map(|t| t.timestamp_millis()))
                .bind(festival.sale.queued)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let removed: Vec<&String> = old_grams.difference(&new_grams).collect();
                remove_grams(&mut tx, id, &removed).await?;
                let added: Vec<(&str, FestivalId)> = new_grams
                    .difference(&old_grams)
                    .map(|g| (g.as_str(), id))
                    .collect();
                add_grams(&mut tx, &added).await?;
                let sql = format!("SELECT {COLUMNS} FROM festivals WHERE id = ?");
                let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(row))
            }

            pub(crate) async fn get(pool: &Pool<Db>, id: FestivalId) -> Result<Option<FestivalRow>, sqlx::Error> {
                let sql = format!("SELECT {COLUMNS} FROM festivals WHERE id = ?");
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
            }

            pub(crate) async fn list(
                pool: &Pool<Db>,
                below: FestivalId,
                limit: i64,
            ) -> Result<Vec<FestivalRow>, sqlx::Error> {
                let sql = format!("SELECT {COLUMNS} FROM festivals WHERE id < ? ORDER BY id DESC LIMIT ?");
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(below).bind(limit).fetch_all(pool).await
            }

            pub(crate) async fn search(
                pool: &Pool<Db>,
                required: &[String],
                keyword: &str,
                below: FestivalId,
                limit: i64,
            ) -> Result<Vec<FestivalRow>, sqlx::Error> {
                let mut q = QueryBuilder::<Db>::new(
                    "SELECT gram, festivals FROM festival_gram_counts WHERE festivals > 0 AND gram IN (",
                );
                let mut list = q.separated(", ");
                for gram in required {
                    list.push_bind(gram.as_str());
                }
                q.push(")");
                // Grams are binary in MySQL (see the migration): read bytes on both databases.
                let counts: Vec<(Vec<u8>, i64)> = q.build_query_as().fetch_all(pool).await?;
                if counts.len() < required.len() {
                    // Some gram of the keyword occurs in no festival.
                    return Ok(Vec::new());
                }
                let Some((rarest, _)) = counts.iter().min_by_key(|(_, n)| *n) else {
                    return Ok(Vec::new());
                };
                let sql = format!(
                    "SELECT {} FROM festival_grams g JOIN festivals f ON f.id = g.festival_id \
                     WHERE g.gram = ? AND g.festival_id < ? \
                     AND (instr(f.name_folded, ?) > 0 OR instr(f.description_folded, ?) > 0) \
                     ORDER BY g.festival_id DESC LIMIT ?",
                    COLUMNS.split(", ").map(|c| format!("f.{c}")).collect::<Vec<_>>().join(", ")
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(String::from_utf8_lossy(rarest).into_owned())
                    .bind(below)
                    .bind(keyword)
                    .bind(keyword)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            }

            pub(crate) async fn count(pool: &Pool<Db>) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar("SELECT COUNT(*) FROM festivals").fetch_one(pool).await
            }
        }
    };
}

/// Gram count changes, in gram order so that concurrent writers lock count rows in one order.
fn tally_postings<'a>(postings: &[(&'a str, FestivalId)]) -> BTreeMap<&'a str, i64> {
    let mut counts = BTreeMap::new();
    for (gram, _) in postings {
        *counts.entry(*gram).or_insert(0) += 1;
    }
    counts
}

#[cfg(feature = "sqlite")]
dialect!(
    sqlite,
    sqlx::Sqlite,
    "ON CONFLICT (gram) DO UPDATE SET festivals = festivals + excluded.festivals",
    |result| result.last_insert_rowid()
);
#[cfg(feature = "mysql")]
dialect!(
    mysql,
    sqlx::MySql,
    "ON DUPLICATE KEY UPDATE festivals = festivals + VALUES(festivals)",
    |result| FestivalId::try_from(result.last_insert_id()).unwrap_or(FestivalId::MAX)
);
