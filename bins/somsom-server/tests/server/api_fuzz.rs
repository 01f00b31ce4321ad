//! The API document is exact: schemathesis, a property-based fuzzer driven by `/v3/api-docs`,
//! generates requests for every operation (examples, boundary values, then random ones) against
//! a running server and checks every answer: no 5xx but a documented 503, every status and
//! content type documented for its operation, every body matching its documented schema.
//! Client generators trust that document.

use crate::common;

use std::path::Path;

use test_support::{PYTHON, require_service};

/// Runs schemathesis with `select` (which operations) and returns its report.
async fn fuzz(schemathesis: &Path, base: &str, token: &str, select: &[&str]) -> String {
    // Its cache and reports go to a scratch directory, not the checkout.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(schemathesis)
        .current_dir(scratch.path())
        .arg("run")
        .arg(format!("{base}/v3/api-docs"))
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "100"])
        .args(["--workers", "2"])
        .args(["--seed", "20261206"])
        .args(["--request-timeout", "30"])
        .args(["--no-color"])
        .args(select)
        .output()
        .await
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found answers the document does not list:\n{report}"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_every_operation_is_documented() {
    let python = require_service!(PYTHON);
    let schemathesis = Path::new(&python).with_file_name("schemathesis");
    let ctx = common::start(|c| {
        // The fuzzer is one client sending thousands of requests, and its e-mails repeat.
        c.auth.attempts_per_address_per_minute = 1_000_000;
        c.auth.attempts_per_account_per_minute = 1_000_000;
        c.auth.signups_per_address_per_hour = 1_000_000;
        c.auth.signups_per_email_per_hour = 1_000_000;
    })
    .await;
    // An admin reaches every operation past its role check.
    let admin = ctx.admin_token("fuzz@example.com").await;
    let base = ctx.server.url("");
    // Signing out ends the session every other request uses: fuzzed on its own, last.
    let main = fuzz(
        &schemathesis,
        &base,
        &admin,
        &["--exclude-path", "/signout"],
    )
    .await;
    let signout = fuzz(
        &schemathesis,
        &base,
        &admin,
        &["--include-path", "/signout"],
    )
    .await;
    for report in [&main, &signout] {
        let summary: Vec<&str> = report
            .lines()
            .filter(|l| {
                l.contains("operations") || l.contains("test cases") || l.contains("generated")
            })
            .collect();
        eprintln!("{}", summary.join("\n"));
    }
}
