//! One module per subcommand; [`run`] dispatches.

mod backup;
mod backup_configs;
mod clusters;
mod confirm;
mod encryption_key;
mod events;
mod groups;
mod health;
mod kmip_server;
mod output;
mod reencryption_jobs;
mod remote;
mod restore;
mod restore_jobs;
mod serve;
mod snapshots;
mod users;
mod verify;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs a command on a fresh tokio runtime.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The generators need no runtime.
    match &cli.command {
        Command::Completions { shell } => return completions(*shell),
        Command::Man { dir } => return man(dir.as_deref()),
        _ => {}
    }
    if matches!(cli.command, Command::Serve(_)) {
        // Before any thread or file: `serve` may re-execute itself here (memory.rs).
        crate::memory::bound_malloc_arenas();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Users(cmd) => users::run(cmd).await,
            Command::Migrate(data) => migrate(data).await,
            Command::KmipServer(args) => kmip_server::run(args).await,
            Command::Groups(args) => groups::run(args).await,
            Command::Clusters(args) => clusters::run(args).await,
            Command::BackupConfigs(args) => backup_configs::run(args).await,
            Command::EncryptionKey(args) => encryption_key::run(args).await,
            Command::ReencryptionJobs(args) => reencryption_jobs::run(args).await,
            Command::Snapshots(args) => snapshots::run(args).await,
            Command::RestoreJobs(args) => restore_jobs::run(args).await,
            Command::Events(args) => events::run(args).await,
            Command::Health(args) => health::run(args).await,
            Command::Backup(args) => backup::run(args).await,
            Command::Restore(args) => restore::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
        }
    })
}

/// `headlock completions SHELL`: the completion script, from the clap definitions.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, "headlock", &mut text);
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes generated text to standard output; a closed pipe (`| head`) is not an error.
fn write_stdout(text: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to standard output"))
        }
        _ => Ok(()),
    }
}

/// `headlock man [--dir DIR]`: headlock.1 on standard output, or every command's page
/// written into DIR.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use clap::CommandFactory;
    let cmd = Cli::command();
    match dir {
        None => {
            let mut text = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut text)
                .context("rendering the manual page")?;
            write_stdout(&text)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            eprintln!("headlock: manual pages written into {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `headlock migrate`: opens the metadata store (which applies the migrations) and says
/// which schema version it is at.
async fn migrate(data: crate::cli::DataArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let (dir, database) = crate::config::data(&data)?;
    if !database.is_shared() {
        create_data_dir(&dir)?;
    }
    let store = database.open().await?;
    let version = store.schema_version().await?;
    println!(
        "{} schema at version {version} (latest {})",
        store.backend(),
        headlock_store::LATEST_SCHEMA_VERSION
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Logs to standard error; `RUST_LOG` (or `HEADLOCK_LOG`) sets the filter, `info` by default.
pub(crate) fn init_tracing() {
    let filter = std::env::var("HEADLOCK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn".to_string());
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Creates the data directory, private to the user.
pub(crate) fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
    }
    Ok(())
}

/// Resolves when SIGINT or SIGTERM arrives.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
