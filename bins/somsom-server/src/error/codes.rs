//! The catalogue of error codes: each one's status and its Korean and English messages.

use super::*;

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
    /// 400: the ticket code is malformed, forged or altered.
    TicketCodeInvalid,
    /// 409: the ticket's reservation was cancelled.
    TicketCancelled,
    /// 409: the ticket is for another day than the one being checked in.
    TicketWrongDay,
    /// 409: the ticket was checked in already (`details` say by whom, at which gate, when).
    TicketAlreadyCheckedIn,
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
            TicketSoldOut | FestivalDayClosed | TicketCodeInvalid => StatusCode::BAD_REQUEST,
            TicketCancelled | TicketWrongDay | TicketAlreadyCheckedIn => StatusCode::CONFLICT,
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
            TicketCodeInvalid => (
                "올바르지 않은 티켓입니다.",
                "This is not a valid ticket code.",
            ),
            TicketCancelled => (
                "취소된 예매의 티켓입니다.",
                "This ticket's reservation was cancelled.",
            ),
            TicketWrongDay => ("다른 날짜의 티켓입니다.", "This ticket is for another day."),
            TicketAlreadyCheckedIn => (
                "이미 입장 처리된 티켓입니다.",
                "This ticket was checked in already.",
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
