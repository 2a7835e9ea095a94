//! The async KMIP client: mutual TLS (rustls, ring), a bounded pool of connections per
//! server kept open and reconnected on error, protocol version negotiated with Discover Versions,
//! servers tried in order with failover, bounded retries for operations that are safe
//! to repeat, and typed operations for what Headlock needs.
//!
//! Behaviour in detail:
//!
//! * **Negotiation.** On each new connection the client sends Discover Versions (in a
//!   1.2 header) listing [`ClientConfig::protocol_versions`] (by default 2.1, 2.0, 1.4,
//!   1.3, 1.2, 1.1, 1.0) and uses the highest version the server answers. A server that fails Discover Versions, or answers with no common
//!   version, is spoken to in KMIP 1.2, as mongod does.
//! * **Connections.** Each server has a pool of at most
//!   [`ClientConfig::max_connections`] connections, so that requests of one client run
//!   in parallel (one request at a time on each connection, as KMIP's request/response
//!   framing requires). A request takes the most recently used idle connection, or
//!   opens one while fewer than the maximum are open, or waits for one. Before reuse a
//!   connection is looked at without blocking: one the server closed is dropped. An
//!   idle connection is given back to the pool only after a complete answer; one that
//!   failed is dropped.
//! * **Failover.** Servers are tried in the configured order. A server that cannot be
//!   reached (connect, TLS, negotiation) is skipped for the next one, for every
//!   operation: nothing was sent to it.
//! * **Servers that do not share their keys.** An operation on one object (Get, Get
//!   Attributes, Activate, Revoke, Destroy, Encrypt, Decrypt, ReKey) that a server
//!   answers with Item Not Found (or 2.x's Object Not Found) is asked of the next server
//!   too: the object may live there. If every server answers so, that is the answer; if
//!   one could not be reached, the operation failed (it may hold the object).
//! * **Retries.** Only operations that are safe to repeat (Discover Versions, Query,
//!   Get, Get Attributes, Get Attribute List, Locate, Activate, Revoke, Destroy,
//!   Encrypt, Decrypt) are retried after a transport failure, up to
//!   [`ClientConfig::max_retries`] more rounds over the server list with exponential
//!   back-off. Create, Register and ReKey are never re-sent: if the connection fails
//!   after one was sent, the error is [`Error::Indeterminate`] and the caller
//!   reconciles by Locate on the name it gave.
//! * **Errors** name the server, the operation and, when the server refused, the KMIP
//!   Result Reason and Result Message ([`Error::ServerReported`]). A server-reported
//!   failure is an answer, not a transport failure: it is returned at once, not
//!   retried elsewhere. Key material never appears in errors or logs.
//! * **Lenient reading.** A response carrying fields this client does not know (a
//!   vendor extension, a tag of a newer KMIP version) is read without them
//!   ([`ResponseMessage::decode_lenient`]); the first such response is logged once per
//!   process, with the fields' tag paths. The server side decodes requests strictly.
//! * **Which server answered.** [`Client::create_symmetric_key_served`] returns the
//!   server that created the key (after failover, not the first configured one).
//! * **Probes.** [`Client::probe`] checks one server alone (no failover) on a fresh
//!   connection: TCP, TLS and a Discover Versions round trip, within a time limit.
//! * **Metrics**, through the `metrics` facade (nothing is recorded unless the program
//!   installs a recorder): every attempt on a server counts in
//!   `kmip_requests_total{server,operation,outcome}` and
//!   `kmip_request_duration_seconds{server,operation}` (connection set-up included).
//!   `server` is the server as configured, `operation` the KMIP name (`Create`), and
//!   `outcome` one of [`OUTCOMES`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), kmip::error::Error> {
//! use kmip::client::{Client, ClientConfig};
//! use kmip::types::{CryptographicAlgorithm, CryptographicUsageMask};
//!
//! let config = ClientConfig::new(
//!     vec!["kmip1.example:5696".into(), "kmip2.example".into()],
//!     "ca.pem".into(), "client.pem".into(), "client-key.pem".into(),
//! );
//! let client = Client::new(config)?;
//! let uid = client
//!     .create_symmetric_key(
//!         CryptographicAlgorithm::AES,
//!         256,
//!         CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT,
//!         Some("cluster-42-master"),
//!     )
//!     .await?;
//! client.activate(&uid).await?;
//! let key = client.get_symmetric_key(&uid).await?;
//! assert_eq!(key.key.len(), 32);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use backon::{ConstantBuilder, ExponentialBuilder, Retryable, RetryableWithContext};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use crate::attribute::{Attribute, RevocationReason};
use crate::error::Error;
use crate::framing;
use crate::message::{
    CreateRequest, CryptographicParameters, DecryptRequest, DiscoverVersionsRequest,
    EncryptRequest, GetAttributesRequest, GetRequest, LocateRequest, ManagedObject, QueryRequest,
    QueryResponse, ReKeyRequest, RequestBatchItem, RequestMessage, RequestPayload,
    ResponseBatchItem, ResponseMessage, ResponsePayload, RevokeRequest, TemplateAttribute,
};
use crate::ttlv::{Limits, TagPath};
use crate::types::{
    BlockCipherMode, CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, LinkType,
    NameType, ObjectType, Operation, ProtocolVersion, QueryFunction, ResultReason, ResultStatus,
    RevocationReasonCode, State,
};

/// The IANA-registered KMIP port.
pub const DEFAULT_PORT: u16 = 5696;

/// Versions offered in Discover Versions, most preferred first.
pub const CLIENT_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V2_1,
    ProtocolVersion::V2_0,
    ProtocolVersion::V1_4,
    ProtocolVersion::V1_3,
    ProtocolVersion::V1_2,
    ProtocolVersion::V1_1,
    ProtocolVersion::V1_0,
];

/// The version used with a server that fails Discover Versions (mongod's default).
pub const FALLBACK_VERSION: ProtocolVersion = ProtocolVersion::V1_2;

/// A pooled connection idle for longer than this is not reused for an operation that
/// must not be repeated (Create, Register, ReKey): a server may have closed it, and a
/// request written into a dead connection would come back as Indeterminate.
const STALE_FOR_UNREPEATABLE: Duration = Duration::from_secs(5);

/// First back-off between retry rounds; doubled each round, capped at 2 s (no jitter).
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Time allowed to close a probe's connection politely.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Counter of attempts on a server: labels `server`, `operation`, `outcome`.
pub const METRIC_REQUESTS: &str = "kmip_requests_total";
/// Histogram of attempt durations in seconds: labels `server`, `operation`.
pub const METRIC_DURATION: &str = "kmip_request_duration_seconds";

/// The values of the `outcome` label: an answer (`ok`; `server_error` when a batch item
/// failed), or why no usable answer came (`connect_error`, `tls_error`, `timeout`,
/// `io_error`, `protocol_error` for bytes that are not the expected KMIP message,
/// `error` for anything else).
pub const OUTCOMES: &[&str] = &[
    "ok",
    "server_error",
    "connect_error",
    "tls_error",
    "timeout",
    "io_error",
    "protocol_error",
    "error",
];

/// Where and how to reach the KMIP servers.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Servers in order of preference, each `"host"` or `"host:port"` (IPv6 as
    /// `"[addr]:port"`); the default port is 5696.
    pub servers: Vec<String>,
    /// CA certificate(s) (PEM) that server certificates must chain to.
    pub ca_file: PathBuf,
    /// Our certificate chain (PEM), presented for client authentication.
    pub client_cert_file: PathBuf,
    /// Our private key (PEM; PKCS#8, SEC1, PKCS#1, or an encrypted PKCS#8 key with
    /// [`ClientConfig::client_key_password`]).
    pub client_key_file: PathBuf,
    /// The password of an encrypted `client_key_file` (as mongod's
    /// `--kmipClientCertificatePassword`).
    pub client_key_password: Option<crate::tls::KeyPassword>,
    /// Name the server certificates must carry; default: each server's host.
    pub server_name: Option<String>,
    /// Time allowed for the TCP connection and, again, for the TLS handshake.
    pub connect_timeout: Duration,
    /// Time allowed for one request to be written and its response read.
    pub io_timeout: Duration,
    /// Extra rounds over the server list for operations safe to repeat.
    pub max_retries: u32,
    /// Bounds on response messages.
    pub limits: Limits,
    /// Protocol versions offered in Discover Versions, most preferred first (default
    /// [`CLIENT_VERSIONS`]; e.g. `[1.2]` to speak as mongod does).
    pub protocol_versions: Vec<ProtocolVersion>,
    /// Most connections open to one server at once (at least 1): requests beyond that
    /// wait for a connection to come free.
    pub max_connections: usize,
}

impl ClientConfig {
    /// A configuration with default timeouts (connect 5 s, I/O 30 s), 2 retries and
    /// default limits.
    pub fn new(
        servers: Vec<String>,
        ca_file: PathBuf,
        client_cert_file: PathBuf,
        client_key_file: PathBuf,
    ) -> Self {
        ClientConfig {
            servers,
            ca_file,
            client_cert_file,
            client_key_file,
            client_key_password: None,
            server_name: None,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            max_retries: 2,
            limits: Limits::default(),
            protocol_versions: CLIENT_VERSIONS.to_vec(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Default of [`ClientConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 8;

/// A symmetric key fetched with Get.
pub struct SymmetricKeyMaterial {
    /// The key bytes (zeroized on drop).
    pub key: Zeroizing<Vec<u8>>,
    /// Cryptographic Algorithm from the Key Block.
    pub algorithm: Option<CryptographicAlgorithm>,
    /// Cryptographic Length (bits) from the Key Block.
    pub length: Option<i32>,
}

impl std::fmt::Debug for SymmetricKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymmetricKeyMaterial")
            .field("key", &format_args!("<{} bytes redacted>", self.key.len()))
            .field("algorithm", &self.algorithm)
            .field("length", &self.length)
            .finish()
    }
}

/// A key made by [`Client::create_active_symmetric_key`].
#[derive(Debug)]
pub struct CreatedActiveKey {
    /// The server that created it: after a failover, not the first configured one.
    pub server: String,
    /// Its Unique Identifier.
    pub uid: String,
    /// Its material once Active, or why activating or fetching it failed: the key
    /// exists either way, Pre-Active if the error is Activate's.
    pub material: Result<SymmetricKeyMaterial, Error>,
    /// The material of the other key asked for with
    /// [`Client::create_active_symmetric_key_and_get`], when the server answered its Get
    /// in the same message; `None` otherwise (not asked for, not answered, refused, or
    /// not a symmetric key): fetch it with [`Client::get_symmetric_key`], which says why.
    pub other: Option<SymmetricKeyMaterial>,
}

/// The result of a server-side AES-GCM Encrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcmCiphertext {
    /// Ciphertext (same length as the plaintext).
    pub data: Vec<u8>,
    /// The 12-byte IV the server generated.
    pub iv: Vec<u8>,
    /// The 16-byte authentication tag.
    pub tag: Vec<u8>,
}

/// Gives the client's metrics their help text and unit. Call once after installing a
/// `metrics` recorder (descriptions given before are lost).
pub fn describe_metrics() {
    metrics::describe_counter!(
        METRIC_REQUESTS,
        metrics::Unit::Count,
        "KMIP requests, one per attempt on a server, by server, operation and outcome."
    );
    metrics::describe_histogram!(
        METRIC_DURATION,
        metrics::Unit::Seconds,
        "Time of KMIP requests on one server, connection set-up included."
    );
}

/// A result and the server that produced it (`host:port` as configured): after
/// failover, not necessarily the first server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<T> {
    /// The server that answered.
    pub server: String,
    /// What it answered.
    pub value: T,
}

/// An async KMIP client; cheap to clone (clones share connections).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.inner.config.servers)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClientConfig,
    connector: TlsConnector,
    servers: Vec<Server>,
    /// How [`Client::create_active_symmetric_key`] batches: [`BATCH_WHOLE`], lowered
    /// when a server refuses a batch as a message (PyKMIP 0.11 and Cosmian KMS 5.28
    /// cannot parse an Activate without a Unique Identifier).
    batching: AtomicU8,
}

struct Server {
    /// As configured, for errors.
    label: String,
    host: String,
    port: u16,
    /// One permit per connection that may be open: a request holds one from before it
    /// takes a connection until it has given it back (or dropped it).
    permits: Semaphore,
    /// Connections not carrying a request, the most recently used last; at most
    /// `max_idle` (the pool's size).
    idle: std::sync::Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Server {
    /// The most recently used idle connection fit for the operation, if any: one the
    /// server closed is dropped, and one idle too long for an operation that must not be
    /// repeated is left for others (it may be dead, and a Create written into it would
    /// come back Indeterminate).
    fn checkout(&self, repeatable: bool) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| !c.closed_by_peer());
        let fit = idle
            .iter()
            .rposition(|c| repeatable || c.last_used.elapsed() < STALE_FOR_UNREPEATABLE)?;
        Some(idle.remove(fit))
    }

    /// Gives a connection that carried a complete exchange back to the pool, closing
    /// the least recently used ones beyond the pool's size (a Create that found every
    /// idle connection too old for it opened a new one beside them).
    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(conn);
        let excess = idle.len().saturating_sub(self.max_idle);
        idle.drain(..excess);
    }

    /// Takes every idle connection out of the pool.
    fn drain(&self) -> Vec<Connection> {
        std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Connection {
    stream: TlsStream<TcpStream>,
    version: ProtocolVersion,
    last_used: Instant,
}

impl Connection {
    /// Whether the idle connection can no longer carry a request: the server closed it
    /// (or sent something unasked, which a KMIP server never does between requests).
    /// Looked at without blocking before every reuse, so that a request that must not
    /// be repeated is not written into a connection the server already dropped (it
    /// would come back Indeterminate although it never reached the server). The kernel
    /// is asked (a non-blocking `MSG_PEEK`), not the runtime's readiness, which only
    /// learns of the close when its driver next runs: a Create made right after the
    /// server died went into the dead connection that way (seen against Cosmian KMS
    /// restarted under a current-thread runtime).
    fn closed_by_peer(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(self.stream.get_ref().0).peek(&mut byte) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            Ok(_) => true,
        }
    }
}

/// Whether `response` says the server has no object of the identifier `operation`
/// names (Item Not Found, or 2.x's Object Not Found), for the operations that act on one
/// object: then the next server is asked, since servers that do not share their keys
/// (a vendor's cluster beside the embedded one) each hold only their own.
fn names_no_such_object(operation: Operation, response: &ResponseMessage) -> bool {
    let acts_on_one_object = matches!(
        operation,
        Operation::GET
            | Operation::GET_ATTRIBUTES
            | Operation::GET_ATTRIBUTE_LIST
            | Operation::ACTIVATE
            | Operation::REVOKE
            | Operation::DESTROY
            | Operation::ENCRYPT
            | Operation::DECRYPT
            | Operation::REKEY
    );
    acts_on_one_object
        && matches!(
            response.items.as_slice(),
            [item] if item.result_status != ResultStatus::SUCCESS
                && item.result_reason.is_some_and(ResultReason::is_not_found)
        )
}

/// [`Client::create_active_symmetric_key`] sends Create, Activate and Get in one
/// message, the last two naming the key by the ID Placeholder.
const BATCH_WHOLE: u8 = 0;
/// It sends Create, then Activate and Get naming the key in one message.
const BATCH_AFTER_CREATE: u8 = 1;
/// It sends one request per operation.
const BATCH_NONE: u8 = 2;

/// Whether `error` is a server's refusal of a request message as such (rather than of
/// what it asked for).
fn refuses_message(error: &Error) -> bool {
    matches!(
        error.result_reason(),
        Some(
            ResultReason::INVALID_MESSAGE
                | ResultReason::OPERATION_NOT_SUPPORTED
                | ResultReason::FEATURE_NOT_SUPPORTED
        )
    )
}

/// The payload of a successful answer to `operation`, or the failure the server
/// reported in it.
fn success_payload(
    server: &str,
    operation: Operation,
    item: ResponseBatchItem,
) -> Result<ResponsePayload, Error> {
    if item.result_status != ResultStatus::SUCCESS {
        return Err(Error::ServerReported {
            server: server.to_owned(),
            operation,
            reason: item.result_reason.unwrap_or(ResultReason::GENERAL_FAILURE),
            message: item.result_message,
        });
    }
    if item.operation.is_some_and(|o| o != operation) {
        return Err(protocol(
            server,
            operation,
            format!("response is for {:?}", item.operation),
        ));
    }
    item.payload
        .ok_or_else(|| protocol(server, operation, "successful response without a payload"))
}

/// Activate and Get (Raw) of key `uid`, for a batch; `None` names the ID Placeholder.
fn activate_and_get_items(uid: Option<&str>) -> [RequestBatchItem; 2] {
    let activate = RequestPayload::Activate {
        unique_identifier: uid.map(str::to_owned),
    };
    [
        RequestBatchItem::new(Operation::ACTIVATE, activate),
        get_item(uid),
    ]
}

/// A Get (Raw) of key `uid` as a batch item; `None` names the ID Placeholder.
fn get_item(uid: Option<&str>) -> RequestBatchItem {
    RequestBatchItem::new(Operation::GET, get_raw(uid))
}

/// The material in the next of `answers`, the answer to a [`get_item`] of `other`:
/// `None` when none was asked for, or the answer is missing, a failure or not a
/// symmetric key of that uid (the caller fetches it alone, and learns why).
fn other_of(
    server: &str,
    other: Option<&str>,
    mut answers: impl Iterator<Item = ResponseBatchItem>,
) -> Option<SymmetricKeyMaterial> {
    let other = other?;
    let payload = success_payload(server, Operation::GET, answers.next()?).ok()?;
    symmetric_key_of(server, other, payload).ok()
}

/// What a batch's answers to Activate and Get say of a key.
enum Activated {
    /// It is Active: its material, or why fetching it failed.
    Yes(Result<SymmetricKeyMaterial, Error>),
    /// It was not activated: the Activate's failure, if it was answered.
    No(Option<Error>),
}

/// A Get of a key's material in Raw format; `None` names the ID Placeholder.
fn get_raw(uid: Option<&str>) -> RequestPayload {
    RequestPayload::Get(GetRequest {
        unique_identifier: uid.map(str::to_owned),
        key_format_type: Some(KeyFormatType::RAW),
        ..GetRequest::default()
    })
}

/// The symmetric key in a Get answer about `uid`.
fn symmetric_key_of(
    server: &str,
    uid: &str,
    response: ResponsePayload,
) -> Result<SymmetricKeyMaterial, Error> {
    let ResponsePayload::Get(r) = response else {
        return Err(protocol(
            server,
            Operation::GET,
            "payload is not a Get response",
        ));
    };
    if r.unique_identifier != uid {
        return Err(protocol(
            server,
            Operation::GET,
            format!("answer is about object {}, not {uid}", r.unique_identifier),
        ));
    }
    let ManagedObject::SymmetricKey(key) = r.object else {
        return Err(protocol(
            server,
            Operation::GET,
            format!("object {uid} is not a Symmetric Key"),
        ));
    };
    let block = key.key_block;
    let bytes = block.key_bytes().ok_or_else(|| {
        protocol(
            server,
            Operation::GET,
            "key material is wrapped or not Raw/Transparent",
        )
    })?;
    Ok(SymmetricKeyMaterial {
        key: Zeroizing::new(bytes.to_vec()),
        algorithm: block.cryptographic_algorithm,
        length: block.cryptographic_length,
    })
}

/// What to send: a payload built for the negotiated version, or a whole message.
enum Outgoing<'b> {
    Build(&'b (dyn Fn(ProtocolVersion) -> Vec<RequestBatchItem> + Sync)),
    Raw(&'b [u8]),
}

/// Why one attempt on one server failed, and whether the request may have reached it.
struct AttemptError {
    error: Error,
    sent: bool,
}

fn is_repeatable(op: Operation) -> bool {
    matches!(
        op,
        Operation::DISCOVER_VERSIONS
            | Operation::QUERY
            | Operation::GET
            | Operation::GET_ATTRIBUTES
            | Operation::GET_ATTRIBUTE_LIST
            | Operation::LOCATE
            | Operation::ACTIVATE
            | Operation::REVOKE
            | Operation::DESTROY
            | Operation::ENCRYPT
            | Operation::DECRYPT
    )
}

/// Splits `"host"`, `"host:port"`, `"[v6]:port"` or a bare IPv6 address.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match s.matches(':').count() {
        0 => Some((s.to_owned(), DEFAULT_PORT)),
        1 => {
            let (host, port) = s.split_once(':')?;
            if host.is_empty() {
                return None;
            }
            Some((host.to_owned(), port.parse().ok()?))
        }
        _ => Some((s.to_owned(), DEFAULT_PORT)),
    }
}

fn protocol(server: &str, operation: Operation, reason: impl Into<String>) -> Error {
    Error::Protocol {
        server: server.to_owned(),
        operation,
        reason: reason.into(),
    }
}

impl Client {
    /// A client for `config`. Reads the certificates now; connects lazily, on the
    /// first operation.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let tls = crate::tls::client_config_with_password(
            &config.ca_file,
            &config.client_cert_file,
            &config.client_key_file,
            config.client_key_password.as_ref(),
        )?;
        let mut servers = Vec::with_capacity(config.servers.len());
        for label in &config.servers {
            let (host, port) = split_host_port(label).ok_or_else(|| Error::Connect {
                server: label.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a host or host:port",
                ),
            })?;
            servers.push(Server {
                label: label.clone(),
                host,
                port,
                permits: Semaphore::new(config.max_connections.max(1)),
                idle: std::sync::Mutex::new(Vec::new()),
                max_idle: config.max_connections.max(1),
            });
        }
        if servers.is_empty() {
            return Err(Error::Connect {
                server: String::new(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "no KMIP server configured",
                ),
            });
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                connector: TlsConnector::from(tls),
                servers,
                batching: AtomicU8::new(BATCH_WHOLE),
            }),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The configured servers, in order (as given, e.g. `host:port`).
    pub fn servers(&self) -> impl ExactSizeIterator<Item = &str> {
        self.inner.servers.iter().map(|s| s.label.as_str())
    }

    /// Checks the server at `index` (in configuration order) alone: a fresh TCP
    /// connection, the TLS handshake and a Discover Versions round trip, all within
    /// `limit` (and within the configured connect and I/O timeouts). No other server is
    /// tried and the pooled connection is neither used nor disturbed; the probe's
    /// connection is closed afterwards. Returns how long it took.
    pub async fn probe(&self, index: usize, limit: Duration) -> Result<Duration, Error> {
        let server = self
            .inner
            .servers
            .get(index)
            .ok_or_else(|| Error::Connect {
                server: format!("#{index}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "no KMIP server at index {index} ({} configured)",
                        self.inner.servers.len()
                    ),
                ),
            })?;
        let operation = Operation::DISCOVER_VERSIONS;
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, self.connect(server, operation)).await {
            Ok(Ok(mut conn)) => {
                let took = started.elapsed();
                // Close politely (TLS close_notify), so the server logs no broken
                // connection every few seconds; a server slow to take it is left.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.stream.shutdown()).await;
                Ok(took)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout {
                server: server.label.clone(),
                operation,
                after: limit,
            }),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => outcome_of(e),
        };
        record_attempt(&server.label, operation, outcome, started.elapsed());
        result
    }

    /// The protocol version negotiated with the first server that has an idle
    /// connection, if any.
    pub async fn negotiated_version(&self) -> Option<ProtocolVersion> {
        self.inner.servers.iter().find_map(|server| {
            let idle = server.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.last().map(|c| c.version)
        })
    }

    /// Closes every idle connection (new ones are opened on the next operation; one
    /// carrying a request now goes back to the pool when its answer is read).
    pub async fn disconnect(&self) {
        for server in &self.inner.servers {
            drop(server.drain());
        }
    }

    /// How many connections to each server are idle in the pool, in configuration
    /// order (for tests and diagnostics).
    pub fn idle_connections(&self) -> Vec<usize> {
        self.inner
            .servers
            .iter()
            .map(|s| s.idle.lock().unwrap_or_else(|e| e.into_inner()).len())
            .collect()
    }

    // ----- typed operations -----

    /// Creates a symmetric key (Create, KMIP 1.4 section 4.1) and returns its Unique
    /// Identifier. Never retried once sent: see [`Error::Indeterminate`].
    pub async fn create_symmetric_key(
        &self,
        algorithm: CryptographicAlgorithm,
        length_bits: i32,
        usage_mask: CryptographicUsageMask,
        name: Option<&str>,
    ) -> Result<String, Error> {
        self.create_symmetric_key_served(algorithm, length_bits, usage_mask, name)
            .await
            .map(|s| s.value)
    }

    /// As [`Client::create_symmetric_key`], and says which server created the key:
    /// after a failover it is not the first configured server.
    pub async fn create_symmetric_key_served(
        &self,
        algorithm: CryptographicAlgorithm,
        length_bits: i32,
        usage_mask: CryptographicUsageMask,
        name: Option<&str>,
    ) -> Result<Served<String>, Error> {
        self.create_with(key_attributes(algorithm, length_bits, usage_mask, name))
            .await
    }

    async fn create_with(&self, attributes: Vec<Attribute>) -> Result<Served<String>, Error> {
        let payload = RequestPayload::Create(CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::new(attributes),
        });
        let (server, response) = self
            .call(Operation::CREATE, move |_| payload.clone())
            .await?;
        match response {
            ResponsePayload::Create(r) => Ok(Served {
                server,
                value: r.unique_identifier,
            }),
            _ => Err(protocol(
                &server,
                Operation::CREATE,
                "payload is not a Create response",
            )),
        }
    }

    /// Creates a symmetric key, activates it and fetches its material (Raw), as
    /// [`Client::create_symmetric_key_served`], [`Client::activate`] and
    /// [`Client::get_symmetric_key`] would, in one request message: a batch whose
    /// Activate and Get name the new key by the ID Placeholder (KMIP 1.4 section 4), one
    /// round trip instead of three. The batch keeps the default Batch Error Continuation
    /// Option, Stop (PyKMIP refuses Undo), so a refused Activate leaves the key
    /// Pre-Active, as separate requests would. Whatever part of the batch the server did
    /// not carry out (a refusal, a server without ID Placeholders or batches) is done
    /// again naming the key, and that answer is the result. After a server refused the
    /// message as such (Invalid Message, Operation or Feature Not Supported) the client
    /// sends Create, then Activate and Get naming the key in one message (two round
    /// trips); after a refusal of that too, one request per operation. Never retried once
    /// sent, as Create.
    pub async fn create_active_symmetric_key(
        &self,
        algorithm: CryptographicAlgorithm,
        length_bits: i32,
        usage_mask: CryptographicUsageMask,
        name: Option<&str>,
    ) -> Result<CreatedActiveKey, Error> {
        self.create_active_symmetric_key_and_get(algorithm, length_bits, usage_mask, name, None)
            .await
    }

    /// [`Client::create_active_symmetric_key`], with a Get (Raw) of another key, `other`
    /// (if given), as the last item of the same message (of the second one, for a server
    /// that takes Create alone): a key rotation needs the key it replaces to re-wrap
    /// what that key protected, and gets it without a round trip of its own. Its answer
    /// is [`CreatedActiveKey::other`]; its failure does not touch the new key (the Get
    /// comes last, after the new key's items).
    pub async fn create_active_symmetric_key_and_get(
        &self,
        algorithm: CryptographicAlgorithm,
        length_bits: i32,
        usage_mask: CryptographicUsageMask,
        name: Option<&str>,
        other: Option<&str>,
    ) -> Result<CreatedActiveKey, Error> {
        let attributes = key_attributes(algorithm, length_bits, usage_mask, name);
        let create = RequestPayload::Create(CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::new(attributes.clone()),
        });
        if self.inner.batching.load(Ordering::Relaxed) != BATCH_WHOLE {
            return self.create_then_activate_and_get(attributes, other).await;
        }
        let batch = |_| {
            let mut items = vec![RequestBatchItem::new(Operation::CREATE, create.clone())];
            items.extend(activate_and_get_items(None));
            items.extend(other.map(|uid| get_item(Some(uid))));
            items
        };
        let (server, response) = self
            .with_failover(Operation::CREATE, false, Outgoing::Build(&batch))
            .await?;
        let mut answers = response.items.into_iter();
        let created = answers
            .next()
            .ok_or_else(|| protocol(&server, Operation::CREATE, "no batch item in the response"))
            .and_then(|item| success_payload(&server, Operation::CREATE, item));
        let uid = match created {
            Ok(ResponsePayload::Create(r)) => r.unique_identifier,
            Ok(_) => {
                return Err(protocol(
                    &server,
                    Operation::CREATE,
                    "payload is not a Create response",
                ));
            }
            // Nothing was created (the server said so): a server that does not take this
            // batch gets the plain Create, whose answer is the result.
            Err(e @ Error::ServerReported { .. }) => {
                if refuses_message(&e) {
                    self.lower_batching(BATCH_AFTER_CREATE, &server, &e);
                }
                return self.create_then_activate_and_get(attributes, other).await;
            }
            // An answer without a Create result: whether a key was made is not known.
            Err(e) => return Err(e),
        };
        let (material, other) = match self.activated(&server, &uid, answers.by_ref()).await {
            Activated::Yes(material) => (material, other_of(&server, other, answers)),
            // Not carried out, or refused: the plain Activate says which.
            Activated::No(_) => (self.activate_then_get(&uid).await, None),
        };
        Ok(CreatedActiveKey {
            server,
            uid,
            material,
            other,
        })
    }

    /// [`Client::create_active_symmetric_key`] for a server that refused its whole
    /// batch: Create, then Activate and Get naming the key in one message (or, for one
    /// that refused that too, as two).
    async fn create_then_activate_and_get(
        &self,
        attributes: Vec<Attribute>,
        other: Option<&str>,
    ) -> Result<CreatedActiveKey, Error> {
        let Served { server, value: uid } = self.create_with(attributes).await?;
        let (material, other) = self.activate_and_get(&uid, other).await;
        Ok(CreatedActiveKey {
            server,
            uid,
            material,
            other,
        })
    }

    /// [`Client::activate`], then [`Client::get_symmetric_key`], in one message where
    /// the server takes it, with the Get of `other` last; `other`'s material if that
    /// Get was answered.
    async fn activate_and_get(
        &self,
        uid: &str,
        other: Option<&str>,
    ) -> (
        Result<SymmetricKeyMaterial, Error>,
        Option<SymmetricKeyMaterial>,
    ) {
        if self.inner.batching.load(Ordering::Relaxed) != BATCH_NONE {
            let batch = |_| {
                let mut items = activate_and_get_items(Some(uid)).to_vec();
                items.extend(other.map(|uid| get_item(Some(uid))));
                items
            };
            let (server, response) = match self
                .with_failover(Operation::ACTIVATE, true, Outgoing::Build(&batch))
                .await
            {
                Ok(answer) => answer,
                Err(e) => return (Err(e), None),
            };
            let mut answers = response.items.into_iter();
            match self.activated(&server, uid, answers.by_ref()).await {
                Activated::Yes(material) => return (material, other_of(&server, other, answers)),
                Activated::No(Some(e)) if refuses_message(&e) => {
                    self.lower_batching(BATCH_NONE, &server, &e);
                }
                // A refused Activate: the plain one below says why (or finds the key
                // Active already, when an earlier answer was lost).
                Activated::No(_) => {}
            }
        }
        (self.activate_then_get(uid).await, None)
    }

    /// [`Client::activate`], then [`Client::get_symmetric_key`], as two requests.
    async fn activate_then_get(&self, uid: &str) -> Result<SymmetricKeyMaterial, Error> {
        self.activate(uid).await?;
        self.get_symmetric_key(uid).await
    }

    /// What `server`'s answers to a batch's Activate and Get of key `uid` (the next two
    /// of `answers`) say: Active, with its material (fetched again if the Get's answer
    /// did not serve), or not activated.
    async fn activated(
        &self,
        server: &str,
        uid: &str,
        mut answers: impl Iterator<Item = ResponseBatchItem>,
    ) -> Activated {
        let activated = answers
            .next()
            .map(|item| success_payload(server, Operation::ACTIVATE, item));
        let fetched = answers
            .next()
            .map(|item| success_payload(server, Operation::GET, item));
        match (activated, fetched) {
            (Some(Ok(_)), Some(Ok(payload))) => match symmetric_key_of(server, uid, payload) {
                Ok(material) => Activated::Yes(Ok(material)),
                Err(_) => Activated::Yes(self.get_symmetric_key(uid).await),
            },
            (Some(Ok(_)), _) => Activated::Yes(self.get_symmetric_key(uid).await),
            (activated, _) => Activated::No(activated.and_then(Result::err)),
        }
    }

    /// Batches no more than `level` from now on, as `server` refused more with `error`.
    fn lower_batching(&self, level: u8, server: &str, error: &Error) {
        if self.inner.batching.fetch_max(level, Ordering::Relaxed) < level {
            let now = if level == BATCH_NONE {
                "one request per operation"
            } else {
                "Create, then Activate and Get in one message"
            };
            tracing::info!(
                server = %server, error = %error,
                "kmip client: the server refused a batch as a message; keys are made with {now} from now on"
            );
        }
    }

    /// Activates an object (KMIP 1.4 section 4.19). Idempotent: if the server refuses
    /// because the object is already Active (e.g. a retried request whose first answer
    /// was lost), this succeeds.
    pub async fn activate(&self, uid: &str) -> Result<(), Error> {
        let payload = RequestPayload::Activate {
            unique_identifier: Some(uid.to_owned()),
        };
        match self
            .call(Operation::ACTIVATE, move |_| payload.clone())
            .await
        {
            Ok(_) => Ok(()),
            Err(e @ Error::ServerReported { .. })
                if matches!(
                    e.result_reason(),
                    Some(
                        ResultReason::PERMISSION_DENIED
                            | ResultReason::WRONG_KEY_LIFECYCLE_STATE
                            | ResultReason::ILLEGAL_OPERATION
                    )
                ) =>
            {
                match self.get_state(uid).await {
                    Ok(State::ACTIVE) => Ok(()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Fetches a symmetric key's material (Get with Key Format Type Raw).
    pub async fn get_symmetric_key(&self, uid: &str) -> Result<SymmetricKeyMaterial, Error> {
        let payload = get_raw(Some(uid));
        let (server, response) = self.call(Operation::GET, move |_| payload.clone()).await?;
        symmetric_key_of(&server, uid, response)
    }

    /// Reads attributes by their 1.x names (`"State"`, `"Cryptographic Algorithm"`);
    /// an empty list asks for all.
    pub async fn get_attributes(&self, uid: &str, names: &[&str]) -> Result<Vec<Attribute>, Error> {
        let payload = RequestPayload::GetAttributes(GetAttributesRequest {
            unique_identifier: Some(uid.to_owned()),
            attribute_names: names.iter().map(|n| (*n).to_owned()).collect(),
        });
        let (server, response) = self
            .call(Operation::GET_ATTRIBUTES, move |_| payload.clone())
            .await?;
        match response {
            ResponsePayload::GetAttributes(r) => Ok(r.attributes),
            _ => Err(protocol(
                &server,
                Operation::GET_ATTRIBUTES,
                "payload is not a Get Attributes response",
            )),
        }
    }

    /// An object's State attribute.
    pub async fn get_state(&self, uid: &str) -> Result<State, Error> {
        let attributes = self.get_attributes(uid, &["State"]).await?;
        attributes
            .iter()
            .find_map(|a| match a {
                Attribute::State(s) => Some(*s),
                _ => None,
            })
            .ok_or_else(|| Error::Protocol {
                server: self.inner.servers[0].label.clone(),
                operation: Operation::GET_ATTRIBUTES,
                reason: format!("no State attribute returned for {uid}"),
            })
    }

    /// Unique Identifiers of the objects matching every given criterion.
    pub async fn locate(
        &self,
        name: Option<&str>,
        object_type: Option<ObjectType>,
        state: Option<State>,
    ) -> Result<Vec<String>, Error> {
        let mut attributes = Vec::new();
        if let Some(t) = object_type {
            attributes.push(Attribute::ObjectType(t));
        }
        if let Some(n) = name {
            attributes.push(name_attribute(n));
        }
        if let Some(s) = state {
            attributes.push(Attribute::State(s));
        }
        let payload = RequestPayload::Locate(LocateRequest {
            attributes,
            ..LocateRequest::default()
        });
        let (server, response) = self
            .call(Operation::LOCATE, move |_| payload.clone())
            .await?;
        match response {
            ResponsePayload::Locate(r) => Ok(r.unique_identifiers),
            _ => Err(protocol(
                &server,
                Operation::LOCATE,
                "payload is not a Locate response",
            )),
        }
    }

    /// Revokes an object (KMIP 1.4 section 4.20).
    pub async fn revoke(
        &self,
        uid: &str,
        reason: RevocationReasonCode,
        message: Option<&str>,
    ) -> Result<(), Error> {
        let compromise = reason == RevocationReasonCode::KEY_COMPROMISE
            || reason == RevocationReasonCode::CA_COMPROMISE;
        let payload = RequestPayload::Revoke(RevokeRequest {
            unique_identifier: Some(uid.to_owned()),
            revocation_reason: RevocationReason {
                code: reason,
                message: message.map(str::to_owned),
            },
            compromise_occurrence_date: compromise
                .then(|| time::OffsetDateTime::now_utc().unix_timestamp()),
        });
        self.call(Operation::REVOKE, move |_| payload.clone())
            .await
            .map(|_| ())
    }

    /// Destroys an object's key material (KMIP 1.4 section 4.21).
    pub async fn destroy(&self, uid: &str) -> Result<(), Error> {
        let payload = RequestPayload::Destroy {
            unique_identifier: Some(uid.to_owned()),
        };
        self.call(Operation::DESTROY, move |_| payload.clone())
            .await
            .map(|_| ())
    }

    /// Replaces a key with a new one (ReKey, KMIP 1.4 section 4.4) and returns the new
    /// key's Unique Identifier. Against a server that answers Operation Not Supported
    /// (PyKMIP), falls back to: read the old key's algorithm, length, usage mask, names
    /// and state; Create a key with the same, linked to the old one (Replaced Object
    /// Link; without the link if the server refuses it); Activate it if the old key is
    /// Active. Never retried once sent.
    pub async fn rekey(&self, uid: &str) -> Result<String, Error> {
        let payload = RequestPayload::ReKey(ReKeyRequest {
            unique_identifier: Some(uid.to_owned()),
            ..ReKeyRequest::default()
        });
        match self.call(Operation::REKEY, move |_| payload.clone()).await {
            Ok((_, ResponsePayload::ReKey(r))) => Ok(r.unique_identifier),
            Ok((server, _)) => Err(protocol(
                &server,
                Operation::REKEY,
                "payload is not a ReKey response",
            )),
            Err(e) if e.result_reason() == Some(ResultReason::OPERATION_NOT_SUPPORTED) => {
                self.rekey_by_create(uid).await
            }
            Err(e) => Err(e),
        }
    }

    async fn rekey_by_create(&self, uid: &str) -> Result<String, Error> {
        let old = self.get_attributes(uid, &[]).await?;
        let mut base = Vec::new();
        let mut active = false;
        for a in &old {
            match a {
                Attribute::CryptographicAlgorithm(_)
                | Attribute::CryptographicLength(_)
                | Attribute::CryptographicUsageMask(_)
                | Attribute::Name { .. } => base.push(a.clone()),
                Attribute::State(s) => active = *s == State::ACTIVE,
                _ => {}
            }
        }
        let mut linked = base.clone();
        linked.push(Attribute::Link {
            link_type: LinkType::REPLACED_OBJECT_LINK,
            linked_object_id: uid.to_owned(),
        });
        let new_uid = match self.create_with(linked).await {
            Ok(u) => u.value,
            // A refused Create created nothing: try again without the link.
            Err(Error::ServerReported { .. }) => self.create_with(base).await?.value,
            Err(e) => return Err(e),
        };
        if active {
            self.activate(&new_uid).await?;
        }
        Ok(new_uid)
    }

    /// Encrypts with an AES key held by the server (AES-GCM, server-generated IV, 16-byte
    /// tag; KMIP 1.2 section 4.29).
    pub async fn encrypt(
        &self,
        uid: &str,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<GcmCiphertext, Error> {
        let payload = RequestPayload::Encrypt(EncryptRequest {
            unique_identifier: Some(uid.to_owned()),
            cryptographic_parameters: Some(gcm_parameters()),
            data: Some(Zeroizing::new(plaintext.to_vec())),
            additional_data: aad.map(<[u8]>::to_vec),
            ..EncryptRequest::default()
        });
        let (server, response) = self
            .call(Operation::ENCRYPT, move |_| payload.clone())
            .await?;
        let ResponsePayload::Encrypt(r) = response else {
            return Err(protocol(
                &server,
                Operation::ENCRYPT,
                "payload is not an Encrypt response",
            ));
        };
        match (r.data, r.iv_counter_nonce, r.tag) {
            (Some(data), Some(iv), Some(tag)) => Ok(GcmCiphertext { data, iv, tag }),
            _ => Err(protocol(
                &server,
                Operation::ENCRYPT,
                "response lacks Data, IV/Counter/Nonce or Authenticated Encryption Tag",
            )),
        }
    }

    /// Decrypts AES-GCM data with a key held by the server.
    pub async fn decrypt(
        &self,
        uid: &str,
        ciphertext: &GcmCiphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let payload = RequestPayload::Decrypt(DecryptRequest {
            unique_identifier: Some(uid.to_owned()),
            cryptographic_parameters: Some(gcm_parameters()),
            data: Some(ciphertext.data.clone()),
            iv_counter_nonce: Some(ciphertext.iv.clone()),
            additional_data: aad.map(<[u8]>::to_vec),
            tag: Some(ciphertext.tag.clone()),
            ..DecryptRequest::default()
        });
        let (server, response) = self
            .call(Operation::DECRYPT, move |_| payload.clone())
            .await?;
        match response {
            ResponsePayload::Decrypt(r) => r
                .data
                .ok_or_else(|| protocol(&server, Operation::DECRYPT, "response lacks Data")),
            _ => Err(protocol(
                &server,
                Operation::DECRYPT,
                "payload is not a Decrypt response",
            )),
        }
    }

    /// The protocol versions the (first reachable) server supports, its preference first.
    pub async fn discover_versions(&self) -> Result<Vec<ProtocolVersion>, Error> {
        let payload = RequestPayload::DiscoverVersions(DiscoverVersionsRequest::default());
        let (server, response) = self
            .call(Operation::DISCOVER_VERSIONS, move |_| payload.clone())
            .await?;
        match response {
            ResponsePayload::DiscoverVersions(r) => Ok(r.versions),
            _ => Err(protocol(
                &server,
                Operation::DISCOVER_VERSIONS,
                "payload is not a Discover Versions response",
            )),
        }
    }

    /// Query: operations, object types and server information.
    pub async fn query(&self) -> Result<QueryResponse, Error> {
        let payload = RequestPayload::Query(QueryRequest {
            functions: vec![
                QueryFunction::QUERY_OPERATIONS,
                QueryFunction::QUERY_OBJECTS,
                QueryFunction::QUERY_SERVER_INFORMATION,
            ],
        });
        let (server, response) = self
            .call(Operation::QUERY, move |_| payload.clone())
            .await?;
        match response {
            ResponsePayload::Query(r) => Ok(r),
            _ => Err(protocol(
                &server,
                Operation::QUERY,
                "payload is not a Query response",
            )),
        }
    }

    /// Sends a request message as given (its own protocol version and batch) and
    /// returns the response message as received, failed batch items included. Failover
    /// as for typed operations; retried only if every batch item is safe to repeat.
    pub async fn send(&self, request: RequestMessage) -> Result<ResponseMessage, Error> {
        let operation = request
            .items
            .first()
            .map_or(Operation::QUERY, |i| i.operation);
        let repeatable = request.items.iter().all(|i| is_repeatable(i.operation));
        let bytes = request.encode();
        self.with_failover(operation, repeatable, Outgoing::Raw(&bytes))
            .await
            .map(|(_, r)| r)
    }

    // ----- machinery -----

    /// Sends one operation, building its payload for the negotiated version, and
    /// returns the serving server's label and the success payload.
    async fn call(
        &self,
        operation: Operation,
        build: impl Fn(ProtocolVersion) -> RequestPayload + Sync,
    ) -> Result<(String, ResponsePayload), Error> {
        let items = |version| vec![RequestBatchItem::new(operation, build(version))];
        let (server, response) = self
            .with_failover(operation, is_repeatable(operation), Outgoing::Build(&items))
            .await?;
        let item = match <[_; 1]>::try_from(response.items) {
            Ok([item]) => item,
            Err(items) => {
                return Err(protocol(
                    &server,
                    operation,
                    format!("{} batch items in the response, expected 1", items.len()),
                ));
            }
        };
        let payload = success_payload(&server, operation, item)?;
        Ok((server, payload))
    }

    /// Sends `outgoing` on a connection to each server in order, returning the first
    /// response received. A repeatable operation gets up to
    /// [`ClientConfig::max_retries`] more rounds over the server list, with exponential
    /// back-off (backon), as long as the round's failure [`Error::is_transient`]: an
    /// [`Error::AllServersFailed`] is, an [`Error::Indeterminate`] is not.
    async fn with_failover(
        &self,
        operation: Operation,
        repeatable: bool,
        outgoing: Outgoing<'_>,
    ) -> Result<(String, ResponseMessage), Error> {
        let retries = if repeatable {
            self.inner.config.max_retries as usize
        } else {
            0
        };
        let rounds = ExponentialBuilder::new()
            .with_min_delay(BACKOFF_START)
            .with_max_delay(BACKOFF_MAX)
            .with_max_times(retries);
        let outgoing = &outgoing;
        // The attempts of the rounds before the last, for the error of the last one.
        let mut earlier: Vec<(String, String)> = Vec::new();
        let result = (|| self.round(operation, repeatable, outgoing))
            .retry(rounds)
            .when(Error::is_transient)
            .notify(|e, _| {
                if let Error::AllServersFailed { attempts, .. } = e {
                    earlier.extend(attempts.iter().cloned());
                }
            })
            .await;
        match result {
            Err(Error::AllServersFailed {
                operation,
                attempts,
            }) => {
                earlier.extend(attempts);
                Err(Error::AllServersFailed {
                    operation,
                    attempts: earlier,
                })
            }
            other => other,
        }
    }

    /// One round over the server list: the first response received, else
    /// [`Error::AllServersFailed`] with each server's failure, or at once
    /// [`Error::Indeterminate`] when an operation that must not be repeated was sent but
    /// not answered.
    async fn round(
        &self,
        operation: Operation,
        repeatable: bool,
        outgoing: &Outgoing<'_>,
    ) -> Result<(String, ResponseMessage), Error> {
        let mut attempts: Vec<(String, String)> = Vec::new();
        // The first "no such object" answer, kept while later servers are asked.
        let mut not_found: Option<(String, ResponseMessage)> = None;
        let mut unanswered = false;
        let last = self.inner.servers.len() - 1;
        for (index, server) in self.inner.servers.iter().enumerate() {
            let started = Instant::now();
            let result = self
                .attempt_on(server, operation, repeatable, outgoing)
                .await;
            let outcome = match &result {
                Ok(response) => {
                    if response
                        .items
                        .iter()
                        .all(|i| i.result_status == ResultStatus::SUCCESS)
                    {
                        "ok"
                    } else {
                        "server_error"
                    }
                }
                Err(e) => outcome_of(&e.error),
            };
            record_attempt(&server.label, operation, outcome, started.elapsed());
            match result {
                Ok(response) if index < last && names_no_such_object(operation, &response) => {
                    attempts.push((server.label.clone(), "has no such object".into()));
                    not_found.get_or_insert((server.label.clone(), response));
                }
                Ok(response) => return Ok((server.label.clone(), response)),
                Err(AttemptError { error, sent }) => {
                    unanswered = true;
                    if sent && !repeatable {
                        return Err(Error::Indeterminate {
                            server: server.label.clone(),
                            operation,
                            source: Box::new(error),
                        });
                    }
                    tracing::debug!(
                        server = %server.label,
                        %operation,
                        error = %error,
                        "kmip client: attempt failed"
                    );
                    attempts.push((server.label.clone(), error.to_string()));
                }
            }
        }
        match not_found {
            // Every server answered, and none has the object: that is the answer.
            Some(answer) if !unanswered => Ok(answer),
            // One that did not answer may have it: an outage, not an absence.
            _ => Err(Error::AllServersFailed {
                operation,
                attempts,
            }),
        }
    }

    /// One attempt on one server: reuse or open its connection and exchange one
    /// message. A repeatable operation that fails on a reused connection with a
    /// transient error is tried once more, at once, on a fresh one (the server may have
    /// closed an idle connection). An operation that must not be repeated is never
    /// written into a connection idle for [`STALE_FOR_UNREPEATABLE`] or closed by the
    /// peer: it gets a fresh one.
    async fn attempt_on(
        &self,
        server: &Server,
        operation: Operation,
        repeatable: bool,
        outgoing: &Outgoing<'_>,
    ) -> Result<ResponseMessage, AttemptError> {
        // The semaphore is never closed.
        let _permit = server.permits.acquire().await.map_err(|_| AttemptError {
            error: protocol(&server.label, operation, "the connection pool was closed"),
            sent: false,
        })?;
        let pooled = server.checkout(repeatable);
        let once_more = ConstantBuilder::new()
            .with_delay(Duration::ZERO)
            .with_max_times(usize::from(pooled.is_some() && repeatable));
        let (conn, result) = (|mut conn: Option<Connection>| async move {
            let result = self
                .exchange_on(&mut conn, server, operation, outgoing)
                .await;
            (conn, result)
        })
        .retry(once_more)
        .context(pooled)
        .when(|e: &AttemptError| e.error.is_transient())
        .await;
        // Back to the pool before the permit is released, so that the next request
        // waiting for a permit finds it.
        if let Some(conn) = conn {
            server.checkin(conn);
        }
        result
    }

    /// Exchanges one message on the server's connection `slot`, opening one first if it
    /// is empty; a connection that fails is dropped.
    async fn exchange_on(
        &self,
        slot: &mut Option<Connection>,
        server: &Server,
        operation: Operation,
        outgoing: &Outgoing<'_>,
    ) -> Result<ResponseMessage, AttemptError> {
        let conn = match slot {
            Some(conn) => conn,
            None => {
                let conn = self
                    .connect(server, operation)
                    .await
                    .map_err(|error| AttemptError { error, sent: false })?;
                slot.insert(conn)
            }
        };
        let bytes = match outgoing {
            Outgoing::Build(build) => {
                let mut items = build(conn.version);
                // KMIP requires a Unique Batch Item ID on each item of a batch of several
                // (1.4 section 7.2; PyKMIP refuses the batch without).
                if items.len() > 1 {
                    for (n, item) in (1u32..).zip(items.iter_mut()) {
                        item.unique_batch_item_id = Some(n.to_be_bytes().to_vec());
                    }
                }
                RequestMessage::new(conn.version, items).encode()
            }
            Outgoing::Raw(bytes) => bytes.to_vec(),
        };
        match exchange(conn, &server.label, operation, &bytes, &self.inner.config).await {
            Ok(response) => {
                conn.last_used = Instant::now();
                Ok(response)
            }
            Err(e) => {
                slot.take();
                Err(e)
            }
        }
    }

    async fn connect(&self, server: &Server, operation: Operation) -> Result<Connection, Error> {
        let config = &self.inner.config;
        let addr = (server.host.as_str(), server.port);
        let tcp = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    server: server.label.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Connect {
                    server: server.label.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {:?}", config.connect_timeout),
                    ),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let name = config.server_name.as_deref().unwrap_or(&server.host);
        let server_name = ServerName::try_from(name.to_owned()).map_err(|e| Error::Tls {
            server: server.label.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        let stream = match tokio::time::timeout(
            config.connect_timeout,
            self.inner.connector.connect(server_name, tcp),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(Error::Tls {
                    server: server.label.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Tls {
                    server: server.label.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no TLS handshake within {:?}", config.connect_timeout),
                    ),
                });
            }
        };
        let mut conn = Connection {
            stream,
            version: FALLBACK_VERSION,
            last_used: Instant::now(),
        };
        conn.version = negotiate(&mut conn, &server.label, config).await?;
        tracing::debug!(
            server = %server.label,
            version = %conn.version,
            %operation,
            "kmip client: connected"
        );
        Ok(conn)
    }
}

/// Discover Versions on a fresh connection: the highest common version, or
/// [`FALLBACK_VERSION`] if the server refuses or shares none.
async fn negotiate(
    conn: &mut Connection,
    server: &str,
    config: &ClientConfig,
) -> Result<ProtocolVersion, Error> {
    let request = RequestMessage::new(
        FALLBACK_VERSION,
        vec![RequestBatchItem::new(
            Operation::DISCOVER_VERSIONS,
            RequestPayload::DiscoverVersions(DiscoverVersionsRequest {
                versions: config.protocol_versions.clone(),
            }),
        )],
    );
    let response = exchange(
        conn,
        server,
        Operation::DISCOVER_VERSIONS,
        &request.encode(),
        config,
    )
    .await
    .map_err(|e| e.error)?;
    let offered = response.items.into_iter().next().and_then(|item| {
        match (item.result_status, item.payload) {
            (ResultStatus::SUCCESS, Some(ResponsePayload::DiscoverVersions(r))) => Some(r.versions),
            _ => None,
        }
    });
    Ok(offered
        .unwrap_or_default()
        .into_iter()
        .filter(|v| config.protocol_versions.contains(v) && CLIENT_VERSIONS.contains(v))
        .max()
        .unwrap_or(FALLBACK_VERSION))
}

/// Writes one request and reads one response within the I/O timeout.
async fn exchange(
    conn: &mut Connection,
    server: &str,
    operation: Operation,
    request: &[u8],
    config: &ClientConfig,
) -> Result<ResponseMessage, AttemptError> {
    let io = async {
        framing::write_message(&mut conn.stream, request)
            .await
            .map_err(|e| with_server(e, server, operation))?;
        let bytes = framing::read_message(&mut conn.stream, config.limits.max_message_bytes)
            .await
            .map_err(|e| with_server(e, server, operation))?
            .ok_or_else(|| {
                Error::io(
                    format!("reading the {operation} response from {server}"),
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed before a response",
                    ),
                )
            })?;
        let (response, skipped) = ResponseMessage::decode_lenient(&bytes, &config.limits)?;
        report_skipped(server, &skipped);
        Ok(response)
    };
    match tokio::time::timeout(config.io_timeout, io).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(error)) => Err(AttemptError { error, sent: true }),
        Err(_) => Err(AttemptError {
            error: Error::Timeout {
                server: server.to_owned(),
                operation,
                after: config.io_timeout,
            },
            sent: true,
        }),
    }
}

/// Logs, once per process, that a server's response carried fields this client does
/// not know (vendor extensions, newer KMIP versions) and that they were skipped: the
/// tag paths only, never a value.
fn report_skipped(server: &str, skipped: &[TagPath]) {
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if skipped.is_empty() || REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let fields: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    tracing::warn!(
        server,
        fields = %fields.join(", "),
        "KMIP response carries fields this client does not know; skipped (logged once)"
    );
}

/// The `outcome` label of a failed attempt (one of [`OUTCOMES`]).
fn outcome_of(e: &Error) -> &'static str {
    match e {
        Error::Connect { source, .. } | Error::Tls { source, .. }
            if source.kind() == std::io::ErrorKind::TimedOut =>
        {
            "timeout"
        }
        Error::Connect { .. } => "connect_error",
        Error::Tls { .. } => "tls_error",
        Error::Timeout { .. } => "timeout",
        Error::Io { .. } => "io_error",
        Error::ServerReported { .. } => "server_error",
        Error::Decode(_) | Error::Message(_) | Error::Frame { .. } | Error::Protocol { .. } => {
            "protocol_error"
        }
        _ => "error",
    }
}

/// Records one attempt on one server (see the module documentation).
fn record_attempt(server: &str, operation: Operation, outcome: &'static str, took: Duration) {
    let op = operation.name().unwrap_or("unknown");
    metrics::counter!(
        METRIC_REQUESTS,
        "server" => server.to_owned(),
        "operation" => op,
        "outcome" => outcome,
    )
    .increment(1);
    metrics::histogram!(
        METRIC_DURATION,
        "server" => server.to_owned(),
        "operation" => op,
    )
    .record(took.as_secs_f64());
}

/// Adds the server and operation to an I/O error's context.
fn with_server(e: Error, server: &str, operation: Operation) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: format!("{context} ({operation} with {server})"),
            source,
        },
        other => other,
    }
}

/// The attributes of a symmetric key to create.
fn key_attributes(
    algorithm: CryptographicAlgorithm,
    length_bits: i32,
    usage_mask: CryptographicUsageMask,
    name: Option<&str>,
) -> Vec<Attribute> {
    let mut attributes = vec![
        Attribute::CryptographicAlgorithm(algorithm),
        Attribute::CryptographicLength(length_bits),
        Attribute::CryptographicUsageMask(usage_mask),
    ];
    if let Some(name) = name {
        attributes.push(name_attribute(name));
    }
    attributes
}

fn name_attribute(name: &str) -> Attribute {
    Attribute::Name {
        value: name.to_owned(),
        name_type: NameType::UNINTERPRETED_TEXT_STRING,
    }
}

fn gcm_parameters() -> CryptographicParameters {
    CryptographicParameters {
        block_cipher_mode: Some(BlockCipherMode::GCM),
        cryptographic_algorithm: Some(CryptographicAlgorithm::AES),
        tag_length: Some(16),
        random_iv: Some(true),
        ..CryptographicParameters::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn accepts_client_futures_on_multithreaded_runtimes() {
        // Compile-time: the futures of the typed operations are Send (axum needs it).
        fn check(client: &Client) {
            assert_send(&client.create_symmetric_key(
                CryptographicAlgorithm::AES,
                256,
                CryptographicUsageMask::ENCRYPT,
                None,
            ));
            assert_send(&client.get_symmetric_key("x"));
            assert_send(&client.rekey("x"));
            assert_send(&client.send(RequestMessage::new(ProtocolVersion::V1_2, vec![])));
        }
        let _ = check;
        fn assert_sync<T: Send + Sync + Clone>() {}
        assert_sync::<Client>();
    }

    #[test]
    fn accepts_host_port_forms() {
        assert_eq!(split_host_port("kmip"), Some(("kmip".into(), 5696)));
        assert_eq!(split_host_port("kmip:1234"), Some(("kmip".into(), 1234)));
        assert_eq!(split_host_port("[::1]:99"), Some(("::1".into(), 99)));
        assert_eq!(split_host_port("[::1]"), Some(("::1".into(), 5696)));
        assert_eq!(split_host_port("::1"), Some(("::1".into(), 5696)));
    }

    #[test]
    fn rejects_malformed_server_addresses() {
        assert_eq!(split_host_port(""), None);
        assert_eq!(split_host_port("kmip:port"), None);
        assert_eq!(split_host_port(":5696"), None);
        assert_eq!(split_host_port("[::1]x"), None);
    }
}
