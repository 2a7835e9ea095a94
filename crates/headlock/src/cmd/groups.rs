//! `headlock groups ...`: create, list and show groups through the API.

use std::process::ExitCode;

use hyper::Method;
use serde_json::json;

use super::output::GROUPS;
use super::remote::{self, api_try, page_query, seg};
use crate::cli::{GroupsArgs, GroupsCommand};

pub async fn run(args: GroupsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let out = (args.output.format(), GROUPS);
    match args.command {
        GroupsCommand::Create { name } => {
            let body = json!({ "name": name });
            api_try!(
                api.print(Method::POST, "/groups", &[], Some(&body), out)
                    .await
            )
        }
        GroupsCommand::List { page } => api_try!(
            api.print(Method::GET, "/groups", &page_query(&page), None, out)
                .await
        ),
        GroupsCommand::Get { id, name } => {
            let path = match (id, name) {
                (_, Some(name)) => format!("/groups/byName/{}", seg(&name)),
                (Some(id), None) => format!("/groups/{}", seg(&id)),
                (None, None) => anyhow::bail!("give a GROUP-ID or --name NAME"),
            };
            api_try!(api.print(Method::GET, &path, &[], None, out).await)
        }
    }
    Ok(ExitCode::SUCCESS)
}
