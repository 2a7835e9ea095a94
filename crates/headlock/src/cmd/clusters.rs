//! `headlock clusters ...`: register, list, show and delete clusters through the API.

use std::process::ExitCode;

use hyper::Method;
use serde_json::json;

use super::remote::{self, api_try, page_query, seg};
use crate::cli::{ClustersArgs, ClustersCommand};

pub async fn run(args: ClustersArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
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
            api_try!(api.print(Method::POST, &path, &[], Some(&body)).await)
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
            api_try!(api.print(Method::GET, &path, &query, None).await)
        }
        ClustersCommand::Get { group, cluster } => {
            let path = format!("/groups/{}/clusters/{}", seg(&group), seg(&cluster));
            api_try!(api.print(Method::GET, &path, &[], None).await)
        }
        ClustersCommand::Delete { group, cluster } => {
            let path = format!("/groups/{}/clusters/{}", seg(&group), seg(&cluster));
            api_try!(api.print(Method::DELETE, &path, &[], None).await);
            eprintln!("headlock: deleted cluster {cluster}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
