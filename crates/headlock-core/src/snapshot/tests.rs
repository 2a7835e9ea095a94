//! Tests of the snapshot format. Records are also built by hand here (with `ring` and
//! `zstd` directly, following `docs/design.md`), so the reader is tested against the
//! written layout and not only against its own writer.

use super::path::MAX_PATH_LEN;
use super::*;
use crate::envelope::{MasterKeyMaterial, WrapContext};
use rand::RngCore;

const CLUSTER: &str = "5196e5b0e4b0fca9cc88334a";
const SNAPSHOT: &str = "65f1c0de0000000000000001";

fn oid(s: &str) -> ObjectId {
    s.parse().unwrap()
}

/// A data key with the given bytes. `DataKey` has no constructor from bytes (on
/// purpose), so the test wraps the bytes per the v1 wrap format and unwraps them.
fn data_key(bytes: [u8; 32]) -> DataKey {
    let master = [7u8; 32];
    let ctx = WrapContext {
        cluster_id: CLUSTER,
        master_key_uid: "1",
    };
    let mut aad = b"headlock-dk-v1".to_vec();
    for part in [ctx.cluster_id, ctx.master_key_uid] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &master).unwrap());
    let mut body = bytes.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(aad),
        &mut body,
    )
    .unwrap();
    let mut wrapped = vec![1u8];
    wrapped.extend_from_slice(&[0; 12]);
    wrapped.extend_from_slice(&body);
    DataKey::unwrap(&wrapped, &MasterKeyMaterial::from_bytes(master), &ctx).unwrap()
}

/// The key of the known-answer tests: bytes 0, 1, ..., 31.
fn kat_key() -> DataKey {
    data_key(std::array::from_fn(|i| i as u8))
}

struct Fixture {
    raw_key: [u8; 32],
    ids: ChunkIdKey,
    cipher: ChunkCipher,
    cluster: ObjectId,
    snapshot: ObjectId,
}

fn fixture() -> Fixture {
    let mut raw_key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw_key);
    let dk = data_key(raw_key);
    Fixture {
        raw_key,
        ids: ChunkIdKey::derive(&dk),
        cipher: ChunkCipher::new(&dk),
        cluster: oid(CLUSTER),
        snapshot: oid(SNAPSHOT),
    }
}

impl Fixture {
    fn seal(&self, plaintext: &[u8]) -> (ChunkId, Vec<u8>) {
        let id = self.ids.id(plaintext);
        let record = self
            .cipher
            .seal_chunk(self.cluster, self.snapshot, id, plaintext)
            .unwrap();
        (id, record)
    }

    fn open(&self, id: ChunkId, record: &[u8]) -> Result<Vec<u8>, FormatError> {
        self.cipher
            .open_chunk(&self.ids, self.cluster, self.snapshot, id, record)
    }

    /// A record built by hand from the design text, with any flags and body.
    fn hand_record(&self, id: ChunkId, flags: u8, body: &[u8]) -> Vec<u8> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.raw_key).unwrap());
        let mut aad = b"headlock-chunk-v1".to_vec();
        aad.extend_from_slice(&self.cluster.bytes());
        aad.extend_from_slice(&id.0);
        aad.extend_from_slice(&self.snapshot.bytes());
        aad.push(flags);
        let nonce = [0x5a; 12];
        let mut ct = body.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut ct)
            .unwrap();
        let mut record = ((1 + 12 + ct.len()) as u32).to_be_bytes().to_vec();
        record.push(flags);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&ct);
        record
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// JSON-like text, the compressible half of the benchmark input.
fn json_like(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 100);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{{\"_id\": {{\"$oid\": \"5196e5b0e4b0fca9{i:08x}\"}}, \"name\": \"user{i}\", \"n\": {}}}\n",
                i * 7919 % 10007
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

// ---------------------------------------------------------------------------------------
// Known answers

/// The chunk id and a whole record, computed outside this code: the id with BLAKE3's C
/// reference implementation (portable build, `blake3_hasher_init_derive_key` then
/// `blake3_hasher_init_keyed`), the record with Python `cryptography`'s AESGCM following
/// the layout in docs/design.md. A change to the layout, the AAD or the id derivation
/// fails here. The plaintext is too short for zstd to shrink, so it is stored as is and
/// the bytes do not depend on the zstd version.
#[test]
fn accepts_known_answer_record() {
    let dk = kat_key();
    let ids = ChunkIdKey::derive(&dk);
    let cipher = ChunkCipher::new(&dk);
    let plaintext = b"headlock KAT chunk";
    let id = ids.id(plaintext);
    assert_eq!(
        id.to_string(),
        "eff613a2b598c7e36ee18507823639fde7931d362d8a0bea39dd6def2042ffee"
    );
    let nonce: [u8; 12] = std::array::from_fn(|i| 0xa0 + i as u8);
    let record = cipher
        .seal_chunk_with_nonce(oid(CLUSTER), oid(SNAPSHOT), id, plaintext, nonce)
        .unwrap();
    assert_eq!(
        hex::encode(&record),
        "0000002f00a0a1a2a3a4a5a6a7a8a9aaab8e7d1d4929a461d4422ec6872719a8ab1ec70d81a4a9afd0\
         19a7e8123618aec70354"
    );
    assert_eq!(
        cipher
            .open_chunk(&ids, oid(CLUSTER), oid(SNAPSHOT), id, &record)
            .unwrap(),
        plaintext
    );
}

/// A compressed record: flags 1, and the ciphertext opens (by hand, with the design's
/// AAD) to a zstd frame of the chunk. The frame's bytes belong to the zstd version, so
/// only the layout is pinned.
#[test]
fn accepts_compressed_record_layout() {
    let f = fixture();
    let plaintext = json_like(300_000);
    let (id, record) = f.seal(&plaintext);
    assert_eq!(record[4], 1, "flags: compressed");
    assert_eq!(
        u32::from_be_bytes(record[..4].try_into().unwrap()) as usize,
        record.len() - 4
    );
    assert!(record.len() < plaintext.len() / 2, "{} bytes", record.len());
    let mut aad = b"headlock-chunk-v1".to_vec();
    aad.extend_from_slice(&f.cluster.bytes());
    aad.extend_from_slice(&id.0);
    aad.extend_from_slice(&f.snapshot.bytes());
    aad.push(1);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &f.raw_key).unwrap());
    let nonce: [u8; 12] = record[5..17].try_into().unwrap();
    let mut body = record[17..].to_vec();
    let frame = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .unwrap();
    assert_eq!(zstd::bulk::decompress(frame, 1 << 20).unwrap(), plaintext);
}

#[test]
fn accepts_known_answer_manifest_json() {
    let m = sample_manifest();
    assert_eq!(
        String::from_utf8(m.to_json().unwrap()).unwrap(),
        concat!(
            r#"{"version":1,"kind":"tree","entries":["#,
            r#"{"path":"db","type":"dir","mode":493,"mtime":1700000000,"size":0,"chunks":[]},"#,
            r#"{"path":"db/collection-0.wt","type":"file","mode":420,"mtime":1700000001,"size":3,"#,
            r#""chunks":[["0101010101010101010101010101010101010101010101010101010101010101",1],"#,
            r#"["0202020202020202020202020202020202020202020202020202020202020202",2]]},"#,
            r#"{"path":"db/latest","type":"symlink","mode":511,"mtime":1700000002,"size":0,"#,
            r#""target":"collection-0.wt","chunks":[]}]}"#
        )
    );
}

#[test]
fn accepts_manifest_layout() {
    let f = fixture();
    let m = sample_manifest();
    let nonce = [0x33; 12];
    let sealed = f
        .cipher
        .seal_manifest_with_nonce(f.cluster, f.snapshot, &m, nonce)
        .unwrap();
    assert_eq!(&sealed[..8], b"HLMANI01");
    assert_eq!(&sealed[8..20], &nonce);
    let mut aad = b"headlock-manifest-v1".to_vec();
    aad.extend_from_slice(&f.cluster.bytes());
    aad.extend_from_slice(&f.snapshot.bytes());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &f.raw_key).unwrap());
    let mut body = sealed[20..].to_vec();
    let frame = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .unwrap();
    let json = zstd::stream::decode_all(&frame[..]).unwrap();
    assert_eq!(json, m.to_json().unwrap());
}

// ---------------------------------------------------------------------------------------
// Chunk ids

#[test]
fn accepts_ids_that_depend_on_the_data_key() {
    let a = fixture();
    let b = fixture();
    let data = b"same bytes in two clusters";
    assert_eq!(a.ids.id(data), a.ids.id(data));
    assert_ne!(a.ids.id(data), b.ids.id(data));
    assert_ne!(a.ids.id(data), a.ids.id(b"other bytes"));
    assert!(a.ids.matches(data, &a.ids.id(data)));
    assert!(!a.ids.matches(data, &b.ids.id(data)));
}

#[test]
fn accepts_debug_without_key_material() {
    let dk = data_key([0xab; 32]);
    let ids = ChunkIdKey::derive(&dk);
    let cipher = ChunkCipher::new(&dk);
    assert_eq!(format!("{ids:?}"), "ChunkIdKey(..)");
    assert_eq!(format!("{cipher:?}"), "ChunkCipher(..)");
}

// ---------------------------------------------------------------------------------------
// Records: round trips

#[test]
fn accepts_round_trip_of_compressible_chunk() {
    let f = fixture();
    let plaintext = json_like(1 << 20);
    let (id, record) = f.seal(&plaintext);
    assert_eq!(record[4], FLAG_ZSTD);
    assert!(record.len() < plaintext.len());
    assert_eq!(f.open(id, &record).unwrap(), plaintext);
}

#[test]
fn accepts_round_trip_of_random_chunk_stored_as_is() {
    let f = fixture();
    let plaintext = random_bytes(1 << 20);
    let (id, record) = f.seal(&plaintext);
    assert_eq!(record[4], 0, "incompressible: not compressed");
    assert_eq!(record.len(), plaintext.len() + RECORD_OVERHEAD);
    assert_eq!(f.open(id, &record).unwrap(), plaintext);
}

#[test]
fn accepts_round_trip_of_one_byte_and_of_max_chunk() {
    let f = fixture();
    for plaintext in [
        vec![0x42],
        random_bytes(MAX_CHUNK as usize),
        vec![0u8; MAX_CHUNK as usize],
    ] {
        let (id, record) = f.seal(&plaintext);
        assert!(record.len() <= MAX_RECORD_LEN);
        assert_eq!(f.open(id, &record).unwrap(), plaintext);
    }
}

#[test]
fn accepts_fresh_nonce_per_seal() {
    let f = fixture();
    let (_, a) = f.seal(b"twice");
    let (_, b) = f.seal(b"twice");
    assert_ne!(a[5..17], b[5..17]);
}

#[test]
fn accepts_one_cipher_shared_by_threads() {
    let f = fixture();
    let chunks: Vec<Vec<u8>> = (0..4).map(|i| json_like(100_000 + i)).collect();
    let records: Vec<(ChunkId, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks.iter().map(|c| s.spawn(|| f.seal(c))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (c, (id, record)) in chunks.iter().zip(&records) {
        assert_eq!(&f.open(*id, record).unwrap(), c);
    }
}

#[test]
fn rejects_empty_chunk() {
    let f = fixture();
    let id = f.ids.id(b"");
    let err = f
        .cipher
        .seal_chunk(f.cluster, f.snapshot, id, b"")
        .unwrap_err();
    assert!(
        matches!(err, FormatError::Invalid(ref m) if m.contains("empty")),
        "{err}"
    );
    // And a record of an empty plaintext, sealed by hand, does not open.
    let record = f.hand_record(id, 0, b"");
    assert!(f.open(id, &record).is_err());
}

#[test]
fn rejects_chunk_over_max_size() {
    let f = fixture();
    let big = vec![1u8; MAX_CHUNK as usize + 1];
    let id = f.ids.id(&big);
    assert_eq!(
        f.cipher.seal_chunk(f.cluster, f.snapshot, id, &big),
        Err(FormatError::TooLarge {
            what: "chunk",
            size: u64::from(MAX_CHUNK) + 1
        })
    );
}

// ---------------------------------------------------------------------------------------
// Records: damage and misuse

#[test]
fn rejects_every_flipped_bit_in_a_record() {
    let f = fixture();
    for plaintext in [b"a small record, stored as is".to_vec(), vec![b'z'; 200]] {
        let (id, record) = f.seal(&plaintext);
        for bit in 0..record.len() * 8 {
            let mut bad = record.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = f.open(id, &bad).unwrap_err();
            if bit < 32 {
                // The length prefix is outside the AEAD: it no longer matches the record.
                assert!(
                    matches!(
                        err,
                        FormatError::Truncated { .. }
                            | FormatError::Invalid(_)
                            | FormatError::TooLarge { .. }
                    ),
                    "bit {bit}: {err:?}"
                );
            } else {
                assert_eq!(
                    err,
                    FormatError::Authentication {
                        what: format!("chunk {id} stored by snapshot {SNAPSHOT}")
                    },
                    "bit {bit}"
                );
            }
        }
    }
}

#[test]
fn rejects_record_of_other_cluster_chunk_or_snapshot() {
    let f = fixture();
    let (id, record) = f.seal(b"bound to its cluster, id and snapshot");
    let other_id = f.ids.id(b"another chunk");
    let other = oid("5196e5b0e4b0fca9cc88334b");
    let auth = |r: Result<Vec<u8>, FormatError>| {
        assert!(
            matches!(r, Err(FormatError::Authentication { .. })),
            "{r:?}"
        )
    };
    auth(f.cipher.open_chunk(&f.ids, other, f.snapshot, id, &record));
    auth(f.cipher.open_chunk(&f.ids, f.cluster, other, id, &record));
    auth(
        f.cipher
            .open_chunk(&f.ids, f.cluster, f.snapshot, other_id, &record),
    );
    // Another cluster's data key.
    let g = fixture();
    auth(
        g.cipher
            .open_chunk(&g.ids, f.cluster, f.snapshot, id, &record),
    );
}

#[test]
fn rejects_truncated_record() {
    let f = fixture();
    let (id, record) = f.seal(&random_bytes(1000));
    let body = (record.len() - 4) as u64;
    for cut in 0..record.len() {
        let err = f.open(id, &record[..cut]).unwrap_err();
        let expected = if cut < 4 {
            FormatError::Truncated { offset: 0, need: 4 }
        } else {
            FormatError::Truncated {
                offset: 4,
                need: body,
            }
        };
        assert_eq!(err, expected, "cut at {cut}");
    }
}

#[test]
fn rejects_record_with_trailing_bytes() {
    let f = fixture();
    let (id, mut record) = f.seal(b"exactly one record");
    record.push(0);
    let err = f.open(id, &record).unwrap_err();
    assert!(
        matches!(err, FormatError::Invalid(ref m) if m.contains("length prefix")),
        "{err}"
    );
}

#[test]
fn rejects_record_length_over_bound() {
    let f = fixture();
    let mut record = vec![0xff; 64];
    record[..4].copy_from_slice(&(MAX_RECORD_LEN as u32).to_be_bytes());
    assert_eq!(
        f.open(f.ids.id(b"x"), &record),
        Err(FormatError::TooLarge {
            what: "chunk record",
            size: MAX_RECORD_LEN as u64 + 4
        })
    );
}

/// A key holder's forged record: valid AEAD over a zstd frame that declares more than
/// MAX_CHUNK. Refused before anything is allocated for it.
#[test]
fn rejects_decompression_bomb_with_declared_size() {
    let f = fixture();
    let frame = zstd::bulk::compress(&vec![0u8; MAX_CHUNK as usize + 1], 1).unwrap();
    assert!(frame.len() < 1024, "a bomb: {} bytes", frame.len());
    let id = f.ids.id(b"whatever");
    let record = f.hand_record(id, FLAG_ZSTD, &frame);
    assert_eq!(
        f.open(id, &record),
        Err(FormatError::TooLarge {
            what: "chunk",
            size: u64::from(MAX_CHUNK) + 1
        })
    );
}

/// The same bomb as a streaming frame that does not declare its size: decompression
/// stops at MAX_CHUNK.
#[test]
fn rejects_decompression_bomb_without_declared_size() {
    let f = fixture();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    std::io::Write::write_all(&mut enc, &vec![0u8; 64 << 20]).unwrap();
    let frame = enc.finish().unwrap();
    assert_eq!(
        zstd::bulk::Decompressor::upper_bound(&frame),
        None,
        "no declared size"
    );
    let id = f.ids.id(b"whatever");
    let record = f.hand_record(id, FLAG_ZSTD, &frame);
    assert_eq!(
        f.open(id, &record),
        Err(FormatError::TooLarge {
            what: "chunk",
            size: u64::from(MAX_CHUNK) + 1
        })
    );
    // Exactly MAX_CHUNK without a declared size still opens.
    let plaintext = vec![7u8; MAX_CHUNK as usize];
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    std::io::Write::write_all(&mut enc, &plaintext).unwrap();
    let frame = enc.finish().unwrap();
    let id = f.ids.id(&plaintext);
    assert_eq!(
        f.open(id, &f.hand_record(id, FLAG_ZSTD, &frame)).unwrap(),
        plaintext
    );
}

#[test]
fn rejects_plaintext_that_does_not_hash_to_its_id() {
    let f = fixture();
    let wrong = f.ids.id(b"the chunk the metadata says");
    // seal_chunk takes the caller's id as given: the AEAD is valid for `wrong`.
    let record = f
        .cipher
        .seal_chunk(f.cluster, f.snapshot, wrong, b"other bytes")
        .unwrap();
    assert_eq!(
        f.open(wrong, &record),
        Err(FormatError::IdMismatch { expected: wrong })
    );
    // Also through the compressed path.
    let record = f.hand_record(
        wrong,
        FLAG_ZSTD,
        &zstd::bulk::compress(&[9u8; 5000], 1).unwrap(),
    );
    assert_eq!(
        f.open(wrong, &record),
        Err(FormatError::IdMismatch { expected: wrong })
    );
}

#[test]
fn rejects_unknown_flags_and_corrupt_frame_under_a_valid_tag() {
    let f = fixture();
    let id = f.ids.id(b"data");
    let err = f.open(id, &f.hand_record(id, 0x02, b"data")).unwrap_err();
    assert!(
        matches!(err, FormatError::Invalid(ref m) if m.contains("flags")),
        "{err}"
    );
    let err = f
        .open(
            id,
            &f.hand_record(id, FLAG_ZSTD, b"not a zstd frame at all"),
        )
        .unwrap_err();
    assert!(matches!(err, FormatError::Decompress(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Packs

fn pack_of(records: &[Vec<u8>]) -> Vec<u8> {
    let mut pack = PACK_MAGIC.to_vec();
    for r in records {
        pack.extend_from_slice(r);
    }
    pack
}

#[test]
fn accepts_walk_over_pack_of_several_records() {
    let f = fixture();
    let chunks = [
        random_bytes(5000),
        json_like(300_000),
        b"x".to_vec(),
        random_bytes(70),
    ];
    let sealed: Vec<(ChunkId, Vec<u8>)> = chunks.iter().map(|c| f.seal(c)).collect();
    let records: Vec<Vec<u8>> = sealed.iter().map(|(_, r)| r.clone()).collect();
    let pack = pack_of(&records);
    let walked: Vec<(u64, &[u8])> = pack_records(&pack).map(Result::unwrap).collect();
    assert_eq!(walked.len(), chunks.len());
    let mut offset = 8u64;
    for (i, (at, bytes)) in walked.iter().enumerate() {
        assert_eq!(*at, offset);
        assert_eq!(*bytes, &records[i][..]);
        assert_eq!(f.open(sealed[i].0, bytes).unwrap(), chunks[i]);
        offset += bytes.len() as u64;
    }
    assert_eq!(offset, pack.len() as u64);
}

#[test]
fn accepts_pack_without_records() {
    assert_eq!(pack_records(PACK_MAGIC).count(), 0);
}

#[test]
fn rejects_truncated_pack() {
    let f = fixture();
    let records: Vec<Vec<u8>> = [random_bytes(100), random_bytes(200)]
        .iter()
        .map(|c| f.seal(c).1)
        .collect();
    let pack = pack_of(&records);
    let second = 8 + records[0].len();
    for cut in 0..pack.len() {
        let items: Vec<_> = pack_records(&pack[..cut]).collect();
        let last = items.last().cloned();
        let oks = items.iter().filter(|r| r.is_ok()).count();
        let (want_oks, want_err) = if cut < 8 {
            (0, Some(FormatError::Truncated { offset: 0, need: 8 }))
        } else if cut == 8 {
            (0, None)
        } else if cut < 12 {
            (0, Some(FormatError::Truncated { offset: 8, need: 4 }))
        } else if cut < second {
            (
                0,
                Some(FormatError::Truncated {
                    offset: 12,
                    need: records[0].len() as u64 - 4,
                }),
            )
        } else if cut == second {
            (1, None)
        } else if cut < second + 4 {
            (
                1,
                Some(FormatError::Truncated {
                    offset: second as u64,
                    need: 4,
                }),
            )
        } else {
            (
                1,
                Some(FormatError::Truncated {
                    offset: second as u64 + 4,
                    need: records[1].len() as u64 - 4,
                }),
            )
        };
        assert_eq!(oks, want_oks, "cut at {cut}");
        match want_err {
            Some(e) => assert_eq!(last, Some(Err(e)), "cut at {cut}"),
            None => assert_eq!(items.len(), oks, "cut at {cut}"),
        }
    }
    assert_eq!(pack_records(&pack).filter(Result::is_ok).count(), 2);
}

#[test]
fn rejects_pack_with_bad_magic_or_bad_length() {
    let f = fixture();
    let mut pack = pack_of(&[f.seal(b"one").1]);
    pack[7] = b'2';
    let items: Vec<_> = pack_records(&pack).collect();
    assert_eq!(items, vec![Err(FormatError::BadMagic { what: "pack" })]);
    // A length prefix below the smallest record stops the walk at its offset.
    let mut pack = pack_of(&[f.seal(b"one").1]);
    let end = pack.len();
    pack.extend_from_slice(&3u32.to_be_bytes());
    pack.extend_from_slice(&[0; 40]);
    let items: Vec<_> = pack_records(&pack).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(
        matches!(&items[1], Err(FormatError::Invalid(m)) if m.contains(&format!("byte {end}"))),
        "{:?}",
        items[1]
    );
}

// ---------------------------------------------------------------------------------------
// Manifests

fn entry(path: &str, entry_type: EntryType) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        entry_type,
        mode: 0o644,
        mtime: 0,
        size: 0,
        target: (entry_type == EntryType::Symlink).then(|| "t".to_string()),
        chunks: vec![],
        stamp: None,
    }
}

fn sample_manifest() -> Manifest {
    Manifest {
        version: 1,
        kind: ManifestKind::Tree,
        source: None,
        entries: vec![
            ManifestEntry {
                mode: 0o755,
                mtime: 1_700_000_000,
                ..entry("db", EntryType::Dir)
            },
            ManifestEntry {
                mtime: 1_700_000_001,
                size: 3,
                chunks: vec![(ChunkId([1; 32]), 1), (ChunkId([2; 32]), 2)],
                ..entry("db/collection-0.wt", EntryType::File)
            },
            ManifestEntry {
                mode: 0o777,
                mtime: 1_700_000_002,
                target: Some("collection-0.wt".into()),
                ..entry("db/latest", EntryType::Symlink)
            },
        ],
    }
}

fn tree(entries: Vec<ManifestEntry>) -> Manifest {
    Manifest {
        version: 1,
        kind: ManifestKind::Tree,
        source: None,
        entries,
    }
}

#[test]
fn accepts_manifest_round_trip() {
    let f = fixture();
    let m = sample_manifest();
    let sealed = f.cipher.seal_manifest(f.cluster, f.snapshot, &m).unwrap();
    assert_eq!(
        f.cipher
            .open_manifest(f.cluster, f.snapshot, &sealed)
            .unwrap(),
        m
    );
    // A stream, and an empty tree.
    let stream = Manifest {
        version: 1,
        kind: ManifestKind::Stream,
        source: None,
        entries: vec![ManifestEntry {
            size: 10,
            chunks: vec![(ChunkId([3; 32]), 10)],
            ..entry("archive", EntryType::File)
        }],
    };
    for m in [stream, tree(vec![])] {
        let sealed = f.cipher.seal_manifest(f.cluster, f.snapshot, &m).unwrap();
        assert_eq!(
            f.cipher
                .open_manifest(f.cluster, f.snapshot, &sealed)
                .unwrap(),
            m
        );
    }
}

#[test]
fn rejects_tampered_manifest() {
    let f = fixture();
    let sealed = f
        .cipher
        .seal_manifest(f.cluster, f.snapshot, &sample_manifest())
        .unwrap();
    let what = format!("manifest of snapshot {SNAPSHOT}");
    for bit in 0..sealed.len() * 8 {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let err = f
            .cipher
            .open_manifest(f.cluster, f.snapshot, &bad)
            .unwrap_err();
        if bit < 64 {
            assert_eq!(err, FormatError::BadMagic { what: "manifest" }, "bit {bit}");
        } else {
            assert_eq!(
                err,
                FormatError::Authentication { what: what.clone() },
                "bit {bit}"
            );
        }
    }
    let other = oid("5196e5b0e4b0fca9cc88334b");
    for (c, s) in [(other, f.snapshot), (f.cluster, other)] {
        assert!(matches!(
            f.cipher.open_manifest(c, s, &sealed),
            Err(FormatError::Authentication { .. })
        ));
    }
}

#[test]
fn rejects_truncated_manifest() {
    let f = fixture();
    let sealed = f
        .cipher
        .seal_manifest(f.cluster, f.snapshot, &sample_manifest())
        .unwrap();
    for cut in 0..sealed.len() {
        let err = f
            .cipher
            .open_manifest(f.cluster, f.snapshot, &sealed[..cut])
            .unwrap_err();
        match cut {
            0..8 => assert_eq!(err, FormatError::Truncated { offset: 0, need: 8 }, "{cut}"),
            8..36 => assert_eq!(
                err,
                FormatError::Truncated {
                    offset: 8,
                    need: 28
                },
                "{cut}"
            ),
            _ => assert!(
                matches!(err, FormatError::Authentication { .. }),
                "{cut}: {err:?}"
            ),
        }
    }
}

/// A manifest sealed by hand with the right key, for content `seal_manifest` refuses.
fn hand_manifest(f: &Fixture, zstd_body: &[u8]) -> Vec<u8> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &f.raw_key).unwrap());
    let aad = manifest_aad(f.cluster, f.snapshot);
    let mut ct = zstd_body.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([1; 12]),
        Aad::from(aad),
        &mut ct,
    )
    .unwrap();
    let mut out = MANIFEST_MAGIC.to_vec();
    out.extend_from_slice(&[1; 12]);
    out.extend_from_slice(&ct);
    out
}

#[test]
fn rejects_invalid_manifest_under_a_valid_tag() {
    let f = fixture();
    let open = |json: &str| {
        let body = zstd::bulk::compress(json.as_bytes(), 3).unwrap();
        f.cipher
            .open_manifest(f.cluster, f.snapshot, &hand_manifest(&f, &body))
    };
    let good = String::from_utf8(sample_manifest().to_json().unwrap()).unwrap();
    assert_eq!(open(&good).unwrap(), sample_manifest());
    for (json, why) in [
        ("{", "EOF"),
        (&good.replace("\"version\":1", "\"version\":2"), "version 2"),
        (&good.replace("\"db/latest\"", "\"../latest\""), "\"..\""),
        (
            &good.replace("\"kind\":\"tree\"", "\"kind\":\"tree\",\"extra\":1"),
            "unknown field",
        ),
        (&good.replace("0101010101", "010101010g"), "64 hex digits"),
        (
            &good.replace("\"type\":\"dir\"", "\"type\":\"fifo\""),
            "unknown variant",
        ),
    ] {
        let err = open(json).unwrap_err();
        assert!(
            matches!(&err, FormatError::Invalid(m) if m.contains(why) && m.contains(SNAPSHOT)),
            "{why}: {err:?}"
        );
    }
    let err = f
        .cipher
        .open_manifest(f.cluster, f.snapshot, &hand_manifest(&f, b"not zstd"))
        .unwrap_err();
    assert!(matches!(err, FormatError::Decompress(_)), "{err:?}");
}

#[test]
fn rejects_manifest_that_decompresses_past_the_limit() {
    let f = fixture();
    let json = String::from_utf8(sample_manifest().to_json().unwrap()).unwrap();
    let padded = format!("{json}{}", " ".repeat(2 << 20));
    let body = zstd::bulk::compress(padded.as_bytes(), 3).unwrap();
    let sealed = hand_manifest(&f, &body);
    // Under a 1 MiB limit (the real one is 512 MiB), the 2 MiB of JSON is refused...
    assert_eq!(
        f.cipher
            .open_manifest_bounded(f.cluster, f.snapshot, &sealed, 1 << 20),
        Err(FormatError::TooLarge {
            what: "manifest",
            size: (1 << 20) + 1
        })
    );
    // ...and accepted under the real one.
    assert_eq!(
        f.cipher
            .open_manifest(f.cluster, f.snapshot, &sealed)
            .unwrap(),
        sample_manifest()
    );
}

#[test]
fn rejects_manifest_paths_that_escape_or_repeat() {
    for path in [
        "../x", "a/../x", "a/..", "..", "/abs", "/", "", "a//b", "a/", "./a", "a/./b", "a\0b",
    ] {
        let err = tree(vec![entry(path, EntryType::Dir)])
            .validate()
            .unwrap_err();
        assert!(matches!(err, FormatError::Invalid(_)), "{path:?}");
    }
    let long = "a".repeat(MAX_PATH_LEN + 1);
    assert!(tree(vec![entry(&long, EntryType::Dir)]).validate().is_err());
    let err = tree(vec![entry("a", EntryType::Dir), entry("a", EntryType::Dir)])
        .validate()
        .unwrap_err();
    assert!(
        matches!(&err, FormatError::Invalid(m) if m.contains("duplicate")),
        "{err}"
    );
    // Accepted: dots inside names, and children listed before their parent.
    tree(vec![
        entry("a/..b/c.d", EntryType::Dir),
        entry("a/..b", EntryType::Dir),
        entry("a", EntryType::Dir),
        entry("...", EntryType::Dir),
    ])
    .validate()
    .unwrap();
}

#[test]
fn rejects_entry_below_a_symlink_or_file() {
    for parent in [EntryType::Symlink, EntryType::File] {
        let m = tree(vec![
            entry("etc/passwd", EntryType::Dir),
            entry("etc", parent),
        ]);
        let err = m.validate().unwrap_err();
        assert!(
            matches!(&err, FormatError::Invalid(m) if m.contains("not a directory")),
            "{err}"
        );
    }
}

#[test]
fn rejects_manifest_entries_that_break_type_rules() {
    let file = |size: u64, chunks: Vec<(ChunkId, u32)>| ManifestEntry {
        size,
        chunks,
        ..entry("f", EntryType::File)
    };
    let id = ChunkId([5; 32]);
    // Accepted: an empty file, and chunk lengths that add up.
    tree(vec![file(0, vec![])]).validate().unwrap();
    tree(vec![file(
        u64::from(MAX_CHUNK) + 1,
        vec![(id, MAX_CHUNK), (id, 1)],
    )])
    .validate()
    .unwrap();
    let bad = [
        file(4, vec![(id, 1), (id, 2)]),
        file(0, vec![(id, 0)]),
        file(u64::from(MAX_CHUNK) + 1, vec![(id, MAX_CHUNK + 1)]),
        ManifestEntry {
            target: Some("x".into()),
            ..file(0, vec![])
        },
        ManifestEntry {
            chunks: vec![(id, 1)],
            size: 1,
            ..entry("d", EntryType::Dir)
        },
        ManifestEntry {
            size: 1,
            ..entry("s", EntryType::Symlink)
        },
        ManifestEntry {
            target: None,
            ..entry("s", EntryType::Symlink)
        },
        ManifestEntry {
            target: Some(String::new()),
            ..entry("s", EntryType::Symlink)
        },
        ManifestEntry {
            target: Some("a\0b".into()),
            ..entry("s", EntryType::Symlink)
        },
        ManifestEntry {
            target: Some("x".into()),
            ..entry("d", EntryType::Dir)
        },
        ManifestEntry {
            mode: 0o200000,
            ..entry("d", EntryType::Dir)
        },
    ];
    for e in bad {
        assert!(tree(vec![e.clone()]).validate().is_err(), "{e:?}");
    }
    // Symlink targets may point anywhere; a restore does not follow them.
    tree(vec![ManifestEntry {
        target: Some("../../etc/hosts".into()),
        ..entry("s", EntryType::Symlink)
    }])
    .validate()
    .unwrap();
}

#[test]
fn rejects_stream_manifest_without_exactly_one_file() {
    let stream = |entries| Manifest {
        version: 1,
        kind: ManifestKind::Stream,
        source: None,
        entries,
    };
    for entries in [
        vec![],
        vec![entry("a", EntryType::File), entry("b", EntryType::File)],
        vec![entry("a", EntryType::Dir)],
    ] {
        assert!(stream(entries).validate().is_err());
    }
    stream(vec![entry("a", EntryType::File)])
        .validate()
        .unwrap();
    // seal_manifest validates too: nothing invalid is ever written.
    let f = fixture();
    assert!(matches!(
        f.cipher
            .seal_manifest(f.cluster, f.snapshot, &stream(vec![])),
        Err(FormatError::Invalid(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Manifest version 2 (frames)

use super::frames::{FRAME_PREFIX_LEN, Frame, FrameReader, MAX_FRAME_ENTRIES, ManifestWriter};

/// A tree of `n` files in directories of 100, each file one chunk.
fn big_tree(n: usize) -> Manifest {
    let mut entries = Vec::new();
    for i in 0..n {
        if i % 100 == 0 {
            entries.push(entry(&format!("d{}", i / 100), EntryType::Dir));
        }
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        entries.push(ManifestEntry {
            size: 7,
            chunks: vec![(ChunkId(id), 7)],
            stamp: Some(FileStamp {
                ctime_ns: i as i64,
                inode: i as u64,
            }),
            ..entry(&format!("d{}/f{i}", i / 100), EntryType::File)
        });
    }
    Manifest {
        version: 2,
        kind: ManifestKind::Tree,
        source: Some("/data/db".into()),
        entries,
    }
}

/// `big_tree(10_000)` sealed as a v2 manifest of `f`: five frames.
fn sealed_big_tree(f: &Fixture) -> Vec<u8> {
    f.cipher
        .seal_manifest_v2(f.cluster, f.snapshot, &big_tree(10_000))
        .unwrap()
}

/// The frames of a sealed v2 manifest (prefix included), after its magic.
fn frames_of(sealed: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&sealed[..8], b"HLMANI02");
    let mut out = Vec::new();
    let mut at = 8;
    while at < sealed.len() {
        let len = FrameReader::frame_len(sealed[at..at + 4].try_into().unwrap()).unwrap();
        out.push(sealed[at..at + len].to_vec());
        at += len;
    }
    out
}

fn join(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"HLMANI02".to_vec();
    for f in frames {
        out.extend_from_slice(f);
    }
    out
}

#[test]
fn accepts_v2_round_trip_over_several_frames_and_still_reads_v1() {
    let f = fixture();
    let m = big_tree(10_000);
    let sealed = f
        .cipher
        .seal_manifest_v2(f.cluster, f.snapshot, &m)
        .unwrap();
    let frames = frames_of(&sealed);
    // The header, then frames of at most MAX_FRAME_ENTRIES entries.
    assert_eq!(
        frames.len(),
        1 + m.entries.len().div_ceil(MAX_FRAME_ENTRIES)
    );
    assert_eq!(
        f.cipher
            .open_manifest(f.cluster, f.snapshot, &sealed)
            .unwrap(),
        m
    );
    // Frame by frame, as a streaming reader does.
    let mut reader = FrameReader::new(f.cluster, f.snapshot);
    let mut count = 0;
    for (i, frame) in frames.iter().enumerate() {
        match reader.open(&f.cipher, frame).unwrap() {
            Frame::Header(h) => {
                assert_eq!(i, 0);
                assert_eq!(h.source.as_deref(), Some("/data/db"));
            }
            Frame::Entries(e) => {
                assert!(e.len() <= MAX_FRAME_ENTRIES);
                count += e.len();
            }
        }
    }
    reader.finish().unwrap();
    assert_eq!(count, m.entries.len());
    // An empty tree and a stream.
    for m in [
        tree(vec![]),
        Manifest {
            version: 2,
            kind: ManifestKind::Stream,
            source: None,
            entries: vec![ManifestEntry {
                size: 10,
                chunks: vec![(ChunkId([3; 32]), 10)],
                ..entry("archive", EntryType::File)
            }],
        },
    ] {
        let sealed = f
            .cipher
            .seal_manifest_v2(f.cluster, f.snapshot, &m)
            .unwrap();
        let back = f
            .cipher
            .open_manifest(f.cluster, f.snapshot, &sealed)
            .unwrap();
        assert_eq!((back.kind, back.entries), (m.kind, m.entries));
    }
    // A version 1 manifest (what snapshots taken before version 2 hold) still opens.
    let v1 = sample_manifest();
    let sealed = f.cipher.seal_manifest(f.cluster, f.snapshot, &v1).unwrap();
    assert_eq!(&sealed[..8], b"HLMANI01");
    assert_eq!(
        f.cipher
            .open_manifest(f.cluster, f.snapshot, &sealed)
            .unwrap(),
        v1
    );
}

#[test]
fn rejects_v2_manifest_cut_after_any_frame_but_the_final_one() {
    let f = fixture();
    let sealed = sealed_big_tree(&f);
    let frames = frames_of(&sealed);
    for keep in 0..frames.len() {
        let err = f
            .cipher
            .open_manifest(f.cluster, f.snapshot, &join(&frames[..keep]))
            .unwrap_err();
        assert!(
            matches!(&err, FormatError::Invalid(m) if m.contains("final frame"))
                || (keep == 0 && matches!(err, FormatError::Truncated { .. })),
            "{keep} frames kept: {err:?}"
        );
    }
    // Cut inside a frame.
    let err = f
        .cipher
        .open_manifest(f.cluster, f.snapshot, &sealed[..sealed.len() - 1])
        .unwrap_err();
    assert!(matches!(err, FormatError::Truncated { .. }), "{err:?}");
}

#[test]
fn rejects_v2_frames_reordered_repeated_or_after_the_final_one() {
    let f = fixture();
    let sealed = sealed_big_tree(&f);
    let frames = frames_of(&sealed);
    assert!(frames.len() >= 4);
    let mut swapped = frames.clone();
    swapped.swap(1, 2);
    let mut repeated = frames.clone();
    repeated[2] = frames[1].clone();
    for bad in [swapped, repeated] {
        let err = f
            .cipher
            .open_manifest(f.cluster, f.snapshot, &join(&bad))
            .unwrap_err();
        assert!(matches!(err, FormatError::Authentication { .. }), "{err:?}");
    }
    let mut longer = frames.clone();
    longer.push(frames[1].clone());
    let err = f
        .cipher
        .open_manifest(f.cluster, f.snapshot, &join(&longer))
        .unwrap_err();
    assert!(
        matches!(&err, FormatError::Invalid(m) if m.contains("after its final frame")),
        "{err:?}"
    );
}

#[test]
fn rejects_v2_frame_spliced_from_another_snapshot_or_cluster() {
    let f = fixture();
    let m = big_tree(10_000);
    let sealed = f
        .cipher
        .seal_manifest_v2(f.cluster, f.snapshot, &m)
        .unwrap();
    let other = oid("5196e5b0e4b0fca9cc88334b");
    let frames = frames_of(&sealed);
    for (c, s) in [(other, f.snapshot), (f.cluster, other)] {
        // The other manifest has the same shape: its frame 2 at the same index.
        let foreign = frames_of(&f.cipher.seal_manifest_v2(c, s, &m).unwrap());
        let mut spliced = frames.clone();
        spliced[2] = foreign[2].clone();
        let err = f
            .cipher
            .open_manifest(f.cluster, f.snapshot, &join(&spliced))
            .unwrap_err();
        assert!(matches!(err, FormatError::Authentication { .. }), "{err:?}");
        // Its final frame in place of ours (same index, final flag set).
        let mut tail = frames.clone();
        let last = tail.len() - 1;
        tail[last] = foreign[last].clone();
        assert!(matches!(
            f.cipher.open_manifest(f.cluster, f.snapshot, &join(&tail)),
            Err(FormatError::Authentication { .. })
        ));
    }
}

#[test]
fn rejects_every_flipped_bit_in_a_v2_manifest() {
    let f = fixture();
    let sealed = f
        .cipher
        .seal_manifest_v2(f.cluster, f.snapshot, &sample_manifest())
        .unwrap();
    for bit in 0..sealed.len() * 8 {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            f.cipher.open_manifest(f.cluster, f.snapshot, &bad).is_err(),
            "bit {bit}"
        );
    }
}

#[test]
fn rejects_v2_entries_that_break_tree_rules_across_frames() {
    let f = fixture();
    let writer =
        || ManifestWriter::new(&f.cipher, f.cluster, f.snapshot, ManifestKind::Tree, None).unwrap();
    let filler = big_tree(5_000).entries;
    // A duplicate path, frames apart.
    let mut w = writer();
    for e in &filler {
        w.push(e).unwrap();
    }
    let err = w.push(&filler[1]).unwrap_err();
    assert!(
        matches!(&err, FormatError::Invalid(m) if m.contains("duplicate path")),
        "{err:?}"
    );
    // An entry below a file, the file first or last.
    let file = ManifestEntry {
        size: 1,
        chunks: vec![(ChunkId([9; 32]), 1)],
        ..entry("x", EntryType::File)
    };
    let below = entry("x/y/z", EntryType::Dir);
    for (first, second) in [(&file, &below), (&below, &file)] {
        let mut w = writer();
        w.push(first).unwrap();
        for e in &filler {
            w.push(e).unwrap();
        }
        let err = w.push(second).unwrap_err();
        assert!(matches!(err, FormatError::Invalid(_)), "{err:?}");
    }
    // The same paths in another order are fine: a directory after its contents.
    let mut w = writer();
    for e in filler.iter().rev() {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
    // A stream has exactly one file.
    let mut w =
        ManifestWriter::new(&f.cipher, f.cluster, f.snapshot, ManifestKind::Stream, None).unwrap();
    assert!(w.finish().is_err());
    w = ManifestWriter::new(&f.cipher, f.cluster, f.snapshot, ManifestKind::Stream, None).unwrap();
    w.push(&file).unwrap();
    assert!(
        w.push(&ManifestEntry {
            path: "y".into(),
            ..file.clone()
        })
        .is_err()
    );
    // Frame prefixes are bounded before anything is allocated for them.
    assert!(matches!(
        FrameReader::frame_len(u32::MAX.to_be_bytes()),
        Err(FormatError::TooLarge { .. })
    ));
    assert_eq!(FRAME_PREFIX_LEN, 4);
}

/// Writes a v2 tree manifest of `paths` (a file has one chunk) through the one-pass
/// checker.
fn push_v2(f: &Fixture, paths: &[(&str, EntryType)]) -> Result<(), FormatError> {
    let mut w =
        ManifestWriter::new(&f.cipher, f.cluster, f.snapshot, ManifestKind::Tree, None).unwrap();
    for (path, t) in paths {
        let e = match t {
            EntryType::File => ManifestEntry {
                size: 1,
                chunks: vec![(ChunkId([9; 32]), 1)],
                ..entry(path, EntryType::File)
            },
            t => entry(path, *t),
        };
        w.push(&e)?;
    }
    w.finish().map(|_| ())
}

#[test]
fn v2_checker_finds_a_path_whatever_its_type_and_names_the_type() {
    // The checker keeps a path's hash and type in one value whose type bits do not
    // count in lookups: a path listed twice is a duplicate whatever the two types, and
    // an entry below a non-directory names its type as `Manifest::validate` does.
    let f = fixture();
    use EntryType::{Dir, File, Symlink};
    for first in [File, Dir, Symlink] {
        for second in [File, Dir, Symlink] {
            let err = push_v2(&f, &[("p", first), ("p", second)]).unwrap_err();
            assert!(
                matches!(&err, FormatError::Invalid(m) if m.contains("duplicate path")),
                "{first:?} then {second:?}: {err:?}"
            );
        }
    }
    for parent in [File, Symlink] {
        let paths = [("etc", parent), ("etc/passwd", File)];
        let err = push_v2(&f, &paths).unwrap_err();
        let listed = tree(paths.iter().map(|(p, t)| entry(p, *t)).collect())
            .validate()
            .unwrap_err();
        let want = format!("which is a {parent:?}, not a directory");
        for e in [&err, &listed] {
            assert!(
                matches!(e, FormatError::Invalid(m) if m.contains(&want)),
                "{parent:?}: {e:?}"
            );
        }
    }
    push_v2(&f, &[("etc", Dir), ("etc/passwd", File)]).unwrap();
}

#[test]
fn rejects_v2_entries_below_a_file_in_rows_of_one_directory() {
    // The checker hashes an entry's ancestors only when its directory differs from the
    // previous entry's: rows of siblings must still meet every rule.
    let f = fixture();
    let push_all = |paths: &[(&str, EntryType)]| push_v2(&f, paths);
    use EntryType::{Dir, File, Symlink};
    // Accepted: rows of siblings, deeper and back up, a directory after its contents.
    push_all(&[
        ("a/x", File),
        ("a/y", File),
        ("a/b/x", File),
        ("a/b/y", File),
        ("a/z", File),
        ("a/b", Dir),
        ("a", Dir),
    ])
    .unwrap();
    let refused = [
        // The row's directory is a file, listed after the row.
        vec![("d/x", File), ("d/y", File), ("d/z", File), ("d", File)],
        // ... or a link listed before it, with the row in a deeper directory.
        vec![("d", Symlink), ("d/e/x", File), ("d/e/y", File)],
        // A sibling of the row is a file, and the next row is below it.
        vec![
            ("d/x", File),
            ("d/f", File),
            ("d/f/x", File),
            ("d/f/y", File),
        ],
        // Back to a directory after a deeper one, where an ancestor is a file.
        vec![("d", File), ("e/x", File), ("e/y", File), ("d/x", File)],
        // A duplicate within a row.
        vec![("d/x", File), ("d/y", File), ("d/x", File)],
    ];
    for paths in refused {
        let err = push_all(&paths).unwrap_err();
        assert!(
            matches!(&err, FormatError::Invalid(m) if m.contains("not a directory") || m.contains("duplicate path")),
            "{paths:?}: {err:?}"
        );
    }
}

/// A sink that takes `room` bytes, then fails as a full disk does.
struct FullDisk {
    room: usize,
    taken: Vec<u8>,
}

impl std::io::Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.taken.len() + buf.len() > self.room {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        self.taken.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn writes_v2_frames_to_any_writer_and_reports_its_failure() {
    let f = fixture();
    let m = big_tree(5_000);
    // Written to a sink, the bytes are those a writer into memory makes (modulo nonces):
    // the same length, and they open to the same manifest.
    let writer = |room: usize| {
        let sink = FullDisk {
            room,
            taken: Vec::new(),
        };
        ManifestWriter::to(
            sink,
            &f.cipher,
            f.cluster,
            f.snapshot,
            m.kind,
            m.source.clone(),
        )
        .unwrap()
    };
    let mut w = writer(usize::MAX);
    for e in &m.entries {
        w.push(e).unwrap();
    }
    // Counted as written, sealed frame by sealed frame (the last one at the finish).
    let written = w.sealed_len();
    let sealed = w.finish().unwrap().taken;
    assert!(written > 8 && written < sealed.len() as u64, "{written}");
    let memory = f
        .cipher
        .seal_manifest_v2(f.cluster, f.snapshot, &m)
        .unwrap();
    assert_eq!(sealed.len(), memory.len());
    assert_eq!(
        f.cipher
            .open_manifest(f.cluster, f.snapshot, &sealed)
            .unwrap()
            .entries,
        m.entries
    );
    // A sink that fills up fails the push that seals a frame, as a write error.
    let mut w = writer(1000);
    let err = m.entries.iter().find_map(|e| w.push(e).err()).unwrap();
    assert!(
        matches!(err, FormatError::Write(std::io::ErrorKind::StorageFull, _)),
        "{err:?}"
    );
}
