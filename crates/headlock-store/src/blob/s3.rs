//! The S3 backend of [`ObjectBlobStore`]: [`ObjectBlobStore::s3`] with an [`S3Config`],
//! on object_store's `AmazonS3` (AWS, or any S3-compatible server: MinIO, moto, Ceph).
//!
//! # What a successful `put` guarantees on S3
//!
//! * **Durability is S3's**: a PUT or a `CompleteMultipartUpload` that S3 answered with
//!   success is stored redundantly before the answer is sent (on AWS, across availability
//!   zones; on another server, whatever it promises). `put` returns only after that
//!   answer.
//! * **Whole objects, atomically**: S3 never shows a partial object. Objects up to
//!   [`MULTIPART_THRESHOLD`] go up in one PUT; larger ones (packs are about 24 MiB) as a
//!   multipart upload of [`PART_SIZE`] parts, [`PARALLEL_PARTS`] in flight at a time, and
//!   the object appears only when `CompleteMultipartUpload` succeeds, all at once; until
//!   then `get` says NotFound. A failed upload is aborted; if the process dies in the
//!   middle, the parts stay invisible (and billed) until the bucket's lifecycle rule
//!   `AbortIncompleteMultipartUpload` removes them: set one (a day is plenty).
//! * **Strong read-after-write**: S3 has been strongly consistent since December 2020; a
//!   `get` or `list` after a successful `put` sees the object.
//!
//! # Conditional writes
//!
//! A name is written once (see the parent module). Single PUTs carry `If-None-Match: *`
//! (object_store's `PutMode::Create`); for multipart uploads object_store 0.14 offers no
//! conditional completion, so the HTTP client of this store adds `If-None-Match: *` to
//! every `CompleteMultipartUpload` request (a POST with an `uploadId` query) itself,
//! exactly as object_store does for its own conditional completions (an unsigned header,
//! after signing; S3 accepts that). S3 answers `412 Precondition Failed` when the name is
//! taken (and `409 ConflictingOperation` while another conditional write of the name is
//! in flight); the store then reads the object that is there: the same bytes mean an
//! earlier attempt of this very put succeeded (its answer was lost), so the put
//! succeeds; other bytes fail the put. AWS S3 (since August 2024), MinIO and moto 5
//! support `If-None-Match` on both requests.
//!
//! # Timeouts and retries
//!
//! Set explicitly rather than inherited, so they are part of what this module promises:
//!
//! * connecting: [`CONNECT_TIMEOUT`] (5 s: AWS answers in milliseconds; a dead endpoint
//!   should fail a backup in seconds, not minutes);
//! * a whole request, body included: [`REQUEST_TIMEOUT`] (60 s: an 8 MiB part or a
//!   24 MiB GET at 0.5 MB/s, far below any working link);
//! * retries: object_store's retry with exponential back-off and jitter, on connection
//!   failures, 5xx, 408 and 429 (S3's `SlowDown`), [`MAX_RETRIES`] times, starting at
//!   100 ms, doubling, at most 5 s apart, and none started after [`RETRY_TIMEOUT`] (60 s,
//!   well inside the 5 minutes a SigV4 signature stays valid). That rides out a few
//!   seconds of throttling or a server restart; a longer outage fails the operation, and
//!   the backup with it, which its schedule runs again. object_store retries a PUT with
//!   `If-None-Match` only when the request was never sent or S3 answered 5xx, 408 or 429,
//!   and a multipart completion always (S3 makes it idempotent); a retry that meets its
//!   own earlier success is settled as above.
//!
//! Each part of a multipart upload is retried on its own.
//!
//! # Credentials
//!
//! From the [`S3Config`], or else the standard AWS variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or `AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT`, ...: `AmazonS3Builder::from_env`), or else object_store's chain (web
//! identity, ECS task role, instance metadata). The secret is never logged, shown by
//! `Debug` or put in an error; it is zeroized in the [`S3Config`], though object_store
//! keeps its own (not zeroized) copy for signing.
//!
//! # TLS
//!
//! reqwest's rustls without a built-in crypto provider (its default would bring in
//! aws-lc-rs): [`ObjectBlobStore::s3`] installs ring as rustls' process-wide default
//! provider if none is installed yet. Server certificates are checked against the
//! system's trust store (rustls-platform-verifier).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientConfigKey, ClientOptions, HeaderValue, RetryConfig};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Multipart, ObjectBlobStore, check_name};
use headlock_core::blob::BlobError;

/// Objects larger than this go up as a multipart upload.
pub const MULTIPART_THRESHOLD: usize = PART_SIZE;

/// The size of every part but the last (S3's minimum is 5 MiB): a 24 MiB pack is three.
pub const PART_SIZE: usize = 8 << 20;

/// Parts of one object in flight at once.
pub const PARALLEL_PARTS: usize = 4;

/// How long connecting to the endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take, from connecting to the end of the body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How often one request is retried.
pub const MAX_RETRIES: usize = 5;

/// No retry starts later than this after the first attempt.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the chunk store is in S3, and how to reach it: the `[chunk_store.s3]`-style
/// table of the service's configuration.
///
/// Fields left out come from the standard AWS variables (see the module docs).
/// `Debug` never shows the secret.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// A directory-like prefix inside the bucket for every object (`headlock/prod`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// An S3-compatible server (`http://127.0.0.1:9000`, `https://minio.example`):
    /// requests then use path-style addressing (`<endpoint>/<bucket>/<key>`).
    /// None: AWS, for the region.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region (`eu-west-1`); None: `AWS_REGION`/`AWS_DEFAULT_REGION`, else
    /// `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// The access key id; with `secret_access_key`, or neither.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret access key.
    #[serde(default, deserialize_with = "secret")]
    pub secret_access_key: Option<Zeroizing<String>>,
    /// Whether a plain `http://` endpoint is allowed (tests, a server on loopback).
    #[serde(default)]
    pub allow_http: bool,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl ObjectBlobStore {
    /// A store in the S3 bucket of `config` (see the module docs for what a put
    /// guarantees, the timeouts and retries, and where credentials come from).
    ///
    /// Checks the configuration, not the bucket: nothing is sent until the first
    /// operation, so an unreachable endpoint or a wrong key shows then, as a
    /// [`BlobError::Backend`] naming the operation, the object, the bucket and endpoint.
    pub fn s3(config: &S3Config) -> Result<ObjectBlobStore, BlobError> {
        let bad = |reason: String| BlobError::Backend {
            path: format!(
                "s3://{}",
                config.bucket.chars().take(63).collect::<String>()
            ),
            reason: format!("configuring the S3 chunk store: {reason}"),
        };
        check_bucket(&config.bucket).map_err(&bad)?;
        let prefix = match config.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
            None | Some("") => None,
            Some(p) => {
                check_name(p).map_err(|why| bad(format!("prefix {p:?}: {why}")))?;
                Some(p.to_owned())
            }
        };
        if let Some(endpoint) = &config.endpoint {
            let plain = endpoint.starts_with("http://");
            if !plain && !endpoint.starts_with("https://") {
                return Err(bad(format!(
                    "endpoint {endpoint:?} is not an http:// or https:// URL"
                )));
            }
            if plain && !config.allow_http {
                return Err(bad(format!(
                    "endpoint {endpoint} is plain HTTP, which needs allow_http = true"
                )));
            }
        }

        // reqwest is built without a crypto provider of its own (see the module docs);
        // an Err only says one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_allow_http(config.allow_http)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_http_connector(CreateOnlyConnector)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            })
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                humantime_ms(CONNECT_TIMEOUT),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                humantime_ms(REQUEST_TIMEOUT),
            );
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret.as_str());
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "access_key_id and secret_access_key go together: give both or neither".into(),
                ));
            }
        }
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| {
                let region = builder
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".into());
                format!("AWS region {region}")
            });
        let description = match &prefix {
            Some(p) => format!("S3 bucket {} under {p}/ at {endpoint}", config.bucket),
            None => format!("S3 bucket {} at {endpoint}", config.bucket),
        };
        let s3 = builder.build().map_err(|e| bad(e.to_string()))?;
        let inner: std::sync::Arc<dyn object_store::ObjectStore> = match prefix {
            Some(p) => std::sync::Arc::new(PrefixStore::new(s3, p.as_str())),
            None => std::sync::Arc::new(s3),
        };
        tracing::info!(at = %description, "S3 chunk store");
        Ok(ObjectBlobStore {
            inner,
            local_root: None,
            description,
            multipart: Some(Multipart {
                threshold: MULTIPART_THRESHOLD,
                part_size: PART_SIZE,
                parallel: PARALLEL_PARTS,
            }),
        })
    }
}

/// A duration as object_store's configuration strings take it.
fn humantime_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// S3's bucket naming rules (the part that matters for a URL): 3 to 63 lowercase letters,
/// digits, `.` and `-`.
fn check_bucket(bucket: &str) -> Result<(), String> {
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "bucket name of {} bytes (3 to 63 allowed)",
            bucket.len()
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-')))
    {
        return Err(format!(
            "bucket name with {c:?} (lowercase letters, digits, '.' and '-' only)"
        ));
    }
    Ok(())
}

/// object_store's reqwest client, with `If-None-Match: *` on every
/// `CompleteMultipartUpload` (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
struct CreateOnlyConnector;

impl HttpConnector for CreateOnlyConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CreateOnly(inner)))
    }
}

#[derive(Debug)]
struct CreateOnly(HttpClient);

#[async_trait]
impl HttpService for CreateOnly {
    async fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        if is_complete_multipart(request.method().as_str(), request.uri().query()) {
            request
                .headers_mut()
                .insert("if-none-match", HeaderValue::from_static("*"));
        }
        self.0.execute(request).await
    }
}

/// Whether a request is S3's `CompleteMultipartUpload`: `POST /<key>?uploadId=<id>`
/// (`CreateMultipartUpload` is `POST /<key>?uploads`, an upload part is a PUT).
fn is_complete_multipart(method: &str, query: Option<&str>) -> bool {
    method == "POST"
        && query.is_some_and(|q| {
            q.split('&')
                .any(|pair| pair.split('=').next() == Some("uploadId"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config {
            bucket: "headlock-chunks".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("eu-west-1".into()),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some(Zeroizing::new("wJalrXUtnFEMI-secret".into())),
            allow_http: true,
            ..S3Config::default()
        }
    }

    #[test]
    fn accepts_a_config_table_and_redacts_the_secret() {
        let parsed: S3Config = serde_json::from_str(
            r#"{"bucket": "b-1", "prefix": "prod/", "endpoint": "https://minio.example",
                "access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI-secret"}"#,
        )
        .unwrap();
        assert_eq!(parsed.bucket, "b-1");
        assert_eq!(parsed.prefix.as_deref(), Some("prod/"));
        assert!(!parsed.allow_http);
        assert_eq!(
            parsed.secret_access_key.as_deref().map(String::as_str),
            Some("wJalrXUtnFEMI-secret")
        );
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );
        // A misspelt field is an error, not silently the default.
        assert!(
            serde_json::from_str::<S3Config>(r#"{"bucket": "b-1", "alow_http": true}"#).is_err()
        );
    }

    #[test]
    fn describes_where_without_the_secret() {
        let store = ObjectBlobStore::s3(&config()).unwrap();
        let shown = format!("{store:?} {}", store.description());
        assert!(
            shown.contains("headlock-chunks") && shown.contains("127.0.0.1:9"),
            "{shown}"
        );
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        let prefixed = ObjectBlobStore::s3(&S3Config {
            prefix: Some("prod/eu".into()),
            ..config()
        })
        .unwrap();
        assert!(
            prefixed.description().contains("under prod/eu/"),
            "{prefixed:?}"
        );
    }

    #[test]
    fn rejects_bad_configs_before_any_request() {
        let cases = [
            S3Config {
                bucket: "Upper".into(),
                ..config()
            },
            S3Config {
                bucket: "b".into(),
                ..config()
            },
            S3Config {
                prefix: Some("../x".into()),
                ..config()
            },
            S3Config {
                prefix: Some("a//b".into()),
                ..config()
            },
            S3Config {
                endpoint: Some("ftp://x".into()),
                ..config()
            },
            S3Config {
                allow_http: false,
                ..config()
            },
            S3Config {
                secret_access_key: None,
                ..config()
            },
            S3Config {
                access_key_id: None,
                ..config()
            },
        ];
        for case in cases {
            match ObjectBlobStore::s3(&case) {
                Err(BlobError::Backend { reason, .. }) => {
                    assert!(
                        reason.starts_with("configuring the S3 chunk store"),
                        "{reason}"
                    );
                    assert!(!reason.contains("wJalrXUtnFEMI"), "{reason}");
                }
                other => panic!("{case:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn recognises_complete_multipart_requests_only() {
        assert!(is_complete_multipart("POST", Some("uploadId=abc")));
        assert!(is_complete_multipart("POST", Some("x=1&uploadId=abc")));
        assert!(!is_complete_multipart("POST", Some("uploads")));
        assert!(!is_complete_multipart("POST", Some("delete")));
        assert!(!is_complete_multipart(
            "PUT",
            Some("partNumber=1&uploadId=abc")
        ));
        assert!(!is_complete_multipart("DELETE", Some("uploadId=abc")));
        assert!(!is_complete_multipart("POST", None));
        assert!(!is_complete_multipart("POST", Some("uploadIds=abc")));
    }
}
