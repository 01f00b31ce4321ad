//! The API's one error body, `{"status", "code", "message", "errors"?}`, for every status.
//!
//! Handlers return [`ApiError`]. The [`json_errors`] middleware makes sure that responses produced
//! elsewhere (axum's 405, a body-limit 413, a timeout 408, a caught panic) carry the same body,
//! and re-renders messages in English for clients that prefer it (`Accept-Language: en`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

/// Every error code the API answers with. The seed's codes keep their names, statuses and
/// Korean messages; new ones are written in the same voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 500: something failed on our side.
    InternalServerError,
    /// 400: the request is malformed (with `errors` naming each field at fault).
    BadRequest,
    /// 401: no valid credentials.
    Unauthorized,
    /// 403: the caller may not do this.
    PermissionDenied,
    /// 404: no route at this path.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 408: the request took too long.
    RequestTimeout,
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge,
    /// 415: the body is not in a format this route accepts.
    UnsupportedMediaType,
    /// 429: too many requests; `Retry-After` says when to come back.
    TooManyRequests,
    /// 503: a backend this request needs is unavailable.
    ServiceUnavailable,
    /// 404: the festival does not exist.
    FestivalNotFound,
    /// 404: the user does not exist.
    UserNotFound,
    /// 409: an account with this e-mail exists.
    UserAlreadyExists,
    /// 403: the e-mail is not confirmed yet.
    UserNotConfirmed,
    /// 409: the e-mail is confirmed already.
    AlreadyConfirmed,
    /// 403: too many wrong codes; a new code must be requested.
    ConfirmationLocked,
    /// 400: the password does not meet the policy.
    InvalidPassword,
    /// 401: the access token expired.
    AccessTokenExpired,
    /// 401: the refresh token expired.
    RefreshTokenExpired,
    /// 400: the refresh token is unknown, revoked or reused.
    InvalidRefreshToken,
    /// 401: the access token is malformed, forged or revoked.
    TokenVerificationFailed,
    /// 404: the festival has no tickets for that day.
    TicketNotFound,
    /// 400: not enough tickets are left (the seed's status).
    TicketSoldOut,
    /// 409: the user would hold more tickets for the day than allowed.
    TicketLimitExceeded,
    /// 400: the festival day is over.
    FestivalDayClosed,
    /// 404: the caller has no reservation with this id.
    ReservationNotFound,
    /// 409: the reservation was cancelled already.
    ReservationAlreadyCancelled,
    /// 422: the `Idempotency-Key` was used for a different booking.
    IdempotencyKeyReused,
    /// 403: the festival's waiting room is open and the booking carries no admission token.
    QueueAdmissionRequired,
    /// 403: the admission token is expired, altered, someone else's, or no longer the holder's
    /// admission.
    QueueAdmissionInvalid,
    /// 409: the admission was used already by an earlier booking (a replay or a shared token).
    QueueAdmissionUsed,
    /// 409: nothing is left to sell: the waiting room is closed.
    QueueSoldOut,
    /// 403: the festival's sale has not opened yet.
    SaleNotOpen,
    /// 403: the festival's sale is over.
    SaleClosed,
    /// 400: no such chat room (the seed's status).
    ChatroomNotFound,
    /// 404: the caller has not joined this chat room.
    UserChatroomNotFound,
    /// 403: only members may read or write in a chat room.
    ChatroomNotJoined,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            BadRequest => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            PermissionDenied => StatusCode::FORBIDDEN,
            NotFound | FestivalNotFound | UserNotFound | TicketNotFound | ReservationNotFound => {
                StatusCode::NOT_FOUND
            }
            TicketSoldOut | FestivalDayClosed => StatusCode::BAD_REQUEST,
            TicketLimitExceeded | ReservationAlreadyCancelled => StatusCode::CONFLICT,
            IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            QueueAdmissionRequired
            | QueueAdmissionInvalid
            | ChatroomNotJoined
            | SaleNotOpen
            | SaleClosed => StatusCode::FORBIDDEN,
            QueueAdmissionUsed | QueueSoldOut => StatusCode::CONFLICT,
            ChatroomNotFound => StatusCode::BAD_REQUEST,
            UserChatroomNotFound => StatusCode::NOT_FOUND,
            UserAlreadyExists | AlreadyConfirmed => StatusCode::CONFLICT,
            UserNotConfirmed | ConfirmationLocked => StatusCode::FORBIDDEN,
            InvalidPassword | InvalidRefreshToken => StatusCode::BAD_REQUEST,
            AccessTokenExpired | RefreshTokenExpired | TokenVerificationFailed => {
                StatusCode::UNAUTHORIZED
            }
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The message in `lang`.
    pub fn message(self, lang: Lang) -> &'static str {
        use ErrorCode::*;
        let (ko, en) = match self {
            InternalServerError => (
                "내부 서버 오류가 발생했습니다.",
                "An internal error occurred.",
            ),
            BadRequest => ("잘못된 요청입니다.", "The request is invalid."),
            Unauthorized => ("인증이 필요합니다.", "Authentication is required."),
            PermissionDenied => ("권한이 없습니다.", "You do not have permission."),
            NotFound => ("요청한 경로를 찾을 수 없습니다.", "No such route."),
            MethodNotAllowed => (
                "허용되지 않은 요청 방식입니다.",
                "This method is not allowed here.",
            ),
            RequestTimeout => (
                "요청 처리 시간이 초과되었습니다.",
                "The request took too long.",
            ),
            PayloadTooLarge => ("요청 본문이 너무 큽니다.", "The request body is too large."),
            UnsupportedMediaType => (
                "지원하지 않는 요청 형식입니다.",
                "This content type is not supported.",
            ),
            TooManyRequests => (
                "요청이 너무 많습니다. 잠시 후 다시 시도해주세요.",
                "Too many requests. Please try again later.",
            ),
            ServiceUnavailable => (
                "일시적으로 서비스를 이용할 수 없습니다.",
                "The service is temporarily unavailable.",
            ),
            FestivalNotFound => ("존재하지 않는 축제입니다.", "The festival does not exist."),
            UserNotFound => ("존재하지 않는 사용자입니다.", "The user does not exist."),
            UserAlreadyExists => (
                "이미 존재하는 사용자입니다.",
                "A user with this e-mail already exists.",
            ),
            UserNotConfirmed => (
                "이메일 인증이 필요합니다. 이메일을 확인해주세요.",
                "Please confirm your e-mail address first.",
            ),
            AlreadyConfirmed => (
                "이미 인증된 사용자입니다.",
                "The e-mail address is already confirmed.",
            ),
            ConfirmationLocked => (
                "인증 코드 입력 횟수를 초과했습니다. 인증 코드를 다시 요청해주세요.",
                "Too many wrong codes. Please request a new code.",
            ),
            InvalidPassword => (
                "비밀번호는 8자 이상이며 대문자, 소문자, 숫자, 특수문자를 포함해야 합니다.",
                "The password needs at least 8 characters with upper- and lower-case letters, a digit and a symbol.",
            ),
            AccessTokenExpired => (
                "Access Token이 만료되었습니다.",
                "The access token expired.",
            ),
            RefreshTokenExpired => (
                "Refresh Token이 만료되었습니다.",
                "The refresh token expired.",
            ),
            InvalidRefreshToken => (
                "유효하지 않은 Refresh Token입니다.",
                "The refresh token is invalid.",
            ),
            TokenVerificationFailed => (
                "토큰 검증에 실패했습니다.",
                "The token could not be verified.",
            ),
            TicketNotFound => ("존재하지 않는 티켓입니다.", "No tickets for this day."),
            TicketSoldOut => ("남아있는 티켓이 없습니다.", "Sold out."),
            TicketLimitExceeded => (
                "1인당 예매 가능한 티켓 수를 초과했습니다.",
                "You would hold more tickets for this day than allowed.",
            ),
            FestivalDayClosed => ("이미 지난 축제 일자입니다.", "This festival day is over."),
            ReservationNotFound => ("존재하지 않는 예매입니다.", "No such reservation."),
            ReservationAlreadyCancelled => (
                "이미 취소된 예매입니다.",
                "The reservation was cancelled already.",
            ),
            IdempotencyKeyReused => (
                "이미 다른 예매에 사용된 Idempotency-Key입니다.",
                "This Idempotency-Key was used for a different booking.",
            ),
            QueueAdmissionRequired => (
                "대기열을 통과한 뒤 예매할 수 있습니다.",
                "Please go through the waiting room before booking.",
            ),
            QueueAdmissionInvalid => (
                "입장 허가가 만료되었거나 올바르지 않습니다. 대기열에 다시 입장해주세요.",
                "The admission expired or is invalid. Please join the waiting room again.",
            ),
            QueueAdmissionUsed => (
                "이미 사용한 입장 허가입니다. 예매하려면 대기열에 다시 입장해주세요.",
                "This admission was used already. Join the waiting room again to book more.",
            ),
            QueueSoldOut => (
                "매진되어 대기열이 닫혔습니다.",
                "Sold out: the waiting room is closed.",
            ),
            SaleNotOpen => (
                "아직 예매가 시작되지 않았습니다.",
                "The sale has not opened yet.",
            ),
            SaleClosed => ("예매가 종료되었습니다.", "The sale is over."),
            ChatroomNotFound => ("존재하지 않는 채팅방입니다.", "No such chat room."),
            UserChatroomNotFound => (
                "참여 중인 채팅방이 아닙니다.",
                "You have not joined this chat room.",
            ),
            ChatroomNotJoined => (
                "채팅방에 참여한 뒤 이용할 수 있습니다.",
                "Please join the chat room first.",
            ),
        };
        match lang {
            Lang::Ko => ko,
            Lang::En => en,
        }
    }

    /// The code that fits a bare status produced outside our handlers.
    pub fn for_status(status: StatusCode) -> Self {
        use ErrorCode::*;
        match status {
            StatusCode::UNAUTHORIZED => Unauthorized,
            StatusCode::FORBIDDEN => PermissionDenied,
            StatusCode::NOT_FOUND => NotFound,
            StatusCode::METHOD_NOT_ALLOWED => MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => TooManyRequests,
            StatusCode::SERVICE_UNAVAILABLE => ServiceUnavailable,
            s if s.is_server_error() => InternalServerError,
            _ => BadRequest,
        }
    }
}

/// The language of messages in error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Korean, the default.
    #[default]
    Ko,
    /// English, for `Accept-Language` preferring `en`.
    En,
}

impl Lang {
    /// The language the client prefers among the two we speak (Korean unless English ranks higher).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let Some(value) = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::Ko;
        };
        let mut best = (Lang::Ko, 0.0_f32);
        for part in value.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else if tag == "ko" || tag.starts_with("ko-") {
                Lang::Ko
            } else {
                continue;
            };
            if q > best.1 {
                best = (lang, q);
            }
        }
        best.0
    }
}

/// Why one input field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldIssue {
    /// The field is missing.
    Required,
    /// The value could not be read as the expected type or format.
    Malformed(String),
    /// The text is longer than `max` characters.
    TooLong {
        /// The maximum in characters.
        max: usize,
    },
    /// The number is outside `min..=max`.
    OutOfRange {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// Anything else, in both languages.
    Other {
        /// Korean text.
        ko: String,
        /// English text.
        en: String,
    },
}

impl FieldIssue {
    fn render(&self, lang: Lang) -> String {
        match (self, lang) {
            (FieldIssue::Required, Lang::Ko) => "필수 값입니다.".to_owned(),
            (FieldIssue::Required, Lang::En) => "is required".to_owned(),
            (FieldIssue::Malformed(why), Lang::Ko) => format!("형식이 올바르지 않습니다: {why}"),
            (FieldIssue::Malformed(why), Lang::En) => format!("is malformed: {why}"),
            (FieldIssue::TooLong { max }, Lang::Ko) => format!("{max}자 이하로 입력해주세요."),
            (FieldIssue::TooLong { max }, Lang::En) => format!("must be at most {max} characters"),
            (FieldIssue::OutOfRange { min, max }, Lang::Ko) => {
                format!("{min} 이상 {max} 이하여야 합니다.")
            }
            (FieldIssue::OutOfRange { min, max }, Lang::En) => {
                format!("must be between {min} and {max}")
            }
            (FieldIssue::Other { ko, .. }, Lang::Ko) => ko.clone(),
            (FieldIssue::Other { en, .. }, Lang::En) => en.clone(),
        }
    }
}

/// An error and every cause under it, on one line, for logs. The engines' errors name what
/// failed (`sql unavailable`); what the backend said is their `source()`.
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// An error answered to the client. Cheap to clone; rendered in the client's language by
/// [`json_errors`].
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    status: StatusCode,
    fields: BTreeMap<String, FieldIssue>,
    retry_after_secs: Option<u64>,
}

/// The JSON error body, as documented in the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    pub status: u16,
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A message for people (Korean by default).
    pub message: String,
    /// Each field at fault and why; absent when no field is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// An error with `code` and its status.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            status: code.status(),
            fields: BTreeMap::new(),
            retry_after_secs: None,
        }
    }

    /// A 400 naming one field.
    pub fn field(name: impl Into<String>, issue: FieldIssue) -> Self {
        Self::new(ErrorCode::BadRequest).with_field(name, issue)
    }

    /// Adds one more field at fault.
    pub fn with_field(mut self, name: impl Into<String>, issue: FieldIssue) -> Self {
        self.fields.insert(name.into(), issue);
        self
    }

    /// Adds `Retry-After` (for 429 and 503).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// A 500 for an unexpected failure: logs `error` (never shown to the client).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(ErrorCode::InternalServerError)
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The fields at fault.
    pub fn fields(&self) -> &BTreeMap<String, FieldIssue> {
        &self.fields
    }

    fn for_status(status: StatusCode) -> Self {
        Self {
            status,
            ..Self::new(ErrorCode::for_status(status))
        }
    }

    /// The body in `lang`.
    pub fn body(&self, lang: Lang) -> ErrorBody {
        ErrorBody {
            status: self.status.as_u16(),
            code: self.code,
            message: self.code.message(lang).to_owned(),
            errors: (!self.fields.is_empty()).then(|| {
                self.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(lang)))
                    .collect()
            }),
        }
    }

    fn render(&self, lang: Lang) -> Response {
        let mut response = (self.status, Json(self.body(lang))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(Lang::Ko)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self.code, self.status)
    }
}

impl std::error::Error for ApiError {}

/// Middleware: every 4xx/5xx leaves as the JSON error body, in the client's language.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let lang = Lang::from_headers(request.headers());
    let response = next.run(request).await;
    if let Some(error) = response.extensions().get::<ApiError>() {
        if lang == Lang::Ko {
            return response;
        }
        let error = error.clone();
        return keep_headers(&response, error.render(lang));
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    keep_headers(&response, ApiError::for_status(status).render(lang))
}

/// Carries over the headers that matter for the client (`Allow`, `Retry-After`, CORS, request id)
/// from the response being replaced.
fn keep_headers(original: &Response, mut replacement: Response) -> Response {
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .entry(name)
                .or_insert_with(|| value.clone());
        }
    }
    replacement
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"))
}

/// The fallback for unknown routes: 404 `NOT_FOUND`.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every engine's backend failure says which backend failed, keeps what the backend said
    /// as its source (not repeated in its own text), and is the one retryable error.
    #[test]
    fn every_engine_reports_a_backend_failure_the_same_way() {
        use std::error::Error;
        let said = || std::io::Error::other("connection refused");
        let errors: Vec<Box<dyn Error + 'static>> = vec![
            Box::new(ticket_lock::TicketError::unavailable("sql", said())),
            Box::new(festival_catalog::CatalogError::unavailable("sql", said())),
            Box::new(search_cache::CacheError::unavailable("sql", said())),
            Box::new(push_notify::PushError::unavailable("sql", said())),
            Box::new(waiting_queue::QueueError::unavailable("sql", said())),
            Box::new(chat_relay::ChatError::unavailable("sql", said())),
            Box::new(cognito_auth::AuthError::unavailable("sql", said())),
        ];
        for error in &errors {
            assert_eq!(error.to_string(), "sql unavailable");
            assert_eq!(error.source().unwrap().to_string(), "connection refused");
            assert_eq!(
                Report(error.as_ref()).to_string(),
                "sql unavailable: connection refused"
            );
        }
        assert!(ticket_lock::TicketError::unavailable("sql", said()).is_retryable());
        assert!(!ticket_lock::TicketError::NotFound.is_retryable());
        assert!(waiting_queue::QueueError::unavailable("redis", said()).is_retryable());
        assert!(!waiting_queue::QueueError::SoldOut.is_retryable());
        assert!(!cognito_auth::AuthError::UserNotFound.is_retryable());
    }

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(accept).unwrap(),
        );
        h
    }

    #[test]
    fn language_negotiation_prefers_the_higher_quality() {
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::Ko);
        assert_eq!(Lang::from_headers(&headers("en")), Lang::En);
        assert_eq!(Lang::from_headers(&headers("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_headers(&headers("ko-KR,en;q=0.5")), Lang::Ko);
        assert_eq!(Lang::from_headers(&headers("fr, en;q=0.3")), Lang::En);
        assert_eq!(Lang::from_headers(&headers("fr")), Lang::Ko);
    }

    #[test]
    fn bodies_carry_status_code_message_and_fields() {
        let error = ApiError::field("limit", FieldIssue::OutOfRange { min: 1, max: 100 });
        let body = serde_json::to_value(error.body(Lang::Ko)).unwrap();
        assert_eq!(body["status"], 400);
        assert_eq!(body["code"], "BAD_REQUEST");
        assert_eq!(body["message"], "잘못된 요청입니다.");
        assert_eq!(body["errors"]["limit"], "1 이상 100 이하여야 합니다.");
        let body = serde_json::to_value(ApiError::new(ErrorCode::FestivalNotFound).body(Lang::En))
            .unwrap();
        assert_eq!(body["status"], 404);
        assert_eq!(body["code"], "FESTIVAL_NOT_FOUND");
        assert_eq!(body["message"], "The festival does not exist.");
        assert!(body.get("errors").is_none());
    }

    #[test]
    fn every_code_maps_back_from_its_status_family() {
        for status in [400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            let code = ErrorCode::for_status(status);
            assert_eq!(
                code.status().is_server_error(),
                status.is_server_error(),
                "{status}"
            );
        }
    }
}
