//! The OpenAPI document against the real binary: `headlock serve` serves the document
//! that is checked in as docs/openapi.json, and schemathesis (from the venv
//! `scripts/schemathesis-env.sh` makes) drives every operation with generated requests,
//! with digest authentication (`scripts/schemathesis_digest.py`), and fails on any 5xx,
//! any answer that does not match the document (status, content type, schema), and
//! follows the document's links group -> cluster -> backup config -> encryption key in
//! its stateful phase.

mod common;

use std::path::Path;
use std::process::Command;

use common::World;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn served_document_is_the_checked_in_one() {
    let w = World::new();
    let served = w.admin.expect(w.admin.get("/openapi.json"), 200);
    let checked_in: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("docs/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(served, checked_in);
    assert_eq!(served["openapi"], "3.1.0");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_mismatch() {
    let out = Command::new(repo().join("scripts/schemathesis-env.sh"))
        .output()
        .expect("run scripts/schemathesis-env.sh");
    assert!(
        out.status.success(),
        "schemathesis-env.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let w = World::new();
    let doc = w.dir.path().join("openapi.json");
    std::fs::write(&doc, &w.admin.get("/openapi.json").body).unwrap();
    let report = w.dir.path().join("report");
    let out = Command::new(&st)
        .arg("run")
        .arg(&doc)
        .args(["--url", &w.server.url])
        .args(["--auth", &format!("{}:{}", w.admin.user, w.admin.key)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,fuzzing,stateful"])
        .args(["--mode", "positive"])
        .args(["--max-examples", "10"])
        .args(["--seed", "14"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--max-time", "100"])
        .arg("--no-shrink")
        .args(["--report", "ndjson", "--report-dir"])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_digest")
        .env("PYTHONPATH", repo().join("scripts"))
        .env("NO_COLOR", "1")
        .current_dir(w.dir.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        w.server.log()
    );
    // It ran the stateful phase and followed the links to the end of the chain: some
    // GET of an encryption key reached a real cluster (200, or 409 while encryption is
    // off) rather than 404 for a made-up id; a made-up one cannot get past the lookup.
    assert!(stdout.contains("Stateful"), "{stdout}");
    let ndjson = std::fs::read_dir(&report)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    let reached = ndjson
        .split("{\"request\":")
        .filter(|r| r.starts_with("{\"method\":\"GET\""))
        .filter(|r| {
            r.split('"')
                .nth(7)
                .is_some_and(|uri| uri.ends_with("/encryptionKey"))
        })
        .filter(|r| r.contains("\"status_code\":200") || r.contains("\"status_code\":409"))
        .count();
    assert!(
        reached > 0,
        "no GET .../encryptionKey reached a cluster the run created"
    );
    assert!(!w.server.log().contains("panicked"), "{}", w.server.log());
}
