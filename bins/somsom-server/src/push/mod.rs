//! Day-before reminders: device routes, the user's notification list, and the glue that keeps
//! the reminder plan in step with reservations.
//!
//! Bookings and cancellations enqueue their (user, festival, day) on the planner task, which
//! brings the plan in line with what the user holds: a reminder while they hold tickets for the
//! day, none once they hold none. Cancelling deletes first and then looks again, so a booking
//! racing with a cancellation on another node never ends with no reminder. A crash between a
//! booking and its planning is repaired at start, when every node walks the active reservations
//! and plans what is missing; a reminder whose reservations were cancelled behind the plan's
//! back is dropped at delivery ([`HeldCheck`]).

pub(crate) mod build;
mod dto;
mod planner;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use push_notify::dispatch::Recheck;
use push_notify::send::endpoint::EndpointPolicy;
use push_notify::{Device, DeviceRegistry, DeviceType, Ledger, ReminderKey};
use ticket_lock::TicketEngine;

use crate::auth::CurrentUser;
use crate::auth::dto::Message;
use crate::error::{ApiError, ErrorCode, FieldIssue};
use crate::extract::{Json as JsonBody, Query};

pub use dto::{ActivateRequest, DeactivateRequest, NotificationItem, NotificationQuery, VapidKey};
pub use planner::{PlanContext, Planning, reconcile};

/// The Web Push endpoint policy the settings describe.
pub fn endpoint_policy(settings: &crate::config::PushSettings) -> EndpointPolicy {
    if settings.allow_private_endpoints {
        EndpointPolicy::permissive()
    } else {
        EndpointPolicy::strict()
    }
}

/// The push engine's handles the routes use.
#[derive(Clone)]
pub struct Push {
    /// Devices.
    pub registry: Arc<dyn DeviceRegistry>,
    /// Delivered notifications.
    pub ledger: Arc<dyn Ledger>,
    /// Keeps the plan in step with reservations.
    pub planning: Planning,
    /// The plan and what the planner reads.
    pub context: PlanContext,
    /// The VAPID public key browsers subscribe with.
    pub vapid_public_key: String,
    /// Where Web Push subscriptions may point.
    pub endpoint_policy: EndpointPolicy,
}

fn token_issue(e: push_notify::PushError) -> ApiError {
    match e {
        push_notify::PushError::Invalid { field, reason } => ApiError::field(
            field,
            FieldIssue::Other {
                ko: format!("올바르지 않은 토큰입니다 ({reason})."),
                en: reason,
            },
        ),
        other => crate::app::unavailable("push", &other),
    }
}

fn required_token(token: Option<String>) -> Result<String, ApiError> {
    let token = token.ok_or_else(|| ApiError::field("token", FieldIssue::Required))?;
    push_notify::validate_token(&token).map_err(token_issue)?;
    Ok(token)
}

/// `POST /notification/activate`: switches on one of the caller's devices.
#[utoipa::path(post, path = "/notification/activate", tag = "notifications", request_body = ActivateRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Active", body = Message),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn activate(
    State(push): State<Push>,
    user: CurrentUser,
    JsonBody(body): JsonBody<ActivateRequest>,
) -> Result<Json<Message>, ApiError> {
    let device_type = match body.device_type.as_deref() {
        None => Err(FieldIssue::Required),
        Some(kind) => {
            DeviceType::parse(kind).ok_or_else(|| FieldIssue::Malformed("WEB or MOBILE".to_owned()))
        }
    };
    let token = required_token(body.token);
    let (token, device_type) = match (token, device_type) {
        (Ok(token), Ok(kind)) => (token, kind),
        (token, kind) => {
            let mut error = ApiError::new(ErrorCode::BadRequest);
            if let Err(e) = token {
                for (field, issue) in e.fields() {
                    error = error.with_field(field.clone(), issue.clone());
                }
            }
            if let Err(issue) = kind {
                error = error.with_field("deviceType", issue);
            }
            return Err(error);
        }
    };
    // A browser's subscription names the URL the server will post to: only a public https
    // push service, never the server's own network.
    if let Ok(subscription) = push_notify::send::webpush::Subscription::parse(&token) {
        push_notify::send::endpoint::check(&subscription.endpoint, push.endpoint_policy)
            .await
            .map_err(token_issue)?;
    }
    push.registry
        .activate(Device {
            user: user.user.id,
            token,
            device_type,
        })
        .await
        .map_err(token_issue)?;
    Ok(Json(Message {
        message: "FCM 토큰이 활성화되었습니다.",
    }))
}

/// `POST /notification/deactivate`: switches off one of the caller's devices (200 even if it
/// was not on, as in the seed).
#[utoipa::path(post, path = "/notification/deactivate", tag = "notifications", request_body = DeactivateRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Inactive", body = Message),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn deactivate(
    State(push): State<Push>,
    user: CurrentUser,
    JsonBody(body): JsonBody<DeactivateRequest>,
) -> Result<Json<Message>, ApiError> {
    let token = required_token(body.token)?;
    if !push
        .registry
        .deactivate(user.user.id, &token)
        .await
        .map_err(token_issue)?
    {
        tracing::warn!(user = user.user.id, "deactivate: no such active device");
    }
    // The seed answered its activation text here too; this says what happened.
    Ok(Json(Message {
        message: "FCM 토큰이 비활성화되었습니다.",
    }))
}

/// `GET /notification/vapid-public-key`: the key a browser subscribes to Web Push with.
#[utoipa::path(get, path = "/notification/vapid-public-key", tag = "notifications",
    responses((status = 200, body = VapidKey)))]
pub async fn vapid_public_key(State(push): State<Push>) -> Json<VapidKey> {
    Json(VapidKey {
        public_key: push.vapid_public_key,
    })
}

/// `GET /notifications`: the caller's latest notifications, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(NotificationQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [NotificationItem]), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(push): State<Push>,
    user: CurrentUser,
    Query(query): Query<NotificationQuery>,
) -> Result<Json<Vec<NotificationItem>>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            FieldIssue::OutOfRange { min: 1, max: 100 },
        ));
    }
    let items = push
        .ledger
        .recent(user.user.id, limit as usize)
        .await
        .map_err(|e| crate::app::unavailable("push", &e))?;
    Ok(Json(
        items.into_iter().map(NotificationItem::from).collect(),
    ))
}

/// Drops reminders whose user no longer holds tickets for the day.
#[derive(Debug)]
pub struct HeldCheck(pub Arc<dyn TicketEngine>);

#[async_trait]
impl Recheck for HeldCheck {
    async fn unwanted(&self, keys: &[ReminderKey]) -> push_notify::Result<HashSet<ReminderKey>> {
        let mut unwanted = HashSet::new();
        for key in keys {
            let held = self
                .0
                .held(
                    ticket_lock::UserId(key.user),
                    ticket_lock::FestivalId(key.festival),
                    key.date,
                )
                .await
                .map_err(|e| push_notify::PushError::unavailable("tickets", e))?;
            if held == 0 {
                unwanted.insert(*key);
            }
        }
        Ok(unwanted)
    }
}
