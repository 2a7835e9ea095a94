//! `headlock encryption-key ...`: show a cluster's current master key id, or rotate
//! it. The API's PUT answers 201 with no key id, so `rotate` follows it with a GET and
//! prints the new id.

use std::process::ExitCode;

use hyper::Method;
use serde_json::Value;

use super::remote::{self, api_try, print_json, print_line, seg};
use crate::cli::{EncryptionKeyArgs, EncryptionKeyCommand};

pub async fn run(args: EncryptionKeyArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    match args.command {
        EncryptionKeyCommand::Get { group, cluster } => {
            api_try!(
                api.print(Method::GET, &key_path(&group, &cluster), &[], None)
                    .await
            )
        }
        EncryptionKeyCommand::Rotate {
            group,
            cluster,
            json,
        } => {
            let path = key_path(&group, &cluster);
            api_try!(api.call(Method::PUT, &path, &[], None).await);
            let current = match api.call(Method::GET, &path, &[], None).await {
                Ok(v) => v.unwrap_or(Value::Null),
                Err(f) => {
                    eprintln!("headlock: the key was rotated, but reading the new key's id failed");
                    return Ok(f.report());
                }
            };
            if json {
                print_json(&current);
            } else {
                print_line(&summary(&current));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn key_path(group: &str, cluster: &str) -> String {
    format!(
        "/groups/{}/backupConfigs/{}/encryptionKey",
        seg(group),
        seg(cluster)
    )
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
