//! The language of an error body, and why one input field was refused.

use super::*;

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
    pub(super) fn render(&self, lang: Lang) -> String {
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
