//! Dev-only helpers that give a test or a benchmark a real third-party server of its
//! own, on loopback, stopped by PID when the test is done.
//!
//! * [`pykmip_venv`] runs `scripts/pykmip-env.sh` (once per process) so a fresh machine
//!   with `python3` gets PyKMIP 0.11.0 from PyPI in a virtual environment.
//! * [`PyKmipServer`] writes PyKMIP's configuration file and (empty) policy directory
//!   into a temporary directory, picks a free loopback port, starts `pykmip-server`
//!   from the venv and waits until the port completes a mutual-TLS handshake. It is
//!   killed by PID on drop; [`PyKmipServer::stop`] and [`PyKmipServer::restart`] let
//!   a test take it away mid-run and bring it back on the same port and database.
//! * [`run_python`] runs a script with the venv's interpreter (PyKMIP's
//!   `ProxyKmipClient` against our embedded server).
//! * [`kmip::Embedded`] is our own embedded KMIP server
//!   (`kmip-server`), started in-process on a loopback port with a fresh PKI: the one
//!   KMIP harness of every crate's tests. It is async (it runs on the test's runtime).
//! * [`cosmian::CosmianKms`] is a Cosmian KMS process (built by `scripts/interop.sh`)
//!   on the same PKI as the embedded server.
//! * [`serve`] is the one harness for a `headlock serve` process (the real binary on a
//!   loopback port, driven by `curl --digest`), and for `headlock kmip-server`.
//!
//! Everything else here is synchronous and blocks for at most a few seconds; call it
//! from `tokio::task::spawn_blocking` or from a multi-threaded runtime.
//!
//! ```no_run
//! let tls = testkit::TlsFiles {
//!     ca_cert: "ca.pem".into(), server_cert: "server.pem".into(),
//!     server_key: "server-key.pem".into(), client_cert: "client.pem".into(),
//!     client_key: "client-key.pem".into(),
//! };
//! let server = testkit::PyKmipServer::start(&tls)?;
//! println!("PyKMIP at {}", server.addr());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub mod cosmian;
pub mod kmip;
mod moto;
pub mod serve;
pub use moto::*;
mod postgres;
pub use postgres::*;

/// How long a PyKMIP server may take to accept TLS after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// PEM files for a server and a client of one PKI.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate both sides verify against.
    pub ca_cert: PathBuf,
    /// Server certificate (must be ECDSA for a rustls client: see the crate docs of kmip).
    pub server_cert: PathBuf,
    /// Server private key.
    pub server_key: PathBuf,
    /// Client certificate (clientAuth EKU), used for the readiness probe.
    pub client_cert: PathBuf,
    /// Client private key.
    pub client_key: PathBuf,
}

/// Root of the repository (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Path of the PyKMIP virtual environment, created by `scripts/pykmip-env.sh` on first
/// use (the script is idempotent and serialised with `flock`, so parallel test binaries
/// share one venv). Honours `HEADLOCK_PYKMIP_VENV`.
pub fn pykmip_venv() -> io::Result<PathBuf> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = repo_root().join("scripts/pykmip-env.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if path.is_empty() {
            return Err(format!("{} printed no venv path", script.display()));
        }
        Ok(PathBuf::from(path))
    })
    .clone()
    .map_err(io::Error::other)
}

/// The Python interpreter of the venv with `requests` and `httpx` (the digest clients
/// the API is tested with), created by `scripts/http-clients-env.sh` on first use (the
/// script is idempotent and serialised with `flock`).
pub fn http_clients_python() -> PathBuf {
    let script = repo_root().join("scripts/http-clients-env.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs `script` (Python source text) with the venv's interpreter and `args`, with
/// warnings silenced; returns its output (the caller checks the exit status).
pub fn run_python(script: &str, args: &[&str]) -> io::Result<Output> {
    let venv = pykmip_venv()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("script.py");
    std::fs::write(&path, script)?;
    Command::new(venv.join("bin/python"))
        .arg(&path)
        .args(args)
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::null())
        .output()
}

/// A loopback port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A PyKMIP 0.11 server process of one test, on 127.0.0.1 and a port of its own.
#[derive(Debug)]
pub struct PyKmipServer {
    dir: tempfile::TempDir,
    tls: TlsFiles,
    port: u16,
    child: Option<Child>,
}

impl PyKmipServer {
    /// Starts a PyKMIP server with the given certificates and waits until it completes
    /// a TLS handshake with the client certificate of `tls`.
    pub fn start(tls: &TlsFiles) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("pykmip-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("policies"))?;
        let mut server = PyKmipServer {
            dir,
            tls: tls.clone(),
            port: free_port()?,
            child: None,
        };
        // A port picked free can be taken by a parallel test before PyKMIP binds it;
        // a few attempts with fresh ports make that harmless.
        let mut attempt = 0;
        loop {
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) if attempt >= 2 => return Err(e),
                Err(_) => {
                    server.kill();
                    server.port = free_port()?;
                    attempt += 1;
                }
            }
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// PyKMIP's log file (useful in assertion messages).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The last `max` bytes of the server's log.
    pub fn log_tail(&self, max: usize) -> String {
        file_tail(&self.log_path(), max)
    }

    /// Kills the server (by its process group id) and waits for it to exit. The port stays reserved for
    /// [`restart`](Self::restart) only by convention: nothing listens on it until then.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port, with the same database.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn_and_wait()
    }

    /// Kills the server's process group (PyKMIP forks a policy-monitor and a
    /// multiprocessing manager that would outlive a kill of the main PID alone), by
    /// the group id, which is the PID of the process we spawned.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn write_config(&self) -> io::Result<PathBuf> {
        let d = self.dir.path();
        let conf = format!(
            "[server]\n\
             hostname=127.0.0.1\n\
             port={port}\n\
             certificate_path={cert}\n\
             key_path={key}\n\
             ca_path={ca}\n\
             auth_suite=TLS1.2\n\
             policy_path={policies}\n\
             enable_tls_client_auth=True\n\
             logging_level=INFO\n\
             database_path={db}\n",
            port = self.port,
            cert = self.tls.server_cert.display(),
            key = self.tls.server_key.display(),
            ca = self.tls.ca_cert.display(),
            policies = d.join("policies").display(),
            db = d.join("pykmip.db").display(),
        );
        let path = d.join("server.conf");
        std::fs::write(&path, conf)?;
        Ok(path)
    }

    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let venv = pykmip_venv()?;
        let conf = self.write_config()?;
        let stdout = std::fs::File::create(self.dir.path().join("stdout.log"))?;
        let stderr = stdout.try_clone()?;
        let mut command = Command::new(venv.join("bin/pykmip-server"));
        // Its own process group, so `kill` reaches the processes PyKMIP forks.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(self.log_path())
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        self.child = Some(child);
        let probe = probe_config(&self.tls)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(io::Error::other(format!(
                    "pykmip-server exited with {status} before accepting TLS; log: {}",
                    self.log_tail(2000)
                )));
            }
            match tls_probe(&addr, probe.clone()) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "pykmip-server on {addr} did not accept TLS within {START_TIMEOUT:?}: {e}; log: {}",
                            self.log_tail(2000)
                        ),
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for PyKmipServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn probe_config(tls: &TlsFiles) -> io::Result<Arc<rustls::ClientConfig>> {
    let bad = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca_cert).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    let certs = CertificateDer::pem_file_iter(&tls.client_cert)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.client_key).map_err(|e| bad(&e))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(&e))?
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .map_err(|e| bad(&e))?;
    Ok(Arc::new(config))
}

/// Connects and completes a TLS handshake, then closes.
fn tls_probe(addr: &SocketAddr, config: Arc<rustls::ClientConfig>) -> io::Result<()> {
    let mut tcp = TcpStream::connect_timeout(addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let name = ServerName::from(std::net::IpAddr::from([127, 0, 0, 1]));
    let mut conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();
    let _ = tcp.read(&mut [0u8; 1]);
    Ok(())
}

/// The last `max` bytes of a file (a server's log, for an assertion message); empty if
/// it cannot be read.
pub fn file_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[start..]).into_owned()
}
