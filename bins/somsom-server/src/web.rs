//! The web app: static files compiled into the binary (`web/`), so the one run command serves it.
//! No build step: plain ES modules and CSS.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use crate::error::{ApiError, ErrorCode};

const INDEX: &str = include_str!("../web/index.html");
const SERVICE_WORKER: &str = include_str!("../web/sw.js");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "stomp.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/stomp.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
];

/// Only our own origin: scripts, styles, API calls, the chat's WebSocket and the event stream.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self' ws: wss:; worker-src 'self'; media-src 'self' blob: mediastream:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidated on every load: a new server version is picked up at once.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the app's page.
pub async fn index() -> Response {
    let mut response = file("text/html; charset=utf-8", INDEX);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `GET /sw.js`: the service worker, at the root so it may control the whole app.
pub async fn service_worker() -> Response {
    file("text/javascript; charset=utf-8", SERVICE_WORKER)
}

/// Swagger UI (`web/swagger-ui/`, see its README), shipped with the server: no CDN.
const SWAGGER_UI: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../web/swagger-ui/index.html"),
    ),
    (
        "swagger-initializer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/swagger-ui/swagger-initializer.js"),
    ),
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui-standalone-preset.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/swagger-ui/swagger-ui-standalone-preset.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/swagger-ui/swagger-ui.css"),
    ),
    (
        "favicon-32x32.png",
        "image/png",
        include_bytes!("../web/swagger-ui/favicon-32x32.png"),
    ),
];

/// Swagger UI sets styles inline and shows images as data URLs; everything else is our own.
const SWAGGER_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /swagger-ui/{file}`: Swagger UI over `/v3/api-docs`, as the original service served it.
pub async fn swagger_ui(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = SWAGGER_UI
        .iter()
        .find(|(file_name, _, _)| *file_name == name)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(SWAGGER_CSP),
            ),
        ],
        *body,
    )
        .into_response())
}

/// `GET /swagger-ui` and `/swagger-ui/`: the page.
pub async fn swagger_ui_home() -> axum::response::Redirect {
    axum::response::Redirect::permanent("/swagger-ui/index.html")
}

/// `GET /assets/{file}`.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(file_name, _, _)| *file_name == name)
        .map(|(_, content_type, body)| file(content_type, body))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[tokio::test]
    async fn assets_are_served_with_their_types() {
        let page = index().await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let js = asset(Path("app.js".to_owned())).await.unwrap();
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(asset(Path("../Cargo.toml".to_owned())).await.is_err());
        assert_eq!(service_worker().await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn swagger_ui_is_shipped_and_reads_our_document() {
        let page = swagger_ui(Path("index.html".to_owned())).await.unwrap();
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let init = swagger_ui(Path("swagger-initializer.js".to_owned()))
            .await
            .unwrap();
        let body = axum::body::to_bytes(init.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("url: '/v3/api-docs'"), "{text}");
        assert!(!text.contains("petstore"));
        let bundle = swagger_ui(Path("swagger-ui-bundle.js".to_owned()))
            .await
            .unwrap();
        let body = axum::body::to_bytes(bundle.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.len() > 1_000_000, "the whole bundle, not a CDN link");
        assert!(
            swagger_ui(Path("../../Cargo.toml".to_owned()))
                .await
                .is_err()
        );
    }
}
