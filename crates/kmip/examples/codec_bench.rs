//! Codec throughput: encodes and decodes a typical Get response (a 32-byte AES key)
//! and a Create request (AES-256, 1.4 Template-Attribute) N times each and prints
//! messages per second. With `--pykmip PYTHON` it also times PyKMIP 0.11's codec on the
//! same bytes, in the same run, and prints the ratio.
//!
//! ```text
//! cargo run --release -p kmip --example codec_bench -- [N] [--pykmip /path/to/python]
//! ```

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use kmip::attribute::Attribute;
use kmip::message::{
    CreateRequest, GetResponse, KeyBlock, ManagedObject, RequestBatchItem, RequestMessage,
    RequestPayload, ResponseBatchItem, ResponseMessage, ResponsePayload, SymmetricKey,
    TemplateAttribute,
};
use kmip::ttlv::{self, Limits};
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, NameType, ObjectType, Operation,
    ProtocolVersion,
};
use zeroize::Zeroizing;

fn get_response() -> ResponseMessage {
    ResponseMessage::new(
        ProtocolVersion::V1_4,
        1_700_000_000,
        vec![ResponseBatchItem::success(
            Operation::GET,
            ResponsePayload::Get(GetResponse {
                object_type: ObjectType::SYMMETRIC_KEY,
                unique_identifier: "6f1c3a9e-5b2d-4e8f-9a07-c4d2e1b3f5a6".into(),
                object: ManagedObject::SymmetricKey(SymmetricKey {
                    key_block: KeyBlock::raw_symmetric(
                        CryptographicAlgorithm::AES,
                        Zeroizing::new((0u8..32).collect()),
                    ),
                }),
            }),
        )],
    )
}

fn create_request() -> RequestMessage {
    RequestMessage::new(
        ProtocolVersion::V1_4,
        vec![RequestBatchItem::new(
            Operation::CREATE,
            RequestPayload::Create(CreateRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                template_attribute: TemplateAttribute::new(vec![
                    Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
                    Attribute::CryptographicLength(256),
                    Attribute::CryptographicUsageMask(
                        CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT,
                    ),
                    Attribute::Name {
                        value: "headlock/cluster-5f1e0c2a9b3d4e6f7a8b9c0d/master-1".into(),
                        name_type: NameType::UNINTERPRETED_TEXT_STRING,
                    },
                ]),
            }),
        )],
    )
}

/// Runs `f` n times and returns operations per second.
fn rate(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

const PYKMIP: &str = r#"
import sys, time
from kmip.core import enums, utils
from kmip.core.messages import messages
kind, n, data = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
cls = messages.RequestMessage if kind == "request" else messages.ResponseMessage
v = enums.KMIPVersion.KMIP_1_4
def dec():
    m = cls(); m.read(utils.BytearrayStream(data), kmip_version=v); return m
m = dec()
def enc():
    s = utils.BytearrayStream(); m.write(s, kmip_version=v); return s.buffer
# No byte-equality check: PyKMIP 0.11 pads Text Strings whose length is a multiple
# of 8 with 8 extra zero bytes (see shared/kmip-vectors/README.md).
t = time.perf_counter()
for _ in range(n): enc()
e = n / (time.perf_counter() - t)
t = time.perf_counter()
for _ in range(n): dec()
d = n / (time.perf_counter() - t)
print(e, d)
"#;

fn pykmip(python: &str, kind: &str, n: u32, bytes: &[u8]) -> Option<(f64, f64)> {
    let out = Command::new(python)
        .args(["-c", PYKMIP, kind, &n.to_string(), &hex::encode(bytes)])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "PyKMIP run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

fn main() {
    let mut n: u32 = 200_000;
    let mut python = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--pykmip" {
            python = args.next();
        } else {
            n = a.parse().expect("N must be a number");
        }
    }
    let limits = Limits::default();

    let get = get_response();
    let get_bytes = get.encode();
    let create = create_request();
    let create_bytes = create.encode();

    println!("kmip codec, {n} iterations each (release build, one core)");
    println!(
        "{:<36} {:>6} {:>14} {:>14}",
        "message", "bytes", "encode msg/s", "decode msg/s"
    );
    let mut rows = Vec::new();
    for (label, kind, bytes, enc, dec) in [
        (
            "Get response (AES-256 key)",
            "response",
            &get_bytes,
            rate(n, || {
                black_box(black_box(&get).encode());
            }),
            rate(n, || {
                black_box(ResponseMessage::decode(black_box(&get_bytes), &limits).unwrap());
            }),
        ),
        (
            "Create request (1.4, 4 attributes)",
            "request",
            &create_bytes,
            rate(n, || {
                black_box(black_box(&create).encode());
            }),
            rate(n, || {
                black_box(RequestMessage::decode(black_box(&create_bytes), &limits).unwrap());
            }),
        ),
    ] {
        println!("{label:<36} {:>6} {enc:>14.0} {dec:>14.0}", bytes.len());
        rows.push((label, kind, bytes.clone(), enc, dec));
    }
    let raw = rate(n, || {
        black_box(ttlv::decode(black_box(&get_bytes), &limits).unwrap());
    });
    println!(
        "{:<36} {:>6} {:>14} {raw:>14.0}",
        "  (Get response, TTLV layer only)",
        get_bytes.len(),
        ""
    );

    if let Some(python) = python {
        let pn = (n / 20).max(1_000);
        println!("\nPyKMIP 0.11 on the same bytes, {pn} iterations ({python})");
        for (label, kind, bytes, enc, dec) in rows {
            if let Some((pe, pd)) = pykmip(&python, kind, pn, &bytes) {
                println!(
                    "{label:<36} encode {pe:>9.0}/s ({:.0}x)  decode {pd:>9.0}/s ({:.0}x)",
                    enc / pe,
                    dec / pd
                );
            }
        }
    }
}
