//! A Cosmian KMS process (the second independent KMIP server of issue 12): its KMIP
//! socket server on loopback, mutual TLS with the certificates of a `headlock
//! kmip-server` PKI (so one client certificate is good for both servers), SQLite in
//! its own directory. The binary is built by `scripts/interop.sh` and named by
//! `HEADLOCK_COSMIAN_KMS`; the interop tests and the `kmip_latency` benchmark use it.
//! Synchronous: call it from `spawn_blocking` inside a runtime.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kmip::client::Client;
use kmip_server::pki::PkiPaths;

/// The environment variable naming the `cosmian_kms` binary.
pub const BINARY_VAR: &str = "HEADLOCK_COSMIAN_KMS";

/// How long Cosmian KMS may take to answer its first Discover Versions.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running (or stopped, then [`launch`](CosmianKms::launch)ed again) Cosmian KMS.
pub struct CosmianKms {
    binary: PathBuf,
    child: Option<Child>,
    addr: String,
    config: PathBuf,
    log: PathBuf,
}

impl CosmianKms {
    /// The binary named by [`BINARY_VAR`], if set.
    pub fn binary() -> Option<PathBuf> {
        std::env::var_os(BINARY_VAR).map(PathBuf::from)
    }

    /// Writes its configuration into `dir` (database, TLS files of `pki`, free loopback
    /// ports) and launches `binary`, waiting until it answers.
    pub fn start(binary: PathBuf, dir: &Path, pki: &PkiPaths) -> CosmianKms {
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let port = crate::free_port().unwrap();
        let http = crate::free_port().unwrap();
        let config = dir.join("kms.toml");
        std::fs::write(
            &config,
            format!(
                "default_username = \"admin\"\n\
                 [db]\ndatabase_type = \"sqlite\"\nsqlite_path = {:?}\n\
                 [tls]\ntls_cert_file = {:?}\ntls_key_file = {:?}\nclients_ca_cert_file = {:?}\n\
                 [socket_server]\nsocket_server_start = true\nsocket_server_port = {port}\nsocket_server_hostname = \"127.0.0.1\"\n\
                 [http]\nport = {http}\nhostname = \"127.0.0.1\"\n",
                dir.join("db"),
                pki.server_cert,
                pki.server_key,
                pki.ca_cert,
            ),
        )
        .unwrap();
        let mut cosmian = CosmianKms {
            binary,
            child: None,
            addr: format!("127.0.0.1:{port}"),
            config,
            log: dir.join("kms.log"),
        };
        cosmian.launch(pki);
        cosmian
    }

    /// Starts the process (again) on the same port and database, and waits until a
    /// KMIP client's probe (TCP, TLS, Discover Versions) succeeds.
    pub fn launch(&mut self, pki: &PkiPaths) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start cosmian_kms");
        self.child = Some(child);
        let client = self.client(pki);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + START_TIMEOUT;
        while runtime
            .block_on(client.probe(0, Duration::from_secs(2)))
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "Cosmian KMS did not answer on {}; its log:\n{}",
                self.addr,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `host:port` of its KMIP socket server.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A client of this server with the PKI's client certificate.
    pub fn client(&self, pki: &PkiPaths) -> Client {
        Client::new(crate::kmip::client_config(pki, vec![self.addr.clone()])).unwrap()
    }

    /// Kills the process (its database stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last few KB of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        crate::file_tail(&self.log, 4000)
    }
}

impl Drop for CosmianKms {
    fn drop(&mut self) {
        self.stop();
    }
}
