//! `headlock kmip-server`: the embedded KMIP server on its own.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::KmipServerArgs;

pub async fn run(args: KmipServerArgs) -> anyhow::Result<ExitCode> {
    super::init_tracing();
    let (data_dir, _) = crate::config::data(&args.data)?;
    super::create_data_dir(&data_dir)?;
    let kmip_dir = data_dir.join("kmip");
    let pki = kmip_server::pki::ensure_pki(&kmip_dir).context("preparing the KMIP certificates")?;
    let tls = kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key)?;
    let store = kmip_server::KeyStore::open_in(&kmip_dir).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::warn!(
        "this KMIP server keeps keys in a SQLite file on local disk ({}): it is for development and tests, NOT a hardware security module",
        store.path().display()
    );
    eprintln!("headlock: KMIP server listening on {addr} (mutual TLS)");
    eprintln!(
        "headlock: clients need the CA {} and a client certificate it signed, such as {} with key {}",
        pki.ca_cert.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    kmip_server::serve(listener, tls, store, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
