//! `headlock users ...`: works on the metadata store directly, so it works whether or
//! not the service is running (SQLite in WAL mode takes both; on PostgreSQL any node's
//! configuration will do).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use headlock_api::auth::{derive_secrets, parse_access_list_entry};
use headlock_core::model::Role;
use headlock_service::users::{DigestSecrets, Users, generate_api_key};
use headlock_store::SqlStore;

use crate::cli::{DataArgs, UsersCommand};

/// The user commands' view of the service: store only; no KMIP server is needed.
struct Offline {
    store: Arc<SqlStore>,
}

async fn open(data: &DataArgs) -> anyhow::Result<Offline> {
    let (dir, database) = crate::config::data(data)?;
    if !database.is_shared() {
        super::create_data_dir(&dir)?;
    }
    Ok(Offline {
        store: Arc::new(database.open().await?),
    })
}

impl Offline {
    fn users(&self) -> Users {
        Users::new(self.store.clone())
    }
}

fn secrets(username: &str, key: &str) -> DigestSecrets {
    let s = derive_secrets(username, key);
    DigestSecrets {
        ha1_md5: s.ha1_md5.to_vec(),
        ha1_sha256: s.ha1_sha256.to_vec(),
    }
}

pub async fn run(cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCommand::Create {
            data,
            username,
            role,
            group,
        } => {
            let role = Role::parse(&role.to_ascii_uppercase()).with_context(|| {
                format!("unknown role {role:?}: use one of GLOBAL_OWNER, GLOBAL_READ_ONLY, GROUP_OWNER, GROUP_BACKUP_ADMIN, GROUP_READ_ONLY")
            })?;
            let offline = open(&data).await?;
            let key = generate_api_key();
            offline
                .users()
                .create_user(&username, role, group.as_deref(), secrets(&username, &key))
                .await?;
            eprintln!(
                "headlock: created user {username} with role {role}; its API key follows (it is shown only this once):"
            );
            println!("{}", &*key);
        }
        UsersCommand::List { data } => {
            let offline = open(&data).await?;
            for u in offline.users().list_users().await? {
                let roles: Vec<String> = u
                    .roles
                    .iter()
                    .map(|r| match r.group_id {
                        Some(g) => format!("{}@{g}", r.role),
                        None => r.role.to_string(),
                    })
                    .collect();
                let access = if u.access_list.is_empty() {
                    "any address".to_string()
                } else {
                    u.access_list.join(",")
                };
                println!("{}\t{}\t{}", u.username, roles.join(","), access);
            }
        }
        UsersCommand::Delete { data, username } => {
            open(&data).await?.users().delete_user(&username).await?;
            eprintln!("headlock: deleted user {username}");
        }
        UsersCommand::RegenerateKey { data, username } => {
            let offline = open(&data).await?;
            let key = generate_api_key();
            offline
                .users()
                .replace_user_key(&username, secrets(&username, &key))
                .await?;
            eprintln!(
                "headlock: new API key for {username} follows (shown only this once; a running server stops accepting the old key within a second):"
            );
            println!("{}", &*key);
        }
        UsersCommand::AccessList {
            data,
            username,
            set,
        } => {
            let entries: Vec<String> = set
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let n = entries.len();
            open(&data)
                .await?
                .users()
                .set_access_list(&username, entries, |e| parse_access_list_entry(e).is_ok())
                .await?;
            eprintln!("headlock: access list of {username} now has {n} entries");
        }
    }
    Ok(ExitCode::SUCCESS)
}
