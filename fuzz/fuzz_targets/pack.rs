//! Arbitrary bytes through the pack walker (`snapshot::pack_records`) and the sealed
//! chunk record decoder (`ChunkCipher::open_chunk`, fixed key).
//!
//! Besides "never panics": the walker's records tile the pack from byte 8 on, back to
//! back, each at its offset, at most `MAX_RECORD_LEN` long and carrying a length prefix
//! equal to its length; it stops at the first error and yields nothing after it. No
//! record of the input opens (the fuzzer cannot forge a GCM tag; one that opened would
//! be a finding). Then the round trip: the input's bytes as a chunk (at most
//! `MAX_CHUNK`), sealed with the fixed key into a one-record pack, walk back to that one
//! record, which opens to the same bytes, and only under the same cluster, snapshot and
//! chunk id.

#![no_main]

use headlock_core::ObjectId;
use headlock_core::envelope::DataKey;
use headlock_core::snapshot::{
    ChunkCipher, ChunkIdKey, MAX_CHUNK, MAX_RECORD_LEN, PACK_MAGIC, pack_records,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = DataKey::from_bytes([0x42; 32]);
    let (cipher, ids) = (ChunkCipher::new(&key), ChunkIdKey::derive(&key));
    let (cluster, snapshot) = (ObjectId::from_bytes([1; 12]), ObjectId::from_bytes([2; 12]));

    let mut next = PACK_MAGIC.len() as u64;
    let mut failed = false;
    for item in pack_records(data) {
        assert!(!failed, "a record after an error");
        match item {
            Ok((offset, record)) => {
                assert_eq!(offset, next, "records are not back to back");
                assert!(record.len() <= MAX_RECORD_LEN, "record over the limit");
                let end = offset as usize + record.len();
                assert_eq!(&data[offset as usize..end], record);
                let prefix = u32::from_be_bytes(record[..4].try_into().unwrap());
                assert_eq!(prefix as usize + 4, record.len(), "length prefix");
                next = end as u64;
                let id = ids.id(&record[4..]);
                assert!(
                    cipher
                        .open_chunk(&ids, cluster, snapshot, id, record)
                        .is_err(),
                    "a record the fuzzer made opened"
                );
            }
            Err(_) => failed = true,
        }
    }
    if !failed {
        assert_eq!(
            next as usize,
            data.len(),
            "the walk ended before the pack did"
        );
    }

    let chunk = &data[..data.len().min(MAX_CHUNK as usize)];
    if chunk.is_empty() {
        return;
    }
    let id = ids.id(chunk);
    let record = cipher
        .seal_chunk(cluster, snapshot, id, chunk)
        .expect("a chunk seals");
    let mut pack = PACK_MAGIC.to_vec();
    pack.extend_from_slice(&record);
    let walked: Vec<_> = pack_records(&pack).collect();
    assert_eq!(walked, [Ok((8, &record[..]))], "one record, whole");
    let opened = cipher
        .open_chunk(&ids, cluster, snapshot, id, &record)
        .expect("a sealed chunk opens");
    assert_eq!(opened, chunk, "seal/open round trip");
    assert!(
        cipher
            .open_chunk(&ids, snapshot, cluster, id, &record)
            .is_err()
    );
    let other = ids.id(b"another chunk");
    assert!(
        cipher
            .open_chunk(&ids, cluster, snapshot, other, &record)
            .is_err()
    );
});
