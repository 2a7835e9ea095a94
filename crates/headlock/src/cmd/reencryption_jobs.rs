//! `headlock reencryption-jobs list|get`: the jobs that rewrite a cluster's snapshots
//! under a new data key after `encryption-key compromised`; `get --wait` follows one
//! until it ends.

use std::process::ExitCode;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::output::{REENCRYPTION_JOBS, show};
use super::remote::{self, api_try, page_query, printable, seg};
use crate::cli::{ClusterRef, ReencryptionJobsArgs, ReencryptionJobsCommand};

/// Exit status of `get --wait` when the job FAILED (as `verify`'s for damage: the
/// command worked, the result is bad).
const EXIT_JOB_FAILED: u8 = 5;
/// Time between two reads of a job that `--wait` follows.
const POLL: Duration = Duration::from_secs(2);

pub async fn run(args: ReencryptionJobsArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    let format = args.output.format();
    match args.command {
        ReencryptionJobsCommand::List { at, page } => {
            let path = jobs_path(&at);
            api_try!(
                api.print(
                    Method::GET,
                    &path,
                    &page_query(&page),
                    None,
                    (format, REENCRYPTION_JOBS)
                )
                .await
            )
        }
        ReencryptionJobsCommand::Get { at, job, wait } => {
            let path = format!("{}/{}", jobs_path(&at), seg(&job));
            let mut last_progress = None;
            loop {
                let v =
                    api_try!(api.call(Method::GET, &path, &[], None).await).unwrap_or(Value::Null);
                let status = v["statusName"].as_str().unwrap_or("").to_string();
                if !wait || status != "RUNNING" {
                    show(&v, format, REENCRYPTION_JOBS);
                    if wait && status == "FAILED" {
                        eprintln!(
                            "headlock: re-encryption job {} FAILED: {}",
                            printable(&job),
                            printable(v["errorMessage"].as_str().unwrap_or("no reason given"))
                        );
                        return Ok(ExitCode::from(EXIT_JOB_FAILED));
                    }
                    break;
                }
                let progress = (v["snapshotsDone"].clone(), v["snapshotsTotal"].clone());
                if last_progress.as_ref() != Some(&progress) {
                    eprintln!(
                        "headlock: job {} RUNNING: {} of {} snapshots re-encrypted",
                        printable(&job),
                        progress.0,
                        progress.1
                    );
                    last_progress = Some(progress);
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn jobs_path(at: &ClusterRef) -> String {
    format!("{}/reencryptionJobs", at.config_path())
}
