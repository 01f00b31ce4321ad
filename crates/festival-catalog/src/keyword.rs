//! Keyword normalisation and the n-grams the SQL index is built from.

use std::collections::BTreeSet;

use crate::{CatalogError, KEYWORD_MAX};

/// Case folding for search: Unicode lowercase. Hangul has no case and is left as it is.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// A search keyword: trimmed, 1..=[`KEYWORD_MAX`] characters, folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Keyword(String);

impl Keyword {
    /// Validates and normalises what the user typed.
    pub fn parse(raw: &str) -> Result<Self, CatalogError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(CatalogError::invalid("keyword", "must not be empty"));
        }
        let chars = trimmed.chars().count();
        if chars > KEYWORD_MAX {
            return Err(CatalogError::invalid(
                "keyword",
                format!("must be at most {KEYWORD_MAX} characters, got {chars}"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(CatalogError::invalid(
                "keyword",
                "must not contain control characters",
            ));
        }
        Ok(Self(fold(trimmed)))
    }

    /// The folded keyword.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The grams a festival must have in its index to contain this keyword: the character itself
    /// for a one-character keyword, else every distinct pair of neighbouring characters.
    pub fn required_grams(&self) -> Vec<String> {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() == 1 {
            return vec![self.0.clone()];
        }
        let set: BTreeSet<String> = chars.windows(2).map(|w| w.iter().collect()).collect();
        set.into_iter().collect()
    }
}

/// Every distinct character and pair of neighbouring characters of `texts` (already folded).
/// Pairs never span two texts, so a festival's grams are exactly those its name or description
/// can match.
pub fn grams<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for text in texts {
        let chars: Vec<char> = text.chars().collect();
        for c in &chars {
            set.insert(c.to_string());
        }
        for pair in chars.windows(2) {
            set.insert(pair.iter().collect());
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_trimmed_folded_and_bounded() {
        assert_eq!(
            Keyword::parse("  Seoul 불꽃 ").unwrap().as_str(),
            "seoul 불꽃"
        );
        assert!(Keyword::parse("").is_err());
        assert!(Keyword::parse("   ").is_err());
        assert!(Keyword::parse(&"축".repeat(50)).is_ok());
        assert!(Keyword::parse(&"축".repeat(51)).is_err());
        assert!(Keyword::parse("a\u{0}b").is_err());
    }

    #[test]
    fn required_grams_are_subsets_of_any_matching_text() {
        let festival = grams(["서울 불꽃축제", "100% 재미_보장"]);
        for keyword in ["축제", "불", "울 불", "100%", "미_", "서울 불꽃축제"] {
            let k = Keyword::parse(keyword).unwrap();
            for g in k.required_grams() {
                assert!(festival.contains(&g), "{keyword}: {g} missing");
            }
        }
        // A pair across the two texts is not a gram.
        assert!(!festival.contains("제1"));
    }
}
