#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

mod keyword;
pub mod memory;
mod model;

#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub mod sql;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

use async_trait::async_trait;

pub use engine_clock::{Clock, ManualClock, SystemClock};
pub use keyword::{Keyword, fold, grams};
pub use memory::MemoryCatalog;
pub use model::{
    DESCRIPTION_MAX, Festival, FestivalChanges, FestivalId, KEYWORD_MAX, LIMIT_MAX, LOCATION_MAX,
    MAX_DAYS, NAME_MAX, NewFestival, Page, PageRequest, Sale, SaleState,
};

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// No festival has this id.
    #[error("festival {0} not found")]
    NotFound(FestivalId),
    /// A field is missing, too long or inconsistent.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field at fault, as the API names it (`name`, `startDate`, `keyword`, …).
        field: &'static str,
        /// Why, in English.
        reason: String,
    },
    /// The backend could not be reached or failed: worth trying again later
    /// ([`CatalogError::is_retryable`]). What it said is the [`source`](std::error::Error::source).
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CatalogError {
    /// [`CatalogError::Invalid`] for `field`.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// [`CatalogError::Unavailable`] from whatever `backend` said.
    pub fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Whether trying again later may succeed: the backend was unavailable. Every other error
    /// is an answer about the request itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Results of this crate.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The festival catalog.
///
/// Listing and search page with a keyset cursor: `last_id` 0 for the first page, then the
/// `last_id` of the previous [`Page`]; newest (highest id) first.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Adds a festival (after [`NewFestival::validate`]).
    async fn create(&self, festival: NewFestival) -> Result<Festival, CatalogError>;

    /// Adds many festivals at once (bulk loading); returns them in order.
    async fn create_many(
        &self,
        festivals: Vec<NewFestival>,
    ) -> Result<Vec<Festival>, CatalogError> {
        let mut created = Vec::with_capacity(festivals.len());
        for festival in festivals {
            created.push(self.create(festival).await?);
        }
        Ok(created)
    }

    /// Changes a festival's name, description or location. Dates are fixed once tickets exist.
    async fn update(
        &self,
        id: FestivalId,
        changes: FestivalChanges,
    ) -> Result<Festival, CatalogError>;

    /// One festival.
    async fn get(&self, id: FestivalId) -> Result<Festival, CatalogError>;

    /// All festivals, newest first. A `last_id` that names no festival is
    /// [`CatalogError::NotFound`].
    async fn list(&self, page: PageRequest) -> Result<Page, CatalogError>;

    /// Festivals whose name or description contains the keyword, ignoring case (both sides go
    /// through [`fold`]); `%` and `_` are ordinary characters. Newest first.
    async fn search(&self, keyword: &Keyword, page: PageRequest) -> Result<Page, CatalogError>;

    /// How many festivals there are.
    async fn count(&self) -> Result<u64, CatalogError>;
}
