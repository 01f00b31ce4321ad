//! The festival, what creating and changing one takes, and pages of festivals.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::CatalogError;

/// A festival's id: positive, assigned by the catalog, increasing in creation order.
pub type FestivalId = i64;

/// Longest name, in characters.
pub const NAME_MAX: usize = 100;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 2_000;
/// Longest location, in characters.
pub const LOCATION_MAX: usize = 100;
/// Longest festival, in days (it has one ticket inventory per day).
pub const MAX_DAYS: i64 = 366;
/// Longest search keyword, in characters.
pub const KEYWORD_MAX: usize = 50;
/// Largest page.
pub const LIMIT_MAX: u32 = 100;

/// How a festival's tickets are sold: from when, until when, and whether behind a waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sale {
    /// When bookings open; `None`: from the festival's creation.
    pub opens_at: Option<DateTime<Utc>>,
    /// When bookings close; `None`: when the festival's days are over.
    pub closes_at: Option<DateTime<Utc>>,
    /// Whether bookings go through the festival's waiting room (an admin can sell without).
    pub queued: bool,
}

impl Default for Sale {
    fn default() -> Self {
        Self {
            opens_at: None,
            closes_at: None,
            queued: true,
        }
    }
}

/// Where a sale stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SaleState {
    /// Not open yet.
    Upcoming,
    /// Open.
    OnSale,
    /// Closed.
    Closed,
}

impl Sale {
    /// Checks that it closes after it opens.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if let (Some(opens), Some(closes)) = (self.opens_at, self.closes_at)
            && closes <= opens
        {
            return Err(CatalogError::invalid(
                "saleClosesAt",
                "must be after saleOpensAt",
            ));
        }
        Ok(())
    }

    /// Where the sale stands at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> SaleState {
        if self.opens_at.is_some_and(|at| now < at) {
            SaleState::Upcoming
        } else if self.closes_at.is_some_and(|at| now >= at) {
            SaleState::Closed
        } else {
            SaleState::OnSale
        }
    }
}

/// A festival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Festival {
    /// Its id.
    pub id: FestivalId,
    /// Its name.
    pub name: String,
    /// What it is about.
    pub description: String,
    /// Where it takes place, if known.
    pub location: Option<String>,
    /// The first day.
    pub start_date: NaiveDate,
    /// The last day (inclusive).
    pub end_date: NaiveDate,
    /// When it was added (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When it last changed (millisecond precision).
    pub updated_at: DateTime<Utc>,
    /// How its tickets are sold.
    pub sale: Sale,
}

impl Festival {
    /// Every day of the festival, first to last.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        days(self.start_date, self.end_date)
    }

    /// Whether `date` is one of its days.
    pub fn has_day(&self, date: NaiveDate) -> bool {
        (self.start_date..=self.end_date).contains(&date)
    }
}

fn days(start: NaiveDate, end: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    start.iter_days().take_while(move |d| *d <= end)
}

/// What creating a festival takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFestival {
    /// 1..=[`NAME_MAX`] characters, not only spaces.
    pub name: String,
    /// Up to [`DESCRIPTION_MAX`] characters.
    pub description: String,
    /// Up to [`LOCATION_MAX`] characters.
    pub location: Option<String>,
    /// The first day.
    pub start_date: NaiveDate,
    /// The last day, not before the first, at most [`MAX_DAYS`] days in all.
    pub end_date: NaiveDate,
    /// How its tickets are sold.
    pub sale: Sale,
}

impl NewFestival {
    /// Checks every rule; the first broken one names its field. Names are trimmed.
    pub fn validate(&mut self) -> Result<(), CatalogError> {
        self.sale.validate()?;
        self.name = validate_name(&self.name)?;
        validate_description(&self.description)?;
        self.location = validate_location(self.location.take())?;
        if self.end_date < self.start_date {
            return Err(CatalogError::invalid(
                "endDate",
                "must not be before startDate",
            ));
        }
        let span = (self.end_date - self.start_date).num_days() + 1;
        if span > MAX_DAYS {
            return Err(CatalogError::invalid(
                "endDate",
                format!("a festival lasts at most {MAX_DAYS} days, this one {span}"),
            ));
        }
        Ok(())
    }

    /// Its days, first to last.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        days(self.start_date, self.end_date)
    }
}

/// Changes to a festival; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FestivalChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new location; `Some(None)` removes it.
    pub location: Option<Option<String>>,
    /// A new sale (the whole of it).
    pub sale: Option<Sale>,
}

impl FestivalChanges {
    /// Checks the fields that are set, as [`NewFestival::validate`] does.
    pub fn validate(&mut self) -> Result<(), CatalogError> {
        if let Some(sale) = &self.sale {
            sale.validate()?;
        }
        if let Some(name) = &self.name {
            self.name = Some(validate_name(name)?);
        }
        if let Some(description) = &self.description {
            validate_description(description)?;
        }
        if let Some(location) = self.location.take() {
            self.location = Some(validate_location(location)?);
        }
        Ok(())
    }

    /// Applies the changes to `festival`.
    pub fn apply(&self, festival: &mut Festival) {
        if let Some(name) = &self.name {
            festival.name.clone_from(name);
        }
        if let Some(description) = &self.description {
            festival.description.clone_from(description);
        }
        if let Some(location) = &self.location {
            festival.location.clone_from(location);
        }
        if let Some(sale) = self.sale {
            festival.sale = sale;
        }
    }
}

fn validate_name(name: &str) -> Result<String, CatalogError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CatalogError::invalid("name", "must not be empty"));
    }
    check_length("name", name, NAME_MAX)?;
    if name.chars().any(char::is_control) {
        return Err(CatalogError::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

fn validate_description(description: &str) -> Result<(), CatalogError> {
    check_length("description", description, DESCRIPTION_MAX)?;
    if description
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(CatalogError::invalid(
            "description",
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

fn validate_location(location: Option<String>) -> Result<Option<String>, CatalogError> {
    let Some(location) = location else {
        return Ok(None);
    };
    let location = location.trim();
    if location.is_empty() {
        return Ok(None);
    }
    check_length("location", location, LOCATION_MAX)?;
    if location.chars().any(char::is_control) {
        return Err(CatalogError::invalid(
            "location",
            "must not contain control characters",
        ));
    }
    Ok(Some(location.to_owned()))
}

fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), CatalogError> {
    let chars = value.chars().count();
    if chars > max {
        return Err(CatalogError::invalid(
            field,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// Which page to read: after festival `last_id` (0: the first page), at most `limit` festivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    last_id: FestivalId,
    limit: u32,
}

impl PageRequest {
    /// Checks `last_id >= 0` and `1 <= limit <= LIMIT_MAX`.
    pub fn new(last_id: FestivalId, limit: u32) -> Result<Self, CatalogError> {
        if last_id < 0 {
            return Err(CatalogError::invalid("lastId", "must not be negative"));
        }
        if !(1..=LIMIT_MAX).contains(&limit) {
            return Err(CatalogError::invalid(
                "limit",
                format!("must be between 1 and {LIMIT_MAX}, got {limit}"),
            ));
        }
        Ok(Self { last_id, limit })
    }

    /// The first page of `limit` festivals.
    pub fn first(limit: u32) -> Result<Self, CatalogError> {
        Self::new(0, limit)
    }

    /// The cursor; 0 for the first page.
    pub fn last_id(&self) -> FestivalId {
        self.last_id
    }

    /// The page size.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Only festivals with an id below this bound belong to the page.
    pub fn id_bound(&self) -> FestivalId {
        if self.last_id == 0 {
            FestivalId::MAX
        } else {
            self.last_id
        }
    }

    /// Builds the page from up to `limit + 1` festivals read in order: the extra one only says
    /// that there is a next page.
    pub fn page(&self, mut festivals: Vec<Festival>) -> Page {
        let limit = self.limit as usize;
        let has_next = festivals.len() > limit;
        festivals.truncate(limit);
        let last_id = if has_next {
            festivals.last().map(|f| f.id)
        } else {
            None
        };
        Page {
            festivals,
            has_next,
            last_id,
        }
    }
}

/// A page of festivals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    /// Newest first.
    pub festivals: Vec<Festival>,
    /// Whether another page follows.
    pub has_next: bool,
    /// The cursor for the next page, when there is one.
    pub last_id: Option<FestivalId>,
}
