//! `headlock clusters ...`: register, list, show and delete (after confirmation)
//! clusters through the API.

use std::process::ExitCode;

use hyper::Method;
use serde_json::{Value, json};

use super::confirm;
use super::output::CLUSTERS;
use super::remote::{self, api_try, page_query, printable, seg};
use crate::cli::{ClustersArgs, ClustersCommand};

pub async fn run(args: ClustersArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let out = (args.output.format(), CLUSTERS);
    match args.command {
        ClustersCommand::Register {
            group,
            name,
            replica_set,
            shard,
            config_server_replica_set,
        } => {
            let body = if shard.is_empty() {
                json!({
                    "clusterName": name,
                    "typeName": "REPLICA_SET",
                    "replicaSetName": replica_set.unwrap_or_else(|| name.clone()),
                })
            } else {
                json!({
                    "clusterName": name,
                    "typeName": "SHARDED_REPLICA_SET",
                    "shards": shard
                        .iter()
                        .map(|s| json!({"shardName": s.name, "replicaSetName": s.replica_set}))
                        .collect::<Vec<_>>(),
                    "configServerReplicaSet": config_server_replica_set,
                })
            };
            let path = format!("/groups/{}/clusters", seg(&group));
            api_try!(api.print(Method::POST, &path, &[], Some(&body), out).await)
        }
        ClustersCommand::List {
            group,
            parent,
            page,
        } => {
            let mut query = page_query(&page);
            if let Some(p) = parent {
                query.push(("parentClusterId", p));
            }
            let path = format!("/groups/{}/clusters", seg(&group));
            api_try!(api.print(Method::GET, &path, &query, None, out).await)
        }
        ClustersCommand::Get { at } => {
            api_try!(
                api.print(Method::GET, &at.cluster_path(), &[], None, out)
                    .await
            )
        }
        ClustersCommand::Delete { at, confirm } => {
            let path = at.cluster_path();
            if let Err(code) = confirm::may_ask(confirm.yes, "delete a cluster") {
                return Ok(code);
            }
            if !confirm.yes {
                let found =
                    api_try!(api.call(Method::GET, &path, &[], None).await).unwrap_or(Value::Null);
                let name = found["clusterName"].as_str().unwrap_or("").to_string();
                let parts = found["parts"].as_array().map_or(0, Vec::len);
                let mut lines = vec![format!(
                    "About to DELETE cluster \"{}\" ({}, id {}) of group {}.",
                    printable(&name),
                    printable(found["typeName"].as_str().unwrap_or("?")),
                    printable(&at.cluster),
                    printable(&at.group)
                )];
                if parts > 0 {
                    lines.push(format!(
                        "  It is sharded: its {parts} parts (shards, config servers) go with it."
                    ));
                }
                lines.push(
                    "  Its master keys are revoked in the KMIP server and its backup configuration is removed;"
                        .to_string(),
                );
                lines.push(
                    "  the service refuses if it still has snapshots (CANNOT_DELETE_CLUSTER). This cannot be undone."
                        .to_string(),
                );
                if let Err(code) = confirm::ask(&lines, &name) {
                    return Ok(code);
                }
            }
            api_try!(api.call(Method::DELETE, &path, &[], None).await);
            eprintln!("headlock: deleted cluster {}", printable(&at.cluster));
        }
    }
    Ok(ExitCode::SUCCESS)
}
