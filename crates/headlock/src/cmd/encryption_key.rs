//! `headlock encryption-key ...`: show a cluster's current master key id, rotate it
//! (the API's PUT answers 201 with no key id, so `rotate` follows it with a GET and
//! prints the new id), its history, its rotation schedule and retirement delay, declare
//! it compromised (after confirmation), cancel a retired key's destruction.

use std::process::ExitCode;

use hyper::Method;
use serde_json::{Map, Value, json};

use super::confirm;
use super::output::{BACKUP_CONFIGS, KEYS, REENCRYPTION_JOBS, show};
use super::remote::{self, Remote, api_try, page_query, print_line, printable, seg};
use crate::cli::{ClusterRef, EncryptionKeyArgs, EncryptionKeyCommand, OutputFormat};

pub async fn run(args: EncryptionKeyArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let format = args.output.format();
    match args.command {
        EncryptionKeyCommand::Get { at } => {
            api_try!(
                api.print(Method::GET, &key_path(&at), &[], None, (format, &[]))
                    .await
            )
        }
        EncryptionKeyCommand::Rotate { at, json } => {
            let path = key_path(&at);
            api_try!(api.call(Method::PUT, &path, &[], None).await);
            let current = match api.call(Method::GET, &path, &[], None).await {
                Ok(v) => v.unwrap_or(Value::Null),
                Err(f) => {
                    eprintln!("headlock: the key was rotated, but reading the new key's id failed");
                    return Ok(f.report());
                }
            };
            // One line unless an output format was asked for (`--json` is `--output json`).
            match (json, args.output.output) {
                (true, _) => show(&current, OutputFormat::Json, &[]),
                (false, Some(f)) => show(&current, f, &[]),
                (false, None) => print_line(&summary(&current)),
            }
        }
        EncryptionKeyCommand::History { at, page } => {
            let path = format!("{}/encryptionKeys", at.config_path());
            api_try!(
                api.print(Method::GET, &path, &page_query(&page), None, (format, KEYS))
                    .await
            )
        }
        EncryptionKeyCommand::Schedule {
            at,
            rotate_every_days,
            destroy_retired_after_days,
        } => {
            let mut body = Map::new();
            if let Some(d) = rotate_every_days {
                body.insert("encryptionKeyRotationPeriodDays".into(), json!(d));
            }
            if let Some(d) = destroy_retired_after_days {
                body.insert("retiredKeyDestroyAfterDays".into(), json!(d));
            }
            let path = at.config_path();
            api_try!(
                api.print(
                    Method::PATCH,
                    &path,
                    &[],
                    Some(&Value::Object(body)),
                    (format, BACKUP_CONFIGS)
                )
                .await
            )
        }
        EncryptionKeyCommand::Compromised { at, confirm } => {
            if let Err(code) = confirm::may_ask(confirm.yes, "declare a master key compromised") {
                return Ok(code);
            }
            if !confirm.yes {
                let lines = api_try!(compromise_warning(&mut api, &at).await);
                if let Err(code) = confirm::ask(&lines.0, &lines.1) {
                    return Ok(code);
                }
            }
            let path = format!("{}/compromised", key_path(&at));
            let started =
                api_try!(api.call(Method::POST, &path, &[], None).await).unwrap_or(Value::Null);
            show(&started, format, REENCRYPTION_JOBS);
            // One job for a replica set; one per part for a whole sharded cluster.
            let follow = match started["id"].as_str() {
                Some(job) => format!("get --job {} --wait", printable(job)),
                None => "list".to_string(),
            };
            eprintln!(
                "headlock: follow the re-encryption with: headlock reencryption-jobs {follow} --group {} --cluster {}",
                printable(&at.group),
                printable(&at.cluster)
            );
        }
        EncryptionKeyCommand::CancelDestruction { at, key } => {
            let path = format!("{}/encryptionKeys/{}/restore", at.config_path(), seg(&key));
            api_try!(
                api.print(Method::POST, &path, &[], None, (format, KEYS))
                    .await
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `compromised` will do to this cluster, in words, and the word to type back
/// (the cluster's name).
async fn compromise_warning(
    api: &mut Remote,
    at: &ClusterRef,
) -> Result<(Vec<String>, String), remote::Failure> {
    let found = api
        .call(Method::GET, &at.cluster_path(), &[], None)
        .await?
        .unwrap_or(Value::Null);
    let key = api
        .call(Method::GET, &key_path(at), &[], None)
        .await?
        .unwrap_or(Value::Null);
    let name = found["clusterName"].as_str().unwrap_or("").to_string();
    let mut lines = vec![
        format!(
            "About to declare the master key of cluster \"{}\" ({}, id {}) of group {} COMPROMISED.",
            printable(&name),
            printable(found["typeName"].as_str().unwrap_or("?")),
            printable(&at.cluster),
            printable(&at.group)
        ),
        format!(
            "  current master key(s): {}",
            printable(&current_keys(&key))
        ),
        "This cannot be undone:".to_string(),
        "  - the key is revoked in the KMIP server as Key Compromise (state Compromised);"
            .to_string(),
        "  - a new master key and a new data key are made at once, and new backups use them;"
            .to_string(),
        "  - a background job re-encrypts every snapshot, then destroys the old data key."
            .to_string(),
        "Snapshots stay restorable throughout.".to_string(),
    ];
    if found["parts"].as_array().is_some_and(|p| !p.is_empty()) {
        lines.insert(
            2,
            "  (a whole sharded cluster: every shard and the config servers)".to_string(),
        );
    }
    Ok((lines, name))
}

/// The current key id, or each part's as `PART=KEY`.
fn current_keys(v: &Value) -> String {
    let line = summary(v);
    line.strip_prefix("rotated; current key: ")
        .or_else(|| line.strip_prefix("rotated; current keys: "))
        .unwrap_or("?")
        .to_string()
}

fn key_path(at: &ClusterRef) -> String {
    format!("{}/encryptionKey", at.config_path())
}

/// `rotated; current key: UID` for one cluster; for a whole sharded cluster, each
/// part's key as `PART-ID=UID`.
fn summary(v: &Value) -> String {
    if let Some(uid) = v.get("encryptionKeyUUID").and_then(Value::as_str) {
        return format!("rotated; current key: {uid}");
    }
    let parts: Vec<String> = v
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .map(|p| {
                    format!(
                        "{}={}",
                        p.get("clusterId").and_then(Value::as_str).unwrap_or("?"),
                        p.get("encryptionKeyUUID")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if parts.is_empty() {
        "rotated".to_string()
    } else {
        format!("rotated; current keys: {}", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::summary;

    #[test]
    fn accepts_single_and_sharded_key_answers() {
        assert_eq!(
            summary(&json!({"encryptionKeyUUID": "k1"})),
            "rotated; current key: k1"
        );
        assert_eq!(
            summary(
                &json!({"parts": [{"clusterId": "a", "encryptionKeyUUID": "k1"}, {"clusterId": "b", "encryptionKeyUUID": "k2"}]})
            ),
            "rotated; current keys: a=k1 b=k2"
        );
    }
}
