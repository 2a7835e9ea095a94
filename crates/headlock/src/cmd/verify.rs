//! `headlock verify`: asks the service to read back one snapshot, or every snapshot of
//! a cluster (paging through `GET .../snapshots`), with `POST .../snapshots/{S}/verify`
//! (an extension), and prints one line per snapshot:
//!
//! ```text
//! 5f0c0ffee0c0ffee0c0ffee1 ok
//! 5f0c0ffee0c0ffee0c0ffee0 DAMAGED: chunk 9a3c... in pack 6b0c... (authentication failed), used by snapshots 5f0c...e0, 5f0c...d7
//! 5f0c0ffee0c0ffee0c0ffee2 NOT CHECKED
//! ```
//!
//! Exit status [`EXIT_DAMAGED`] when any snapshot is damaged; otherwise that of the
//! last failed check, if any (its error on standard error), else 0.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::remote::{self, EXIT_FAILED, Failure, Remote, api_try, print_line, printable, seg};
use crate::cli::VerifyArgs;

/// Exit status when a snapshot is damaged.
pub(crate) const EXIT_DAMAGED: u8 = 5;
/// Shortest deadline of one verify call: the service reads the whole snapshot.
const VERIFY_DEADLINE: Duration = Duration::from_secs(3600);
/// Snapshots per page when listing.
const PAGE: u32 = 500;
/// Damaged chunks named per snapshot line; more are counted.
const MAX_NAMED: usize = 100;

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let base = format!(
        "/groups/{}/clusters/{}/snapshots",
        seg(&args.group),
        seg(&args.cluster)
    );
    let ids = match args.snapshot {
        Some(s) => vec![s],
        None => api_try!(list_ids(&mut api, &base).await),
    };
    if ids.is_empty() {
        eprintln!("headlock: verify: the cluster has no snapshots");
        return Ok(ExitCode::SUCCESS);
    }
    api.client()
        .set_timeout(Duration::from_secs(args.api.timeout).max(VERIFY_DEADLINE));
    let (mut damaged, mut failed) = (0usize, None);
    for id in &ids {
        let path = format!("{base}/{}/verify", seg(id));
        match api.call(Method::POST, &path, &[], None).await {
            Ok(Some(report)) => {
                let (line, ok) = describe(id, &report);
                print_line(&line);
                if !ok {
                    damaged += 1;
                }
            }
            Ok(None) => {
                print_line(&format!("{} NOT CHECKED", printable(id)));
                failed = Some(
                    Failure::new(
                        EXIT_FAILED,
                        format!(
                            "verifying {}: the API answered with an empty body",
                            printable(id)
                        ),
                    )
                    .report(),
                );
            }
            Err(f) => {
                print_line(&format!("{} NOT CHECKED", printable(id)));
                failed = Some(f.report());
            }
        }
    }
    if ids.len() > 1 {
        eprintln!(
            "headlock: verify: {} snapshots, {} damaged{}",
            ids.len(),
            damaged,
            if failed.is_some() {
                ", some not checked"
            } else {
                ""
            }
        );
    }
    Ok(if damaged > 0 {
        ExitCode::from(EXIT_DAMAGED)
    } else {
        failed.unwrap_or(ExitCode::SUCCESS)
    })
}

/// Every snapshot id of the cluster, newest first, page by page.
async fn list_ids(api: &mut Remote, base: &str) -> Result<Vec<String>, Failure> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for page in 1u32.. {
        let query = [
            ("pageNum", page.to_string()),
            ("itemsPerPage", PAGE.to_string()),
        ];
        let answer = api
            .call(Method::GET, base, &query, None)
            .await?
            .unwrap_or(Value::Null);
        let results = answer
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = answer.get("totalCount").and_then(Value::as_u64);
        let before = ids.len();
        for r in &results {
            if let Some(id) = r.get("id").and_then(Value::as_str)
                && seen.insert(id.to_string())
            {
                ids.push(id.to_string());
            }
        }
        // The end: a short or empty page, everything counted, or a page with nothing
        // new (the list moved under us).
        if results.len() < PAGE as usize
            || total.is_some_and(|t| ids.len() as u64 >= t)
            || ids.len() == before
        {
            break;
        }
    }
    Ok(ids)
}

/// The line for one verify report, and whether the snapshot is intact.
fn describe(id: &str, report: &Value) -> (String, bool) {
    let id = printable(id);
    if report.get("ok").and_then(Value::as_bool) == Some(true) {
        return (format!("{id} ok"), true);
    }
    let text = |v: Option<&Value>| printable(v.and_then(Value::as_str).unwrap_or("?"));
    let mut problems = Vec::new();
    if report.get("manifestOk").and_then(Value::as_bool) == Some(false) {
        match report.get("manifestError").and_then(Value::as_str) {
            Some(e) => problems.push(format!("manifest unreadable ({})", printable(e))),
            None => problems.push("manifest unreadable".to_string()),
        }
    }
    let damaged = report
        .get("damaged")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for d in damaged.iter().take(MAX_NAMED) {
        let users: Vec<String> = d
            .get("snapshotIds")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|s| text(Some(s))).collect())
            .unwrap_or_default();
        problems.push(format!(
            "chunk {} in pack {} ({}), used by {} {}",
            text(d.get("chunkId")),
            text(d.get("packId")),
            text(d.get("reason")),
            if users.len() == 1 {
                "snapshot"
            } else {
                "snapshots"
            },
            if users.is_empty() {
                "none".to_string()
            } else {
                users.join(", ")
            },
        ));
    }
    if damaged.len() > MAX_NAMED {
        problems.push(format!(
            "and {} more damaged chunks",
            damaged.len() - MAX_NAMED
        ));
    }
    if problems.is_empty() {
        problems.push("the service found damage but named none".to_string());
    }
    (format!("{id} DAMAGED: {}", problems.join("; ")), false)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_intact_reports() {
        let r = json!({"snapshotId": "s1", "ok": true, "chunksChecked": 3, "bytesChecked": 10,
            "manifestOk": true, "damaged": []});
        assert_eq!(describe("s1", &r), ("s1 ok".to_string(), true));
    }

    #[test]
    fn rejects_damaged_reports_naming_chunk_pack_and_snapshots() {
        let r = json!({"snapshotId": "s1", "ok": false, "manifestOk": true, "damaged": [
            {"chunkId": "c1", "packId": "p1", "reason": "authentication failed", "snapshotIds": ["s1", "s2"]},
            {"chunkId": "c2", "packId": "p2", "reason": "missing pack", "snapshotIds": ["s1"]},
        ]});
        let (line, ok) = describe("s1", &r);
        assert!(!ok);
        assert_eq!(
            line,
            "s1 DAMAGED: chunk c1 in pack p1 (authentication failed), used by snapshots s1, s2; \
             chunk c2 in pack p2 (missing pack), used by snapshot s1"
        );
    }

    #[test]
    fn rejects_reports_without_ok_or_with_a_bad_manifest() {
        let (line, ok) = describe("s", &json!({"manifestOk": false}));
        assert!(!ok);
        assert_eq!(line, "s DAMAGED: manifest unreadable");
        let (line, ok) = describe("s", &json!({}));
        assert!(!ok);
        assert!(line.contains("named none"), "{line}");
        // Control characters from the server do not reach the terminal.
        let (line, _) = describe(
            "s",
            &json!({"damaged": [{"chunkId": "c\u{1b}[2J", "packId": "p", "reason": "r", "snapshotIds": []}]}),
        );
        assert!(!line.contains('\u{1b}'), "{line}");
    }
}
