//! The vocabulary of Headlock: what every other crate agrees on.
//!
//! | module | what it holds |
//! |---|---|
//! | [`id`] | [`ObjectId`], the 24-hex-digit identifiers of the Ops Manager API |
//! | [`model`] | groups, clusters, backup configs, master and data key records, users, audit events |
//! | [`store`] | one trait per aggregate the service persists (groups, keys, lifecycle, re-encryption, snapshots, audit, leases, users) and [`MetadataStore`], all of them (SQL lives in `headlock-store`) |
//! | [`keys`] | [`KeyManager`], what the service needs of a KMIP server (the `kmip` crate implements the wire side) |
//! | [`blob`] | [`BlobStore`], where packs and manifests live |
//! | [`envelope`] | data keys and their wrapping under a master key (AES-256-GCM, `ring`) |
//! | [`snapshot`] | the snapshot format: chunk ids, sealed chunk records, packs, manifests (`docs/design.md`); [`snapshot::path`], the path rules of tree snapshots |
//!
//! Nothing here does I/O. The crate sits at the bottom of the layering described in
//! `docs/design.md`: `api -> service -> core`, `store -> core`.
//!
//! ```
//! use headlock_core::envelope::{DataKey, MasterKeyMaterial, WrapContext};
//! let master = MasterKeyMaterial::from_bytes([7u8; 32]);
//! let data_key = DataKey::generate().unwrap();
//! let ctx = WrapContext { cluster_id: "5196e5b0e4b0fca9cc88334a", master_key_uid: "1" };
//! let wrapped = data_key.wrap(&master, &ctx).unwrap();
//! let back = DataKey::unwrap(&wrapped, &master, &ctx).unwrap();
//! assert_eq!(back.expose(), data_key.expose());
//! ```
#![deny(missing_docs)]

pub mod blob;
pub mod env;
pub mod envelope;
pub mod id;
pub mod keys;
pub mod model;
pub mod snapshot;
pub mod store;

pub use blob::{BlobError, BlobStore};
pub use id::ObjectId;
pub use keys::{KeyManager, KeyManagerError, KmipUid, ServerProbe};
pub use store::{Conflict as StoreConflict, Lease, MetadataStore, StoreError};
