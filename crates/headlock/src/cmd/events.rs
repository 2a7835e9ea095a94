//! `headlock events list|get`: a group's audit events, newest first, through the API.

use std::process::ExitCode;

use hyper::Method;

use super::output::EVENTS;
use super::remote::{self, api_try, page_query, seg};
use crate::cli::{EventsArgs, EventsCommand};

pub async fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let out = (args.output.format(), EVENTS);
    match args.command {
        EventsCommand::List { group, page } => {
            let path = format!("/groups/{}/events", seg(&group));
            api_try!(
                api.print(Method::GET, &path, &page_query(&page), None, out)
                    .await
            )
        }
        EventsCommand::Get { group, event } => {
            let path = format!("/groups/{}/events/{}", seg(&group), seg(&event));
            api_try!(api.print(Method::GET, &path, &[], None, out).await)
        }
    }
    Ok(ExitCode::SUCCESS)
}
