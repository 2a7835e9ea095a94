//! `headlock snapshots list|get|set|delete`: a cluster's snapshots through the API;
//! `delete` asks first (the snapshot cannot be restored afterwards).

use std::process::ExitCode;

use hyper::Method;
use serde_json::{Map, Value, json};

use super::confirm;
use super::output::SNAPSHOTS;
use super::remote::{self, api_try, page_query, printable, seg};
use crate::cli::{OnOff, SnapshotsArgs, SnapshotsCommand};

pub async fn run(args: SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let out = (args.output.format(), SNAPSHOTS);
    match args.command {
        SnapshotsCommand::List {
            group,
            cluster,
            page,
        } => api_try!(
            api.print(
                Method::GET,
                &snapshots_path(&group, &cluster),
                &page_query(&page),
                None,
                out
            )
            .await
        ),
        SnapshotsCommand::Get {
            group,
            cluster,
            snapshot,
        } => {
            let path = snapshot_path(&group, &cluster, &snapshot);
            api_try!(api.print(Method::GET, &path, &[], None, out).await)
        }
        SnapshotsCommand::Set {
            group,
            cluster,
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
            let path = snapshot_path(&group, &cluster, &snapshot);
            api_try!(
                api.print(Method::PATCH, &path, &[], Some(&Value::Object(body)), out)
                    .await
            )
        }
        SnapshotsCommand::Delete {
            group,
            cluster,
            snapshot,
            confirm,
        } => {
            let path = snapshot_path(&group, &cluster, &snapshot);
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

fn snapshots_path(group: &str, cluster: &str) -> String {
    format!("/groups/{}/clusters/{}/snapshots", seg(group), seg(cluster))
}

fn snapshot_path(group: &str, cluster: &str, snapshot: &str) -> String {
    format!("{}/{}", snapshots_path(group, cluster), seg(snapshot))
}
