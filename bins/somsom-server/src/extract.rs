//! Extractors that answer bad input with a 400 naming the field, instead of axum's plain-text
//! rejections: [`Json`], [`Query`] and [`Path`].

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::header;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode, FieldIssue};

/// A JSON body. Wrong content type → 415, too large → 413, unreadable → 400 naming the field
/// (or `body` when the JSON itself is broken). Unknown fields are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime_lite::MediaType>().ok())
            .is_some_and(|m| m.is_json());
        if !is_json {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| bytes_rejection(&r))?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads `bytes` as JSON into `T`, naming the field at fault on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                let why = format!("line {} column {}", inner.line(), inner.column());
                ApiError::field("body", FieldIssue::Malformed(why))
            } else {
                let (field, issue) = describe(&e.path().to_string(), &inner.to_string());
                ApiError::field(field, issue)
            }
        })
        .and_then(|value| {
            de.end()
                .map_err(|_| {
                    ApiError::field("body", FieldIssue::Malformed("trailing characters".into()))
                })
                .map(|()| value)
        })
}

fn bytes_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge)
    } else {
        ApiError::field("body", FieldIssue::Malformed(rejection.body_text()))
    }
}

/// Query parameters. Missing required or unreadable ones → 400 naming each.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Reads a query string (or a form body) into `T`, naming the field at fault on failure.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let (field, issue) = describe(&e.path().to_string(), &e.inner().to_string());
        ApiError::field(field, issue)
    })
}

fn form_urlencoded_parse(query: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(query.as_bytes())
}

/// Path parameters. A non-numeric id → 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        // The names of the route's parameters, to name the one at fault when axum reports it by
        // position (a single parameter, or a tuple).
        let names: Vec<String> = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map(|params| params.iter().map(|(k, _)| k.to_owned()).collect())
            .unwrap_or_default();
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let (field, why) = match e.kind() {
                    ErrorKind::ParseErrorAtKey {
                        key, expected_type, ..
                    } => (
                        key.clone(),
                        format!("expected {}", short_type(expected_type)),
                    ),
                    ErrorKind::ParseErrorAtIndex {
                        index,
                        expected_type,
                        ..
                    } => (
                        names
                            .get(*index)
                            .cloned()
                            .unwrap_or_else(|| format!("path[{index}]")),
                        format!("expected {}", short_type(expected_type)),
                    ),
                    ErrorKind::ParseError { expected_type, .. } => (
                        match names.as_slice() {
                            [only] => only.clone(),
                            _ => "path".to_owned(),
                        },
                        format!("expected {}", short_type(expected_type)),
                    ),
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        (key.clone(), "invalid UTF-8".into())
                    }
                    other => ("path".to_owned(), other.to_string()),
                };
                Err(ApiError::field(field, FieldIssue::Malformed(why)))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// `u64` for `u64`, `Foo` for `my_crate::Foo`: type names without their paths.
fn short_type(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// Turns serde's path and message into the field name and a [`FieldIssue`].
fn describe(path: &str, message: &str) -> (String, FieldIssue) {
    // A body that is an array where an object was expected reports paths like `[1]`; the body as
    // a whole is what is wrong then.
    let at_root = path == "." || path.is_empty() || path.starts_with('[');
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if path == "." || path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        return (field, FieldIssue::Required);
    }
    // serde appends " at line X column Y" for JSON; it adds nothing for a named field.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_owned();
    let field = if at_root {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    (field, FieldIssue::Malformed(message))
}

/// A minimal media-type check: `application/json` and any `+json` suffix, parameters ignored.
mod mime_lite {
    pub struct MediaType(String);

    impl std::str::FromStr for MediaType {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let essence = s.split(';').next().ok_or(())?.trim().to_ascii_lowercase();
            if essence.contains('/') {
                Ok(Self(essence))
            } else {
                Err(())
            }
        }
    }

    impl MediaType {
        pub fn is_json(&self) -> bool {
            self.0 == "application/json"
                || (self.0.starts_with("application/") && self.0.ends_with("+json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Booking {
        festival_id: u64,
        festival_date: String,
        quantity: Option<u8>,
    }

    fn field_of(error: &ApiError) -> (&str, &FieldIssue) {
        let (k, v) = error.fields().iter().next().expect("a field");
        (k.as_str(), v)
    }

    #[test]
    fn missing_field_is_named() {
        let error = parse_json::<Booking>(br#"{"festivalId": 1}"#).unwrap_err();
        assert_eq!(error.code(), ErrorCode::BadRequest);
        assert_eq!(field_of(&error), ("festivalDate", &FieldIssue::Required));
    }

    #[test]
    fn wrong_type_is_named() {
        let error =
            parse_json::<Booking>(br#"{"festivalId": "x", "festivalDate": "d"}"#).unwrap_err();
        let (field, issue) = field_of(&error);
        assert_eq!(field, "festivalId");
        assert!(
            matches!(issue, FieldIssue::Malformed(why) if why.contains("invalid type")),
            "{issue:?}"
        );
        let error =
            parse_json::<Booking>(br#"{"festivalId": 1, "festivalDate": "d", "quantity": 900}"#)
                .unwrap_err();
        assert_eq!(field_of(&error).0, "quantity");
    }

    #[test]
    fn broken_json_names_the_body() {
        let error = parse_json::<Booking>(br#"{"festivalId": 1,"#).unwrap_err();
        assert_eq!(field_of(&error).0, "body");
        let error = parse_json::<Booking>(b"[1,2]").unwrap_err();
        assert_eq!(field_of(&error).0, "body");
        let error = parse_json::<Booking>(br#"{"festivalId":1,"festivalDate":"d"} x"#).unwrap_err();
        assert_eq!(field_of(&error).0, "body");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let ok = parse_json::<Booking>(br#"{"festivalId": 1, "festivalDate": "d", "extra": true}"#)
            .unwrap();
        assert_eq!(ok.festival_id, 1);
    }

    #[test]
    fn query_errors_are_named() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Page {
            keyword: String,
            last_id: Option<u64>,
        }
        let error = parse_query::<Page>("lastId=3").unwrap_err();
        assert_eq!(field_of(&error), ("keyword", &FieldIssue::Required));
        let error = parse_query::<Page>("keyword=a&lastId=abc").unwrap_err();
        assert_eq!(field_of(&error).0, "lastId");
        let ok = parse_query::<Page>("keyword=%EC%B6%95%EC%A0%9C").unwrap();
        assert_eq!(ok.keyword, "축제");
    }

    #[test]
    fn media_types() {
        let parse = |s: &str| s.parse::<mime_lite::MediaType>().map(|m| m.is_json());
        assert_eq!(parse("application/json; charset=utf-8"), Ok(true));
        assert_eq!(parse("application/problem+json"), Ok(true));
        assert_eq!(parse("text/plain"), Ok(false));
        assert!(parse("json").is_err());
    }
}
