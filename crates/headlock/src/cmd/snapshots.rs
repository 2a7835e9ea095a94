//! `headlock snapshots list|get|set|delete`: a cluster's snapshots through the API;
//! `delete` asks first (the snapshot cannot be restored afterwards).

use std::process::ExitCode;

use hyper::Method;
use serde_json::{Map, Value, json};

use super::confirm;
use super::output::SNAPSHOTS;
use super::remote::{self, api_try, page_query, printable, seg};
use crate::cli::{ClusterRef, OnOff, SnapshotsArgs, SnapshotsCommand};

pub async fn run(args: SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let out = (args.output.format(), SNAPSHOTS);
    match args.command {
        SnapshotsCommand::List { at, page } => api_try!(
            api.print(
                Method::GET,
                &snapshots_path(&at),
                &page_query(&page),
                None,
                out
            )
            .await
        ),
        SnapshotsCommand::Get { at, snapshot } => {
            let path = snapshot_path(&at, &snapshot);
            api_try!(api.print(Method::GET, &path, &[], None, out).await)
        }
        SnapshotsCommand::Set {
            at,
            snapshot,
            expires,
            do_not_delete,
        } => {
            let mut body = Map::new();
            if let Some(e) = expires {
                let value = if e.eq_ignore_ascii_case("never") {
                    Value::Null
                } else {
                    json!(e)
                };
                body.insert("expires".into(), value);
            }
            if let Some(d) = do_not_delete {
                body.insert("doNotDelete".into(), json!(d == OnOff::On));
            }
            let path = snapshot_path(&at, &snapshot);
            api_try!(
                api.print(Method::PATCH, &path, &[], Some(&Value::Object(body)), out)
                    .await
            )
        }
        SnapshotsCommand::Delete {
            at,
            snapshot,
            confirm,
        } => {
            let path = snapshot_path(&at, &snapshot);
            if let Err(code) = confirm::may_ask(confirm.yes, "delete a snapshot") {
                return Ok(code);
            }
            if !confirm.yes {
                let found =
                    api_try!(api.call(Method::GET, &path, &[], None).await).unwrap_or(Value::Null);
                if let Err(code) = confirm::ask(&delete_warning(&found, &snapshot), "delete") {
                    return Ok(code);
                }
            }
            api_try!(api.call(Method::DELETE, &path, &[], None).await);
            eprintln!("headlock: deleted snapshot {}", printable(&snapshot));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What deleting this snapshot means, in words.
fn delete_warning(found: &Value, snapshot: &str) -> Vec<String> {
    let text = |p: &str| {
        found
            .pointer(p)
            .map(|v| match v {
                Value::String(s) => printable(s),
                Value::Null => "-".to_string(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "?".to_string())
    };
    let mut lines = vec![
        format!(
            "About to DELETE snapshot {} of cluster {} (created {}, {}, {} bytes of data).",
            printable(snapshot),
            text("/clusterId"),
            text("/created/date"),
            text("/kind"),
            text("/parts/0/dataSizeBytes"),
        ),
        "  It can no longer be restored; its chunks that no other snapshot uses are collected."
            .to_string(),
        "  This cannot be undone.".to_string(),
    ];
    if found["doNotDelete"] == true {
        lines.push(
            "  It is marked do-not-delete: the service will refuse (snapshots set --do-not-delete off first)."
                .to_string(),
        );
    }
    lines
}

fn snapshots_path(at: &ClusterRef) -> String {
    format!("{}/snapshots", at.cluster_path())
}

fn snapshot_path(at: &ClusterRef, snapshot: &str) -> String {
    format!("{}/{}", snapshots_path(at), seg(snapshot))
}
