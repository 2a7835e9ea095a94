//! `headlock health`: the detailed health check under the API base.

use std::process::ExitCode;

use hyper::Method;

use super::remote::{self, api_try};
use crate::cli::HealthArgs;

pub async fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let mut api = remote::connect(&args.api)?;
    api_try!(
        api.print(
            Method::GET,
            "/health",
            &[],
            None,
            (args.output.format(), &[])
        )
        .await
    );
    Ok(ExitCode::SUCCESS)
}
