//! KMIP (Key Management Interoperability Protocol, OASIS KMIP 1.0-1.4 and 2.0) for
//! Headlock: the wire codec, typed messages and an async mutual-TLS client. It knows
//! nothing of Headlock. The embedded server, its SQLite key store and certificate
//! generation are the `kmip-server` crate, built on this one (as Cosmian KMS splits its
//! client and server crates), so a client links no server and no SQL.
//!
//! Layers, bottom up (each module opens with its own overview):
//!
//! * [`ttlv`]: the TTLV codec, bytes to [`ttlv::Item`] trees and back, strict and
//!   bounded by [`ttlv::Limits`]; errors carry the byte offset and tag path. Its
//!   vocabulary: [`tag::Tag`] and the wire enumerations of [`types`].
//! * [`message`] and [`attribute`]: typed request and response messages, one payload
//!   type per operation, in the 1.x or 2.0 encoding picked by the protocol version.
//! * [`framing`], [`tls`], [`client`]: reading one message off a stream, the rustls
//!   configurations of mutual TLS (both sides), and the client.
//!
//! All failures are one [`error::Error`], grouped by who is at fault.
//!
//! ```
//! use kmip::attribute::Attribute;
//! use kmip::message::{CreateRequest, RequestBatchItem, RequestMessage, RequestPayload,
//!                     TemplateAttribute};
//! use kmip::ttlv::Limits;
//! use kmip::types::{CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Operation,
//!                   ProtocolVersion};
//!
//! // Create an AES-256 key, as a KMIP 1.4 client would ask for it.
//! let request = RequestMessage::new(
//!     ProtocolVersion::V1_4,
//!     vec![RequestBatchItem::new(
//!         Operation::CREATE,
//!         RequestPayload::Create(CreateRequest {
//!             object_type: ObjectType::SYMMETRIC_KEY,
//!             template_attribute: TemplateAttribute::new(vec![
//!                 Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
//!                 Attribute::CryptographicLength(256),
//!                 Attribute::CryptographicUsageMask(
//!                     CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT,
//!                 ),
//!             ]),
//!         }),
//!     )],
//! );
//! let bytes = request.encode();
//! let decoded = RequestMessage::decode(&bytes, &Limits::default()).unwrap();
//! assert_eq!(decoded, request);
//! ```

pub mod attribute;
pub mod client;
pub mod error;
pub mod framing;
pub mod message;
pub mod tag;
pub mod tls;
pub mod ttlv;
pub mod types;
