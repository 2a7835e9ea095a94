//! Headlock's benchmarks: programs that measure Headlock and a peer side by side in
//! one run and print both figures and their ratio (never timed tests).
//!
//! The binaries live in `src/bin/`; this library holds what they share:
//!
//! - [`http`]: a minimal HTTP/1.1 keep-alive client over one tokio `TcpStream`, so the
//!   load generator costs the same per request whichever server it measures;
//! - [`digest`]: the client side of HTTP Digest (MD5, `qop=auth`) the way curl does
//!   it on one connection: one 401 round trip for the nonce, then the nonce reused with
//!   an increasing `nc`, and a new 401 round trip when answered `stale=true`;
//! - [`stats`]: percentiles of latency samples;
//! - [`process`]: the `headlock` binary run as a child process (`users create`, and
//!   `serve` and `kmip-server` as [`daemon`]s killed on drop), and its CLI client;
//! - [`rest`]: API calls that must answer an expected status, and the usual fixture
//!   (a group, a replica set with encryption on); [`load`]: a closed-loop load of
//!   such calls over one or more servers;
//! - [`setup`]: finding the `headlock` binary, `--duration`-like flags, free space;
//! - [`dataset`]: the backup benchmark's input (a `dbpath`-like tree, half random,
//!   half JSON, from a seed) and a byte-for-byte comparison of two trees;
//! - [`trees`]: the backup benchmark's `tree` (many files, log-normal sizes, nested
//!   directories, links) and `dbpath` (large incompressible `.wt` files) inputs, and
//!   the `dbpath` change step with its undo;
//! - [`proxy`]: a TCP proxy between the CLI and the service that counts the bytes
//!   each way and can limit the link's rate;
//! - [`measure`]: one command's wall time, peak memory and CPU time (through a
//!   wrapper process), and a server's memory and CPU from `/proc`.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), bench::http::HttpError> {
//! use bench::http::Connection;
//!
//! let mut conn = Connection::connect("127.0.0.1:8080".parse().unwrap()).await?;
//! let resp = conn.send("GET", "/api/public/v1.0/groups", &[], b"").await?;
//! println!("{} ({} bytes)", resp.status, resp.body.len());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod daemon;
pub mod dataset;
pub mod digest;
pub mod http;
pub mod load;
pub mod measure;
pub mod process;
pub mod proctree;
pub mod proxy;
pub mod rest;
pub mod setup;
pub mod stats;
pub mod trees;
