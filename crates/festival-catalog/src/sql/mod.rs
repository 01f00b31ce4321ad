//! SQLite and MySQL/MariaDB (feature `sql`), with an n-gram index for keyword search.
//!
//! Search by the plain definition (`LIKE '%kw%'` over every row) reads the whole table when few
//! festivals match. Here every festival's folded name and description are indexed by their
//! distinct characters and pairs of neighbouring characters (`festival_grams`, with a count per
//! gram in `festival_gram_counts`). A keyword can only occur in a festival that has all of its
//! grams, so search walks the postings of the keyword's rarest gram, newest first, and checks
//! each candidate with `instr` on the folded columns (a byte-exact substring test, so `%` and `_`
//! are literal). A gram that no festival has answers at once. The conformance suite checks the
//! result against the plain definition on random data.

mod statements;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use engine_clock::{Clock, SystemClock};
#[cfg(feature = "mysql")]
use sqlx::MySqlPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::memory::truncate_to_millis;
use crate::{
    Catalog, CatalogError, Festival, FestivalChanges, FestivalId, Keyword, NewFestival, Page,
    PageRequest, Sale, fold, grams,
};

/// Where this crate records its applied migrations: a table of its own, so a host application's
/// migrations (and other libraries') on the same database never meet its versions.
pub const MIGRATIONS_TABLE: &str = "_festival_catalog_migrations";

/// Which database.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    MySql(MySqlPool),
}

/// The catalog in a SQL database. Create it, then [`migrate`](Self::migrate) once at start.
#[derive(Debug, Clone)]
pub struct SqlCatalog {
    pool: SqlPool,
    clock: Arc<dyn Clock>,
}

#[derive(sqlx::FromRow)]
struct FestivalRow {
    id: i64,
    name: String,
    description: String,
    location: Option<String>,
    start_date: NaiveDate,
    end_date: NaiveDate,
    created_at: i64,
    updated_at: i64,
    sale_opens_at: Option<i64>,
    sale_closes_at: Option<i64>,
    sale_queued: bool,
}

impl From<FestivalRow> for Festival {
    fn from(r: FestivalRow) -> Self {
        Festival {
            id: r.id,
            name: r.name,
            description: r.description,
            location: r.location,
            start_date: r.start_date,
            end_date: r.end_date,
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
            sale: Sale {
                opens_at: r.sale_opens_at.map(millis),
                closes_at: r.sale_closes_at.map(millis),
                queued: r.sale_queued,
            },
        }
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A festival ready to be written: validated, folded, its grams computed.
struct Prepared {
    festival: NewFestival,
    name_folded: String,
    description_folded: String,
    grams: Vec<String>,
}

impl Prepared {
    /// The festival as stored under `id` at `now` (milliseconds), without reading it back.
    fn stored(&self, id: FestivalId, now: i64) -> Festival {
        let f = &self.festival;
        Festival {
            id,
            name: f.name.clone(),
            description: f.description.clone(),
            location: f.location.clone(),
            start_date: f.start_date,
            end_date: f.end_date,
            created_at: millis(now),
            updated_at: millis(now),
            sale: f.sale,
        }
    }

    fn new(mut festival: NewFestival) -> Result<Self, CatalogError> {
        festival.validate()?;
        let name_folded = fold(&festival.name);
        let description_folded = fold(&festival.description);
        let grams = grams([name_folded.as_str(), description_folded.as_str()])
            .into_iter()
            .collect();
        Ok(Self {
            festival,
            name_folded,
            description_folded,
            grams,
        })
    }
}

fn unavailable(e: sqlx::Error) -> CatalogError {
    CatalogError::unavailable("sql", e)
}

/// MySQL/MariaDB may pick a transaction as a deadlock victim when gram counts of concurrent
/// writes overlap; such a transaction is simply run again.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"))
}

const WRITE_ATTEMPTS: usize = 5;

impl SqlCatalog {
    /// A catalog over `pool`.
    pub fn new(pool: SqlPool) -> Self {
        Self {
            pool,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Creates or updates the tables, recording the versions in [`MIGRATIONS_TABLE`].
    pub async fn migrate(&self) -> Result<(), CatalogError> {
        let result = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => {
                owned_migrations::sqlite(
                    pool,
                    sqlx::migrate!("./migrations/sqlite"),
                    MIGRATIONS_TABLE,
                )
                .await
            }
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => {
                owned_migrations::mysql(
                    pool,
                    sqlx::migrate!("./migrations/mysql"),
                    MIGRATIONS_TABLE,
                )
                .await
            }
        };
        result.map_err(|e| CatalogError::unavailable("sql migrations", e))
    }

    fn now(&self) -> i64 {
        truncate_to_millis(self.clock.now()).timestamp_millis()
    }

    async fn insert(&self, prepared: &[Prepared]) -> Result<Vec<Festival>, CatalogError> {
        let now = self.now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match &self.pool {
                #[cfg(feature = "sqlite")]
                SqlPool::Sqlite(pool) => statements::sqlite::insert(pool, prepared, now).await,
                #[cfg(feature = "mysql")]
                SqlPool::MySql(pool) => statements::mysql::insert(pool, prepared, now).await,
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < WRITE_ATTEMPTS => continue,
                Err(e) => return Err(unavailable(e)),
                Ok(ids) => {
                    return Ok(prepared
                        .iter()
                        .zip(ids)
                        .map(|(p, id)| p.stored(id, now))
                        .collect());
                }
            }
        }
    }
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn create(&self, festival: NewFestival) -> Result<Festival, CatalogError> {
        let prepared = [Prepared::new(festival)?];
        let mut created = self.insert(&prepared).await?;
        created
            .pop()
            .ok_or_else(|| CatalogError::unavailable("sql", "insert returned no id"))
    }

    async fn create_many(
        &self,
        festivals: Vec<NewFestival>,
    ) -> Result<Vec<Festival>, CatalogError> {
        let prepared = festivals
            .into_iter()
            .map(Prepared::new)
            .collect::<Result<Vec<_>, _>>()?;
        let mut created = Vec::with_capacity(prepared.len());
        // Bounded transactions, so a bulk load neither holds locks long nor builds huge statements.
        for chunk in prepared.chunks(500) {
            created.extend(self.insert(chunk).await?);
        }
        Ok(created)
    }

    async fn update(
        &self,
        id: FestivalId,
        mut changes: FestivalChanges,
    ) -> Result<Festival, CatalogError> {
        changes.validate()?;
        let now = self.now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match &self.pool {
                #[cfg(feature = "sqlite")]
                SqlPool::Sqlite(pool) => statements::sqlite::update(pool, id, &changes, now).await,
                #[cfg(feature = "mysql")]
                SqlPool::MySql(pool) => statements::mysql::update(pool, id, &changes, now).await,
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < WRITE_ATTEMPTS => continue,
                Err(e) => return Err(unavailable(e)),
                Ok(None) => return Err(CatalogError::NotFound(id)),
                Ok(Some(row)) => return Ok(row.into()),
            }
        }
    }

    async fn get(&self, id: FestivalId) -> Result<Festival, CatalogError> {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::get(pool, id).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::get(pool, id).await,
        }
        .map_err(unavailable)?
        .map(Festival::from)
        .ok_or(CatalogError::NotFound(id))
    }

    async fn list(&self, page: PageRequest) -> Result<Page, CatalogError> {
        if page.last_id() != 0 {
            self.get(page.last_id()).await?;
        }
        let limit = i64::from(page.limit()) + 1;
        let rows = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::list(pool, page.id_bound(), limit).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::list(pool, page.id_bound(), limit).await,
        }
        .map_err(unavailable)?;
        Ok(page.page(rows.into_iter().map(Festival::from).collect()))
    }

    async fn search(&self, keyword: &Keyword, page: PageRequest) -> Result<Page, CatalogError> {
        let required = keyword.required_grams();
        let limit = i64::from(page.limit()) + 1;
        let rows = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => {
                statements::sqlite::search(
                    pool,
                    &required,
                    keyword.as_str(),
                    page.id_bound(),
                    limit,
                )
                .await
            }
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => {
                statements::mysql::search(pool, &required, keyword.as_str(), page.id_bound(), limit)
                    .await
            }
        }
        .map_err(unavailable)?;
        Ok(page.page(rows.into_iter().map(Festival::from).collect()))
    }

    async fn count(&self) -> Result<u64, CatalogError> {
        let n = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(pool) => statements::sqlite::count(pool).await,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(pool) => statements::mysql::count(pool).await,
        }
        .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
