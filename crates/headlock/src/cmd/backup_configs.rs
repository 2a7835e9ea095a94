//! `headlock backup-configs ...`: list, show and change backup configurations through
//! the API (`set` sends a PATCH with only the fields given).

use std::process::ExitCode;

use hyper::Method;
use serde_json::{Map, Value, json};

use super::output::BACKUP_CONFIGS;
use super::remote::{self, api_try, page_query, seg};
use crate::cli::{
    AuthMechanismArg, BackupConfigSetArgs, BackupConfigsArgs, BackupConfigsCommand,
    BackupStatusArg, OnOff,
};

pub async fn run(args: BackupConfigsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let out = (args.output.format(), BACKUP_CONFIGS);
    match args.command {
        BackupConfigsCommand::List { group, page } => {
            let path = format!("/groups/{}/backupConfigs", seg(&group));
            api_try!(
                api.print(Method::GET, &path, &page_query(&page), None, out)
                    .await
            )
        }
        BackupConfigsCommand::Get { at } => {
            api_try!(
                api.print(Method::GET, &at.config_path(), &[], None, out)
                    .await
            )
        }
        BackupConfigsCommand::Set(set) => {
            let path = format!(
                "/groups/{}/backupConfigs/{}",
                seg(&set.group),
                seg(&set.cluster)
            );
            api_try!(
                api.print(Method::PATCH, &path, &[], Some(&patch_body(&set)), out)
                    .await
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The PATCH body: only the fields given on the command line.
fn patch_body(set: &BackupConfigSetArgs) -> Value {
    let mut body = Map::new();
    if let Some(e) = set.encryption {
        body.insert("encryptionEnabled".into(), json!(e == OnOff::On));
    }
    if let Some(s) = set.status {
        let name = match s {
            BackupStatusArg::Started => "STARTED",
            BackupStatusArg::Stopped => "STOPPED",
            BackupStatusArg::Terminating => "TERMINATING",
        };
        body.insert("statusName".into(), json!(name));
    }
    if let Some(s) = &set.storage_engine {
        body.insert("storageEngineName".into(), json!(s));
    }
    if let Some(s) = set.ssl {
        body.insert("sslEnabled".into(), json!(s == OnOff::On));
    }
    let namespaces = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(v) = &set.excluded_namespaces {
        body.insert("excludedNamespaces".into(), json!(namespaces(v)));
    }
    if let Some(v) = &set.included_namespaces {
        body.insert("includedNamespaces".into(), json!(namespaces(v)));
    }
    if let Some(m) = set.auth_mechanism {
        let name = match m {
            AuthMechanismArg::MongodbCr => "MONGODB_CR",
            AuthMechanismArg::Gssapi => "GSSAPI",
            AuthMechanismArg::Plain => "PLAIN",
            AuthMechanismArg::MongodbX509 => "MONGODB_X509",
            AuthMechanismArg::None => "NONE",
        };
        body.insert("authMechanismName".into(), json!(name));
    }
    Value::Object(body)
}
