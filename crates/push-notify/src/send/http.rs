//! What the HTTP senders share: reading `Retry-After`, and mapping transport failures.

use std::time::{Duration, SystemTime};

use crate::SendOutcome;

/// The HTTP client of a sender: a send that takes longer than 10 s is given up (and retried),
/// well within a dispatcher's lease; redirects are not followed (a push service answers, it
/// does not send us elsewhere).
pub(crate) fn client(provider: &'static str) -> Result<reqwest::Client, crate::PushError> {
    builder()
        .build()
        .map_err(|e| crate::PushError::unavailable(provider, e))
}

/// The settings every sender's client shares.
pub(crate) fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
}

/// At most this much of a provider's error answer is kept (in logs and retry reasons).
const ANSWER_KEPT: usize = 200;

/// The start of an error answer's text, for a log line.
pub(crate) async fn answer_text(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    match text.char_indices().nth(ANSWER_KEPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `Retry-After` as seconds or an HTTP date; `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A request that never got an answer: worth another try.
pub(crate) fn transport(provider: &str, e: &reqwest::Error) -> SendOutcome {
    SendOutcome::Retry {
        after: None,
        reason: format!("{provider}: {e}"),
    }
}

/// 429 and 5xx are passing; everything else the caller decides.
pub(crate) fn is_passing(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(300));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let got = retry_after(&h).unwrap();
        assert!(
            got > Duration::from_secs(290) && got <= Duration::from_secs(300),
            "{got:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
