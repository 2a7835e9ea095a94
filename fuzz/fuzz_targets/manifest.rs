//! Arbitrary bytes through the manifest decoders. The first byte picks the form:
//!
//! - even: the rest is manifest JSON: `serde_json` into `Manifest`, then
//!   `Manifest::validate`. A valid manifest must re-encode canonically (its JSON parses
//!   back to the same manifest, and encoding that gives the same bytes again) and must
//!   survive sealing and opening with a fixed key unchanged; this is also what drives
//!   the opened-manifest path (decompression, JSON, validation) past the AEAD tag, which
//!   a fuzzer cannot forge.
//! - odd: the rest is a sealed manifest object, opened with a fixed key: magic, length
//!   and tag checks must refuse it without panicking; should it ever open, it must be a
//!   valid manifest that round-trips through sealing.

#![no_main]

use headlock_core::ObjectId;
use headlock_core::envelope::DataKey;
use headlock_core::snapshot::{ChunkCipher, Manifest};
use libfuzzer_sys::fuzz_target;

/// The fixed key, cluster and snapshot of every sealed manifest here.
fn fixed() -> (ChunkCipher, ObjectId, ObjectId) {
    let cipher = ChunkCipher::new(&DataKey::from_bytes([0x42; 32]));
    (
        cipher,
        ObjectId::from_bytes([1; 12]),
        ObjectId::from_bytes([2; 12]),
    )
}

fn round_trips(m: &Manifest) {
    let json = serde_json::to_vec(m).expect("a manifest encodes");
    let back: Manifest = serde_json::from_slice(&json).expect("its own JSON parses");
    assert_eq!(&back, m, "JSON round trip");
    assert_eq!(
        serde_json::to_vec(&back).unwrap(),
        json,
        "JSON is not canonical"
    );

    let (cipher, cluster, snapshot) = fixed();
    let sealed = cipher
        .seal_manifest(cluster, snapshot, m)
        .expect("a valid manifest seals");
    let opened = cipher
        .open_manifest(cluster, snapshot, &sealed)
        .expect("a sealed manifest opens");
    assert_eq!(&opened, m, "seal/open round trip");
    assert!(
        cipher.open_manifest(snapshot, cluster, &sealed).is_err(),
        "a manifest opened under another cluster and snapshot"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Ok(m) = serde_json::from_slice::<Manifest>(rest) else {
            return;
        };
        if m.validate().is_ok() {
            round_trips(&m);
        }
    } else {
        let (cipher, cluster, snapshot) = fixed();
        if let Ok(m) = cipher.open_manifest(cluster, snapshot, rest) {
            m.validate().expect("an opened manifest is valid");
            round_trips(&m);
        }
    }
});
