//! The KMIP codec against the byte strings OASIS published (KMIP 1.0 specification
//! section 9.1.2, KMIP 1.0 Use Cases, KMIP 1.1 Test Cases), plus robustness and
//! round-trip properties. The vectors are copies of `shared/kmip-vectors` (see
//! `vectors/README.md`); one module per document, one inner module per section.

#[path = "vectors/captured.rs"]
mod captured;
#[path = "vectors/kmip2.rs"]
mod kmip2;
#[path = "vectors/primitives.rs"]
mod primitives;
#[path = "vectors/properties.rs"]
mod properties;
#[path = "vectors/robustness.rs"]
mod robustness;
#[path = "vectors/testcases_1_1.rs"]
mod testcases_1_1;
#[path = "vectors/usecases_1_0.rs"]
mod usecases_1_0;

use std::path::PathBuf;

use kmip::message::{RequestMessage, ResponseMessage};
use kmip::ttlv::{self, Limits};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Loads `tests/vectors/<name>.hex`: drops `#` lines, concatenates, hex-decodes.
pub fn vector(name: &str) -> Vec<u8> {
    hex_file(&vectors_dir().join(format!("{name}.hex")))
}

/// Loads a `.hex` file: drops `#` lines, concatenates, hex-decodes.
pub fn hex_file(path: &std::path::Path) -> Vec<u8> {
    let name = path.display();
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.trim().chars())
        .collect();
    hex::decode(hex).unwrap_or_else(|e| panic!("{name}: bad hex: {e}"))
}

/// Every vector file name (without `.hex`), sorted.
pub fn all_vectors() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".hex").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// The client side of a request vector: the typed request encodes to exactly the
/// published bytes; the server side: the bytes decode to exactly the typed request.
pub fn check_request(name: &str, typed: &RequestMessage) -> RequestMessage {
    let bytes = vector(name);
    assert_eq!(
        hex::encode_upper(typed.encode()),
        hex::encode_upper(&bytes),
        "{name}: encoding differs"
    );
    let decoded = RequestMessage::decode(&bytes, &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&decoded, typed, "{name}: decoding differs");
    decoded
}

/// The client side of a response vector: the bytes decode to exactly the typed
/// response; the server side: the typed response (Time Stamp and UIDs as published)
/// encodes to exactly the bytes.
pub fn check_response(name: &str, typed: &ResponseMessage) -> ResponseMessage {
    let bytes = vector(name);
    let decoded = ResponseMessage::decode(&bytes, &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&decoded, typed, "{name}: decoding differs");
    assert_eq!(
        hex::encode_upper(typed.encode()),
        hex::encode_upper(&bytes),
        "{name}: encoding differs"
    );
    decoded
}

#[test]
fn vector_copies_match_the_shared_originals() {
    // In CI the repository is cloned with `shared/` as its sibling; skip elsewhere.
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kmip-vectors");
    if !shared.is_dir() {
        eprintln!("skipped: {} not present", shared.display());
        return;
    }
    let names = all_vectors();
    assert_eq!(names.len(), 62);
    for name in names {
        let ours = std::fs::read(vectors_dir().join(format!("{name}.hex"))).unwrap();
        let theirs = std::fs::read(shared.join(format!("{name}.hex"))).unwrap();
        assert_eq!(ours, theirs, "{name}.hex differs from shared/kmip-vectors");
    }
}

#[test]
fn accepts_every_vector_as_one_ttlv_item_that_reencodes_identically() {
    for name in all_vectors() {
        let bytes = vector(&name);
        let item =
            ttlv::decode(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ttlv::encode(&item), bytes, "{name}");
        let header: [u8; 8] = bytes[..8].try_into().unwrap();
        assert_eq!(
            ttlv::message_length(&header).unwrap(),
            bytes.len(),
            "{name}"
        );
    }
}

use kmip::message::{RequestBatchItem, RequestPayload, ResponseBatchItem, ResponsePayload};
use kmip::types::{Operation, ProtocolVersion};

/// A one-item request as the vectors have them.
pub fn request(version: ProtocolVersion, payload: RequestPayload) -> RequestMessage {
    let operation = payload.operation().expect("typed payload");
    RequestMessage::new(version, vec![RequestBatchItem::new(operation, payload)])
}

/// A one-item successful response as the vectors have them.
pub fn success(
    version: ProtocolVersion,
    time_stamp: i64,
    payload: ResponsePayload,
) -> ResponseMessage {
    let operation: Operation = payload.operation().expect("typed payload");
    ResponseMessage::new(
        version,
        time_stamp,
        vec![ResponseBatchItem::success(operation, payload)],
    )
}
