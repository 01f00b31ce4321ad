//! The in-memory catalog: one process, nothing survives a restart. It is also the plain
//! definition of search (a scan with `str::contains`) that the SQL index is checked against.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use engine_clock::{Clock, SystemClock};

use crate::{
    Catalog, CatalogError, Festival, FestivalChanges, FestivalId, Keyword, NewFestival, Page,
    PageRequest, fold,
};

#[derive(Debug, Default)]
struct State {
    festivals: BTreeMap<FestivalId, Festival>,
    next_id: FestivalId,
}

/// Festivals in a map.
#[derive(Debug, Clone)]
pub struct MemoryCatalog {
    state: Arc<RwLock<State>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryCatalog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCatalog {
    /// An empty catalog on the system clock.
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        truncate_to_millis(self.clock.now())
    }
}

/// The precision every backend stores.
pub(crate) fn truncate_to_millis(
    t: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Whether `festival` matches `keyword` by the plain definition.
pub fn matches(festival: &Festival, keyword: &Keyword) -> bool {
    fold(&festival.name).contains(keyword.as_str())
        || fold(&festival.description).contains(keyword.as_str())
}

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn create(&self, mut new: NewFestival) -> Result<Festival, CatalogError> {
        new.validate()?;
        let now = self.now();
        let mut state = self.write();
        state.next_id += 1;
        let festival = Festival {
            id: state.next_id,
            name: new.name,
            description: new.description,
            location: new.location,
            start_date: new.start_date,
            end_date: new.end_date,
            created_at: now,
            updated_at: now,
            sale: new.sale,
        };
        state.festivals.insert(festival.id, festival.clone());
        Ok(festival)
    }

    async fn update(
        &self,
        id: FestivalId,
        mut changes: FestivalChanges,
    ) -> Result<Festival, CatalogError> {
        changes.validate()?;
        let now = self.now();
        let mut state = self.write();
        let festival = state
            .festivals
            .get_mut(&id)
            .ok_or(CatalogError::NotFound(id))?;
        changes.apply(festival);
        festival.updated_at = now;
        Ok(festival.clone())
    }

    async fn get(&self, id: FestivalId) -> Result<Festival, CatalogError> {
        self.read()
            .festivals
            .get(&id)
            .cloned()
            .ok_or(CatalogError::NotFound(id))
    }

    async fn list(&self, page: PageRequest) -> Result<Page, CatalogError> {
        let state = self.read();
        if page.last_id() != 0 && !state.festivals.contains_key(&page.last_id()) {
            return Err(CatalogError::NotFound(page.last_id()));
        }
        let rows = state
            .festivals
            .range(..page.id_bound())
            .rev()
            .take(page.limit() as usize + 1)
            .map(|(_, f)| f.clone())
            .collect();
        Ok(page.page(rows))
    }

    async fn search(&self, keyword: &Keyword, page: PageRequest) -> Result<Page, CatalogError> {
        let state = self.read();
        let rows = state
            .festivals
            .range(..page.id_bound())
            .rev()
            .map(|(_, f)| f)
            .filter(|f| matches(f, keyword))
            .take(page.limit() as usize + 1)
            .cloned()
            .collect();
        Ok(page.page(rows))
    }

    async fn count(&self) -> Result<u64, CatalogError> {
        Ok(self.read().festivals.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::run_all;

    #[tokio::test]
    async fn memory_catalog_passes_the_conformance_suite() {
        run_all(&|clock| {
            Box::pin(
                async move { Arc::new(MemoryCatalog::new().with_clock(clock)) as Arc<dyn Catalog> },
            )
        })
        .await;
    }
}
