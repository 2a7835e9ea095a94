//! `headlock restore-jobs create|list|get`: restore jobs without downloading (that is
//! `headlock restore`); `create` prints the job with its one-time link.

use std::process::ExitCode;

use hyper::Method;
use serde_json::json;

use super::output::RESTORE_JOBS;
use super::remote::{self, api_try, page_query, seg};
use crate::cli::{ClusterRef, OutputFormat, RestoreJobsArgs, RestoreJobsCommand};

pub async fn run(args: RestoreJobsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let format = args.output.format();
    match args.command {
        RestoreJobsCommand::Create { at, snapshot } => {
            let body = json!({ "snapshotId": snapshot });
            let v = api_try!(
                api.call(Method::POST, &jobs_path(&at), &[], Some(&body))
                    .await
            )
            .unwrap_or_default();
            // The answer is a list of one job; a table shows that job field by field,
            // so that its link shows.
            match (format, v["results"].get(0)) {
                (OutputFormat::Table, Some(job)) => super::output::show(job, format, &[]),
                _ => super::output::show(&v, format, RESTORE_JOBS),
            }
        }
        RestoreJobsCommand::List { at, page } => api_try!(
            api.print(
                Method::GET,
                &jobs_path(&at),
                &page_query(&page),
                None,
                (format, RESTORE_JOBS)
            )
            .await
        ),
        RestoreJobsCommand::Get { at, job } => {
            let path = format!("{}/{}", jobs_path(&at), seg(&job));
            api_try!(
                api.print(Method::GET, &path, &[], None, (format, RESTORE_JOBS))
                    .await
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn jobs_path(at: &ClusterRef) -> String {
    format!("{}/restoreJobs", at.cluster_path())
}
