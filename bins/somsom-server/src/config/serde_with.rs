//! Reading settings as operators write them: empty means unset, a list may be one string;
//! secrets inline or from a file, never shown.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

/// A secret given inline (`name`, usually from the environment) or in a file (`name_file`):
/// the value, the file's contents trimmed, or `None` when neither is set.
pub fn secret(
    name: &str,
    inline: &Option<String>,
    file: &Option<String>,
) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("set {name} or {name}_file, not both")),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|e| format!("{name}_file {path}: {e}")),
        (None, None) => Ok(None),
    }
}

pub(super) fn redact(value: &mut serde_json::Value, key: &str) {
    use serde_json::Value;
    match value {
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact(v, k)),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, key)),
        Value::String(s) if is_secret_key(key) => *s = "****".to_owned(),
        Value::String(s) if key.ends_with("url") => *s = mask_url_password(s),
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    ["secret", "password", "private_key", "signing_key", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// `mysql://user:pw@host/db` → `mysql://user:****@host/db`; anything unparsable is left alone.
pub fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

pub(super) fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.filter(|s| !s.trim().is_empty()))
}

pub(super) fn empty_is_none_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    match empty_is_none(d)? {
        Some(s) => s.trim().parse().map(Some).map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

pub(super) fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}
