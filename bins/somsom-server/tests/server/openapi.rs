//! `docs/openapi.json` is the served document, byte for byte. Regenerate it with
//! `SOMSOM_UPDATE_DOCS=1 cargo test -p somsom-server --test server openapi`.

use std::path::PathBuf;

#[test]
fn checked_in_openapi_document_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = somsom_server::openapi::document() + "\n";
    if std::env::var_os("SOMSOM_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is stale: run SOMSOM_UPDATE_DOCS=1 cargo test -p somsom-server --test server openapi"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/actuator/health",
        "/metrics",
        "/v3/api-docs",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
