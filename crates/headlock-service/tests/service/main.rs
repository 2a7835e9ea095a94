//! The service in-process, over what it runs on in production: the SQLite metadata
//! store, the embedded KMIP server (`kmip-server`, through `testkit::kmip`) over loopback mutual TLS, and a
//! local-directory blob store. Each test has its own temporary directory and server, so
//! they run in parallel.
//!
//! * [`rotation`]: a crash at every step of a key change, then a restarted node on the
//!   same database and KMIP server reconciles, and the end state is checked.
//! * [`compromise`]: compromise recovery to the end of its re-encryption job, also after
//!   a stop between the rotation's commit and recording the job.
//! * [`gc`]: garbage collection after a snapshot is deleted.

mod compromise;
mod gc;
mod harness;
mod rotation;
