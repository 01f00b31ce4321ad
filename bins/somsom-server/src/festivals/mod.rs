//! Festivals: the seed's create, list, detail and search routes over the catalog engine, with
//! search answers cached (and the cache invalidated on every change).

pub(crate) mod build;
mod dto;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use festival_catalog::{Catalog, CatalogError, FestivalChanges, Keyword, NewFestival, PageRequest};
use http::{StatusCode, header};
use search_cache::CacheAside;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorCode, FieldIssue};
use crate::extract::{Json as JsonBody, Path, Query, parse_json, parse_query};
use axum::Json;

pub use dto::{
    CreateFestivalRequest, DayTickets, FestivalDetail, FestivalPreview, FestivalPreviewList,
    ListQuery, SaleView, SearchQuery, UpdateFestivalRequest,
};

/// The cache namespace of search answers; invalidated by every create and update.
pub const SEARCH_NAMESPACE: &str = "festival::search";

/// The festival engines a handler needs.
#[derive(Clone)]
pub struct Festivals {
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// Search answers (`None`: not cached).
    pub search_cache: Option<CacheAside>,
    /// The app's clock: a sale's state is as of now.
    pub clock: Arc<dyn cognito_auth::Clock>,
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        catalog_error(e)
    }
}

/// Maps catalog errors onto the API's codes.
pub fn catalog_error(e: CatalogError) -> ApiError {
    match e {
        CatalogError::NotFound(_) => ApiError::new(ErrorCode::FestivalNotFound),
        CatalogError::Invalid { field, reason } => ApiError::field(
            field,
            FieldIssue::Other {
                ko: format!("올바르지 않은 값입니다 ({reason})."),
                en: reason,
            },
        ),
        other => crate::app::unavailable("catalog", &other),
    }
}

/// Reads the create request from a JSON body, or from request parameters as the seed's Spring
/// binding did: the query string and a form body together.
async fn create_request(request: Request) -> Result<CreateFestivalRequest, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))?;
    if content_type.starts_with("application/json") || content_type.contains("+json") {
        parse_json(&body)
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("multipart/form-data") && body.is_empty()
    {
        let form = std::str::from_utf8(&body)
            .map_err(|_| ApiError::field("body", FieldIssue::Malformed("not UTF-8".into())))?;
        // Both are parameters; a field given in both places is refused as given twice.
        match (query.is_empty(), form.trim().is_empty()) {
            (_, true) => parse_query(&query),
            (true, false) => parse_query(form),
            (false, false) => parse_query(&format!("{query}&{form}")),
        }
    } else if body.is_empty() || content_type.is_empty() && only_whitespace(&body) {
        parse_query(&query)
    } else {
        Err(ApiError::new(ErrorCode::UnsupportedMediaType))
    }
}

fn only_whitespace(body: &Bytes) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// `POST /festivals/create` (admins): the festival, its ticket days and its chat room.
#[utoipa::path(post, path = "/festivals/create", tag = "festivals", request_body = CreateFestivalRequest,
    security(("bearer" = [])),
    responses((status = 201, body = FestivalDetail), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<crate::AppState>,
    user: CurrentUser,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    user.require_admin()?;
    let request = create_request(request).await?;
    let new: NewFestival = request.clone().into_new()?;
    let stock = request.inventory(0, (new.start_date, new.end_date), &state.ticket_defaults)?;
    let (festival, inventory) = crate::workflows::festival::create(
        &state.festivals,
        &*state.tickets,
        &state.queues,
        new,
        stock,
    )
    .await?;
    tracing::info!(festival = festival.id, admin = %user.user.username, "festival created");
    let detail =
        FestivalDetail::new(festival, state.festivals.clock.now()).with_inventory(Some(inventory));
    Ok((StatusCode::CREATED, Json(detail)))
}

/// `PATCH /festivals/{festivalId}` (admins): name, description, location or the sale.
#[utoipa::path(patch, path = "/festivals/{festivalId}", tag = "festivals", request_body = UpdateFestivalRequest,
    params(("festivalId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = FestivalDetail), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(festivals): State<Festivals>,
    State(tickets): State<Arc<dyn ticket_lock::TicketEngine>>,
    State(queues): State<crate::queues::Queues>,
    user: CurrentUser,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<UpdateFestivalRequest>,
) -> Result<Json<FestivalDetail>, ApiError> {
    user.require_admin()?;
    let sale = if body.touches_sale() {
        let current = festivals.catalog.get(id).await?;
        Some(body.sale(current.sale))
    } else {
        None
    };
    let changes = FestivalChanges {
        name: body.name,
        description: body.description,
        location: body.location,
        sale,
    };
    let festival = crate::workflows::festival::update(&festivals, &queues, id, changes).await?;
    let inventory = inventory_of(&*tickets, festival.id).await?;
    Ok(Json(
        FestivalDetail::new(festival, festivals.clock.now()).with_inventory(inventory),
    ))
}

async fn inventory_of(
    tickets: &dyn ticket_lock::TicketEngine,
    festival: i64,
) -> Result<Option<ticket_lock::Inventory>, ApiError> {
    match tickets.inventory(ticket_lock::FestivalId(festival)).await {
        Ok(inventory) => Ok(Some(inventory)),
        Err(ticket_lock::TicketError::NotFound) => Ok(None),
        Err(e) => Err(crate::reservations::ticket_error(e)),
    }
}

/// Adds festivals in bulk (the generator), with everything a created festival gets.
pub async fn create_many(
    state: &crate::AppState,
    festivals: Vec<NewFestival>,
) -> Result<Vec<festival_catalog::Festival>, crate::workflows::FestivalError> {
    let defaults = CreateFestivalRequest::default();
    crate::workflows::festival::create_many(
        &state.festivals,
        &*state.tickets,
        &state.queues,
        festivals,
        |festival| {
            defaults
                .inventory(
                    festival.id,
                    (festival.start_date, festival.end_date),
                    &state.ticket_defaults,
                )
                .expect("the defaults name no day outside the festival")
        },
    )
    .await
}

/// Drops every cached search answer: after any change to a festival.
pub(crate) async fn invalidate_search(festivals: &Festivals) {
    // A failed invalidation leaves answers at most one TTL old; the change itself stands.
    if let Some(cache) = &festivals.search_cache
        && let Err(error) = cache.invalidate(SEARCH_NAMESPACE).await
    {
        tracing::warn!(error = %crate::error::Report(&error), "search cache not invalidated");
    }
}

/// `GET /festivals`: newest first, `lastId` cursor.
#[utoipa::path(get, path = "/festivals", tag = "festivals", params(ListQuery),
    responses((status = 200, body = FestivalPreviewList), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    State(festivals): State<Festivals>,
    Query(query): Query<ListQuery>,
) -> Result<Json<FestivalPreviewList>, ApiError> {
    let page = PageRequest::new(query.last_id.unwrap_or(0), query.limit.unwrap_or(10))?;
    let page = festivals.catalog.list(page).await?;
    Ok(Json(FestivalPreviewList::new(page, festivals.clock.now())))
}

/// `GET /festivals/{festivalId}`
#[utoipa::path(get, path = "/festivals/{festivalId}", tag = "festivals",
    params(("festivalId" = i64, Path)),
    responses((status = 200, body = FestivalDetail), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn detail(
    State(festivals): State<Festivals>,
    State(tickets): State<Arc<dyn ticket_lock::TicketEngine>>,
    Path(id): Path<i64>,
) -> Result<Json<FestivalDetail>, ApiError> {
    let festival = festivals.catalog.get(id).await?;
    let inventory = inventory_of(&*tickets, id).await?;
    Ok(Json(
        FestivalDetail::new(festival, festivals.clock.now()).with_inventory(inventory),
    ))
}

/// `GET /festivals/search?keyword=`: name or description contains the keyword (any case);
/// answers are cached for the configured TTL.
#[utoipa::path(get, path = "/festivals/search", tag = "festivals", params(SearchQuery),
    responses((status = 200, body = FestivalPreviewList), (status = 400, body = crate::error::ErrorBody)))]
pub async fn search(
    State(festivals): State<Festivals>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<FestivalPreviewList>, ApiError> {
    let raw = query
        .keyword
        .ok_or_else(|| ApiError::field("keyword", FieldIssue::Required))?;
    let keyword = Keyword::parse(&raw)?;
    let page = PageRequest::new(query.last_id.unwrap_or(0), query.limit.unwrap_or(10))?;
    let key = format!("{}::{}::{}", keyword.as_str(), page.last_id(), page.limit());
    let (catalog, now) = (festivals.catalog.clone(), festivals.clock.now());
    let load = || async move {
        let page = catalog.search(&keyword, page).await?;
        Ok::<_, CatalogError>(FestivalPreviewList::new(page, now))
    };
    let list = match &festivals.search_cache {
        Some(cache) => cache.get_or_load(SEARCH_NAMESPACE, &key, load).await,
        None => load().await,
    }?;
    Ok(Json(list.refreshed(now)))
}
