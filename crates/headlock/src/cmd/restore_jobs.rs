//! `headlock restore-jobs create|list|get`: restore jobs without downloading (that is
//! `headlock restore`); `create` prints the job with its one-time link.

use std::process::ExitCode;

use hyper::Method;
use serde_json::json;

use super::output::RESTORE_JOBS;
use super::remote::{self, api_try, page_query, seg};
use crate::cli::{OutputFormat, RestoreJobsArgs, RestoreJobsCommand};

pub async fn run(args: RestoreJobsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let format = args.output.format();
    match args.command {
        RestoreJobsCommand::Create {
            group,
            cluster,
            snapshot,
        } => {
            let body = json!({ "snapshotId": snapshot });
            let v = api_try!(
                api.call(Method::POST, &jobs_path(&group, &cluster), &[], Some(&body))
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
        RestoreJobsCommand::List {
            group,
            cluster,
            page,
        } => api_try!(
            api.print(
                Method::GET,
                &jobs_path(&group, &cluster),
                &page_query(&page),
                None,
                (format, RESTORE_JOBS)
            )
            .await
        ),
        RestoreJobsCommand::Get {
            group,
            cluster,
            job,
        } => {
            let path = format!("{}/{}", jobs_path(&group, &cluster), seg(&job));
            api_try!(
                api.print(Method::GET, &path, &[], None, (format, RESTORE_JOBS))
                    .await
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn jobs_path(group: &str, cluster: &str) -> String {
    format!(
        "/groups/{}/clusters/{}/restoreJobs",
        seg(group),
        seg(cluster)
    )
}
