//! Every 4xx/5xx leaves with the JSON error body, whoever produced it.

use super::*;

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
