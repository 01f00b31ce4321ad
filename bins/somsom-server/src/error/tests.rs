//! Error bodies, codes and the engines' errors mapped onto them.

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
    let body =
        serde_json::to_value(ApiError::new(ErrorCode::FestivalNotFound).body(Lang::En)).unwrap();
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
