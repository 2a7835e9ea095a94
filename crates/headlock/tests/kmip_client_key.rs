//! `serve` with an external KMIP server and an encrypted client key (PKCS#8, encrypted
//! by the `openssl` command as an operator would), its password in a file: the service
//! speaks mutual TLS with it (a cluster's master key is created and rotated in the KMIP
//! server); a wrong password stops `serve` at start with a clear message that does not
//! show the password.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Api, KmipProcess, Server, create_user};

/// Encrypts `plain` (PEM) into `out` with `openssl pkcs8 -topk8 -v2 aes-256-cbc`, the
/// password read from `password_file`.
fn openssl_encrypt(plain: &Path, out: &Path, password_file: &Path) {
    let status = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
        .arg(plain)
        .arg("-out")
        .arg(out)
        .arg("-passout")
        .arg(format!("file:{}", password_file.display()))
        .status()
        .expect("run openssl (scripts/test.sh installs it)");
    assert!(status.success());
    let text = std::fs::read_to_string(out).unwrap();
    assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
}

fn kmip_args(kmip: &KmipProcess, key: &Path, password: &Path) -> Vec<String> {
    let mut args = common::kmip_flags(&[&kmip.addr], &kmip.pki(), Some(key));
    args.extend([
        "--kmip-client-key-password-file".into(),
        password.to_str().unwrap().into(),
    ]);
    args
}

#[test]
fn serve_uses_an_encrypted_kmip_client_key_and_refuses_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let kmip = KmipProcess::start(&dir.path().join("kmip-server"));
    let pki = kmip.pki();
    let password = dir.path().join("key.pass");
    std::fs::write(&password, "tr0ub4dor&3 with spaces\n").unwrap();
    let encrypted = dir.path().join("client-key.p8");
    openssl_encrypt(&pki.client_key, &encrypted, &password);

    let data = dir.path().join("data");
    let admin_key = create_user(&data, "admin", "GLOBAL_OWNER", None);
    let args = kmip_args(&kmip, &encrypted, &password);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&data, &args);
    let admin = Api::new(&server, "admin", &admin_key);
    let g = admin.create_group("enc-key");
    let c = admin.create_encrypted_replica_set(&g, "rs0");
    let first = admin.current_key(&g, &c);
    admin.expect(
        admin.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey")),
        201,
    );
    let second = admin.current_key(&g, &c);
    assert_ne!(first, second);
    let state = kmip.with_client(async |k| k.get_state(&second).await.unwrap());
    assert_eq!(state, kmip::types::State::ACTIVE);
    drop(server);

    // The wrong password: `serve` stops at start, saying why, without the password.
    let wrong = dir.path().join("wrong.pass");
    std::fs::write(&wrong, "hunter2-not-it\n").unwrap();
    let args = kmip_args(&kmip, &encrypted, &wrong);
    let out = Command::new(common::BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(stderr.contains("client-key.p8"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
