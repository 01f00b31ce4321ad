//! Request and response bodies, with the seed's field names.

use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use festival_catalog::{Festival, NewFestival, Page, Sale, SaleState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, FieldIssue};

/// The seed's `FestivalPreViewDTO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FestivalPreview {
    /// Festival id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// First day, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub start_date: NaiveDate,
    /// Last day, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub end_date: NaiveDate,
    /// The sale.
    #[serde(flatten)]
    pub sale: SaleView,
}

impl FestivalPreview {
    /// `f`'s list entry, its sale as of `now`.
    pub fn new(f: &Festival, now: DateTime<Utc>) -> Self {
        Self {
            id: f.id,
            name: f.name.clone(),
            description: f.description.clone(),
            start_date: f.start_date,
            end_date: f.end_date,
            sale: SaleView::new(&f.sale, now),
        }
    }
}

/// A festival's sale, as its list entry and detail show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaleView {
    /// When bookings open (RFC 3339); `null`: since the festival was added.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_opens_at: Option<DateTime<Utc>>,
    /// When bookings close (RFC 3339); `null`: when its days are over.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_closes_at: Option<DateTime<Utc>>,
    /// Whether bookings go through the waiting room.
    pub sale_queued: bool,
    /// `UPCOMING`, `ON_SALE` or `CLOSED`, as of the answer.
    #[schema(value_type = String)]
    pub sale_state: SaleState,
}

impl SaleView {
    /// The sale as of `now`.
    pub fn new(sale: &Sale, now: DateTime<Utc>) -> Self {
        Self {
            sale_opens_at: sale.opens_at,
            sale_closes_at: sale.closes_at,
            sale_queued: sale.queued,
            sale_state: sale.state(now),
        }
    }

    /// The state again at `now` (a cached answer's may be old).
    pub fn refresh(&mut self, now: DateTime<Utc>) {
        let sale = Sale {
            opens_at: self.sale_opens_at,
            closes_at: self.sale_closes_at,
            queued: self.sale_queued,
        };
        self.sale_state = sale.state(now);
    }
}

/// The seed's `FestivalPreViewListDTO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FestivalPreviewList {
    /// Newest first.
    pub festivals: Vec<FestivalPreview>,
    /// Whether another page follows.
    pub has_next: bool,
    /// The cursor of the next page (`null` on the last page).
    pub last_id: Option<i64>,
}

impl FestivalPreviewList {
    /// A page of list entries, their sales as of `now`.
    pub fn new(page: Page, now: DateTime<Utc>) -> Self {
        Self {
            festivals: page
                .festivals
                .iter()
                .map(|f| FestivalPreview::new(f, now))
                .collect(),
            has_next: page.has_next,
            last_id: page.last_id,
        }
    }
}

impl FestivalPreviewList {
    /// Sale states as of `now` (a cached list's were as of when it was cached).
    pub fn refreshed(mut self, now: DateTime<Utc>) -> Self {
        for festival in &mut self.festivals {
            festival.sale.refresh(now);
        }
        self
    }
}

/// One festival in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FestivalDetail {
    /// Festival id (also its chat room's id).
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Where it takes place.
    pub location: Option<String>,
    /// First day, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub start_date: NaiveDate,
    /// Last day, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub end_date: NaiveDate,
    /// When it was added (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When it last changed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// Each day's tickets (empty if the festival has no stock).
    pub days: Vec<DayTickets>,
    /// Most tickets in one reservation.
    pub max_per_reservation: Option<u32>,
    /// Most tickets one user may hold for one day.
    pub max_per_user_per_day: Option<u32>,
    /// The sale.
    #[serde(flatten)]
    pub sale: SaleView,
}

/// One festival day's tickets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayTickets {
    /// The day.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Tickets in all.
    pub total_tickets: u32,
    /// Tickets not reserved.
    pub left_tickets: u32,
}

impl FestivalDetail {
    /// The detail with the festival's stock.
    pub fn with_inventory(mut self, inventory: Option<ticket_lock::Inventory>) -> Self {
        if let Some(inventory) = inventory {
            self.days = inventory
                .days
                .iter()
                .map(|d| DayTickets {
                    date: d.date,
                    total_tickets: d.total,
                    left_tickets: d.left,
                })
                .collect();
            self.max_per_reservation = Some(inventory.rules.max_per_reservation);
            self.max_per_user_per_day = Some(inventory.rules.max_per_user_per_day);
        }
        self
    }
}

impl FestivalDetail {
    /// `f` in full (without its days), its sale as of `now`.
    pub fn new(f: Festival, now: DateTime<Utc>) -> Self {
        Self {
            id: f.id,
            name: f.name,
            description: f.description,
            location: f.location,
            start_date: f.start_date,
            end_date: f.end_date,
            created_at: f.created_at,
            updated_at: f.updated_at,
            days: Vec::new(),
            max_per_reservation: None,
            max_per_user_per_day: None,
            sale: SaleView::new(&f.sale, now),
        }
    }
}

/// `POST /festivals/create`: JSON, a form, or query parameters, as the seed took them.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateFestivalRequest {
    /// The name (the seed's field; `name` is accepted too).
    #[serde(alias = "name")]
    pub title: Option<String>,
    /// Up to 2,000 characters.
    pub description: Option<String>,
    /// Up to 100 characters.
    pub location: Option<String>,
    /// First day, `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date)]
    pub start_date: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date)]
    pub end_date: Option<NaiveDate>,
    /// Tickets per day (default from configuration, 100).
    pub tickets_per_day: Option<u32>,
    /// Tickets for particular days, overriding `ticketsPerDay` (JSON only).
    #[schema(value_type = Option<std::collections::BTreeMap<String, u32>>)]
    pub tickets_by_date: Option<std::collections::BTreeMap<NaiveDate, u32>>,
    /// Most tickets in one reservation (default 4).
    pub max_per_reservation: Option<u32>,
    /// Most tickets one user may hold for one day (default 4).
    pub max_per_user_per_day: Option<u32>,
    /// When bookings open (RFC 3339); absent: at once. Until then the waiting room gathers a
    /// pre-queue, put in a random order at the opening.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_opens_at: Option<DateTime<Utc>>,
    /// When bookings close (RFC 3339); absent: when the festival's days are over.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_closes_at: Option<DateTime<Utc>>,
    /// Whether bookings go through the waiting room (default `true`; `false`: no queue).
    pub sale_queued: Option<bool>,
}

impl CreateFestivalRequest {
    /// The stock of festival `id` from `start` to `end`: per-day numbers and rules, defaults
    /// from `defaults`.
    pub fn inventory(
        &self,
        id: i64,
        (start, end): (NaiveDate, NaiveDate),
        defaults: &crate::config::TicketSettings,
    ) -> Result<ticket_lock::NewInventory, ApiError> {
        let per_day = self.tickets_per_day.unwrap_or(defaults.per_day);
        let by_date = self.tickets_by_date.clone().unwrap_or_default();
        if let Some(outside) = by_date.keys().find(|d| !(start..=end).contains(*d)) {
            return Err(ApiError::field(
                "ticketsByDate",
                FieldIssue::Other {
                    ko: format!("{outside}은(는) 축제 기간이 아닙니다."),
                    en: format!("{outside} is not a day of the festival"),
                },
            ));
        }
        Ok(ticket_lock::NewInventory {
            festival: ticket_lock::FestivalId(id),
            days: start
                .iter_days()
                .take_while(|d| *d <= end)
                .map(|d| (d, by_date.get(&d).copied().unwrap_or(per_day)))
                .collect(),
            rules: ticket_lock::Rules {
                max_per_reservation: self
                    .max_per_reservation
                    .unwrap_or(defaults.max_per_reservation),
                max_per_user_per_day: self
                    .max_per_user_per_day
                    .unwrap_or(defaults.max_per_user_per_day),
            },
        })
    }

    /// The catalog's input; every missing field is named.
    pub fn into_new(self) -> Result<NewFestival, ApiError> {
        let mut missing = Vec::new();
        if self.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            missing.push("title");
        }
        if self.start_date.is_none() {
            missing.push("startDate");
        }
        if self.end_date.is_none() {
            missing.push("endDate");
        }
        if let Some((first, rest)) = missing.split_first() {
            let mut error = ApiError::field(*first, FieldIssue::Required);
            for field in rest {
                error = error.with_field(*field, FieldIssue::Required);
            }
            return Err(error);
        }
        let (Some(name), Some(start_date), Some(end_date)) =
            (self.title, self.start_date, self.end_date)
        else {
            unreachable!("checked above");
        };
        Ok(NewFestival {
            name,
            description: self.description.unwrap_or_default(),
            location: self.location,
            start_date,
            end_date,
            sale: Sale {
                opens_at: self.sale_opens_at,
                closes_at: self.sale_closes_at,
                queued: self.sale_queued.unwrap_or(true),
            },
        })
    }
}

/// `PATCH /festivals/{festivalId}`: what is present changes.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFestivalRequest {
    /// A new name.
    #[serde(alias = "title")]
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new location; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
    /// A new sale opening (RFC 3339); `null`: open now. Refused once the waiting room opened.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_opens_at: Option<Option<DateTime<Utc>>>,
    /// A new sale close (RFC 3339); `null`: when the festival's days are over.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_closes_at: Option<Option<DateTime<Utc>>>,
    /// Whether bookings go through the waiting room.
    pub sale_queued: Option<bool>,
}

impl UpdateFestivalRequest {
    /// Whether it changes the sale.
    pub fn touches_sale(&self) -> bool {
        self.sale_opens_at.is_some() || self.sale_closes_at.is_some() || self.sale_queued.is_some()
    }

    /// `sale` with this request's changes.
    pub fn sale(&self, sale: Sale) -> Sale {
        Sale {
            opens_at: self.sale_opens_at.unwrap_or(sale.opens_at),
            closes_at: self.sale_closes_at.unwrap_or(sale.closes_at),
            queued: self.sale_queued.unwrap_or(sale.queued),
        }
    }
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `GET /festivals` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The cursor: 0 (default) for the first page, then the previous page's `lastId`.
    pub last_id: Option<i64>,
    /// Page size, 1..=100 (default 10).
    pub limit: Option<u32>,
}

/// `GET /festivals/search` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// 1..=50 characters (required).
    pub keyword: Option<String>,
    /// The cursor: 0 (default) for the first page.
    pub last_id: Option<i64>,
    /// Page size, 1..=100 (default 10).
    pub limit: Option<u32>,
}
