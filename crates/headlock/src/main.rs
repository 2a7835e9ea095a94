//! `headlock`: the binary. `main` parses the command line, runs the command and maps
//! errors to exit codes; each command lives in its own module under `cmd/`.

mod archive;
mod cli;
mod client;
mod cmd;
mod config;
mod memory;
mod pipe;
mod progress;
mod secret_file;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("headlock: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
