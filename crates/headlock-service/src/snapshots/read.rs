//! Reading a snapshot back: its manifest, and its chunks fetched, decrypted and checked
//! (by restores, verification and compromise re-encryption).

use std::collections::HashMap;
use std::sync::Arc;

use headlock_core::model::{ChunkId, ChunkLocation, Cluster, SnapshotRecord};
use headlock_core::snapshot::frames::{
    FRAME_PREFIX_LEN, Frame, FrameReader, MANIFEST_V2_MAGIC, ManifestHeader,
};
use headlock_core::snapshot::{ChunkCipher, ChunkIdKey, MANIFEST_MAGIC, Manifest, ManifestEntry};
use headlock_core::{BlobError, BlobStore, MetadataStore, ObjectId};

use super::{manifest_path, pack_path, rekeyed_manifest_path};
use crate::error::Internal;
use crate::{Result, Service};

/// Reads, decrypts and checks chunks in manifest order (on a blocking thread).
pub(crate) struct ChunkSource {
    blobs: Arc<dyn BlobStore>,
    handle: tokio::runtime::Handle,
    cipher: Arc<ChunkCipher>,
    id_key: Arc<ChunkIdKey>,
    cluster: ObjectId,
    pub(super) locations: Arc<HashMap<ChunkId, ChunkLocation>>,
}

impl ChunkSource {
    pub(crate) fn read(&self, id: ChunkId) -> std::result::Result<Vec<u8>, String> {
        let loc = self
            .locations
            .get(&id)
            .ok_or_else(|| format!("chunk {id} is not recorded for the snapshot"))?;
        self.read_at(loc)
    }

    /// Reads, decrypts and checks chunks of one pack (`run`, in pack order, not
    /// overlapping), with one read of the blob store from the first's start to the
    /// last's end (any gap between them read and skipped): each chunk's result, in
    /// order. A failed read fails every chunk of the run.
    pub(crate) fn read_run(
        &self,
        run: &[ChunkLocation],
    ) -> Vec<std::result::Result<Vec<u8>, String>> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Vec::new();
        };
        if run.len() == 1 {
            return vec![self.read_at(first)];
        }
        let path = pack_path(self.cluster, first.pack_id);
        let (start, end) = (first.offset, last.offset + u64::from(last.length));
        let bytes = match self
            .handle
            .block_on(self.blobs.get_range(&path, start, end))
        {
            Ok(b) if b.len() as u64 == end - start => b,
            Ok(b) => {
                let why = format!(
                    "pack {}: {} bytes read of {}",
                    first.pack_id,
                    b.len(),
                    end - start
                );
                return run
                    .iter()
                    .map(|l| Err(format!("chunk {}: {why}", l.chunk_id)))
                    .collect();
            }
            Err(e) => {
                return run
                    .iter()
                    .map(|l| Err(format!("chunk {} in pack {}: {e}", l.chunk_id, l.pack_id)))
                    .collect();
            }
        };
        run.iter()
            .map(|loc| {
                let at = (loc.offset - start) as usize;
                let record = &bytes[at..at + loc.length as usize];
                self.cipher
                    .open_chunk(
                        &self.id_key,
                        self.cluster,
                        loc.stored_by,
                        loc.chunk_id,
                        record,
                    )
                    .map_err(|e| format!("chunk {} in pack {}: {e}", loc.chunk_id, loc.pack_id))
            })
            .collect()
    }

    /// Reads, decrypts and checks the chunk at `loc`.
    pub(crate) fn read_at(&self, loc: &ChunkLocation) -> std::result::Result<Vec<u8>, String> {
        let id = loc.chunk_id;
        let path = pack_path(self.cluster, loc.pack_id);
        let record = self
            .handle
            .block_on(
                self.blobs
                    .get_range(&path, loc.offset, loc.offset + u64::from(loc.length)),
            )
            .map_err(|e| format!("chunk {id} in pack {}: {e}", loc.pack_id))?;
        self.cipher
            .open_chunk(&self.id_key, self.cluster, loc.stored_by, id, &record)
            .map_err(|e| format!("chunk {id} in pack {}: {e}", loc.pack_id))
    }
}

/// Splits `locations` (sorted by pack and offset) into runs that [`ChunkSource::read_run`]
/// reads with one range each: same pack, at most `max_gap` bytes between two chunks,
/// at most `max_span` bytes from a run's start to its end (a larger chunk alone).
pub(crate) fn pack_runs(
    locations: &[ChunkLocation],
    max_gap: u64,
    max_span: u64,
) -> Vec<&[ChunkLocation]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=locations.len() {
        let ends = match (locations.get(i), locations.get(i - 1)) {
            (Some(next), Some(last)) => {
                !extends_run((&locations[start], last), next, max_gap, max_span)
            }
            _ => true,
        };
        if ends {
            runs.push(&locations[start..i]);
            start = i;
        }
    }
    runs
}

/// Whether `next` may be read with the run from `first` to `last` (one range, see
/// [`ChunkSource::read_run`]): same pack, after `last` with at most `max_gap` bytes
/// between, and at most `max_span` bytes from `first`'s start to `next`'s end.
pub(crate) fn extends_run(
    (first, last): (&ChunkLocation, &ChunkLocation),
    next: &ChunkLocation,
    max_gap: u64,
    max_span: u64,
) -> bool {
    let last_end = last.offset + u64::from(last.length);
    next.pack_id == last.pack_id
        && next.offset >= last_end
        && next.offset - last_end <= max_gap
        && next.offset + u64::from(next.length) - first.offset <= max_span
}

/// The error of a snapshot's manifest that cannot be read or does not check out.
fn manifest_damaged(snapshot: ObjectId, why: impl std::fmt::Display) -> crate::ServiceError {
    Internal::SnapshotDamaged(format!("manifest of snapshot {snapshot}: {why}")).into()
}

/// The distinct chunks some entries (a manifest frame's) name, in the order they first
/// appear.
pub(crate) fn frame_chunks(entries: &[ManifestEntry]) -> Vec<ChunkId> {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .flat_map(|e| e.chunks.iter().map(|(id, _)| *id))
        .filter(|id| seen.insert(*id))
        .collect()
}

/// The locations of `ids` (chunks of `cluster`) by chunk id; an id not stored is left
/// out.
pub(crate) async fn locations_by_id(
    store: &dyn MetadataStore,
    cluster: ObjectId,
    ids: &[ChunkId],
) -> Result<HashMap<ChunkId, ChunkLocation>> {
    let found = store.chunk_locations(cluster, ids).await?;
    Ok(found.into_iter().map(|l| (l.chunk_id, l)).collect())
}

impl Service {
    /// Gives `source` the locations of `ids` (chunks of its cluster), for
    /// [`ChunkSource::read`]; an id not stored is left out (reading it fails then).
    pub(crate) async fn locate_chunks(
        &self,
        source: &mut ChunkSource,
        ids: &[ChunkId],
    ) -> Result<()> {
        let locations = locations_by_id(self.store.as_ref(), source.cluster, ids).await?;
        source.locations = Arc::new(locations);
        Ok(())
    }

    /// A reader of a snapshot's chunks by location ([`ChunkSource::read_at`]) that
    /// holds no locations: a restore looks them up a manifest frame at a time.
    pub(crate) async fn chunk_reader(
        &self,
        cluster: &Cluster,
        record: &SnapshotRecord,
    ) -> Result<(ChunkSource, Arc<ChunkCipher>)> {
        let data_key = self.data_key_by_id(cluster, record.data_key_id).await?;
        let cipher = Arc::new(ChunkCipher::new(&data_key));
        let id_key = Arc::new(ChunkIdKey::derive(&data_key));
        drop(data_key);
        let source = ChunkSource {
            blobs: self.blobs()?.clone(),
            handle: tokio::runtime::Handle::current(),
            cipher: cipher.clone(),
            id_key,
            cluster: cluster.id,
            locations: Arc::default(),
        };
        Ok((source, cipher))
    }

    /// Where a snapshot's manifest is, and its size: the one rewritten under its data
    /// key if there is one (`<snapshot>.<data key>`), else the one its backup wrote.
    /// Asked with `size` (a HEAD), so that the usual absence of the first is not a
    /// failed read.
    async fn manifest_object(
        &self,
        cluster: ObjectId,
        record: &SnapshotRecord,
    ) -> Result<(String, u64)> {
        let snapshot = record.id;
        let blobs = self.blobs()?;
        for path in [
            rekeyed_manifest_path(cluster, snapshot, record.data_key_id),
            manifest_path(cluster, snapshot),
        ] {
            if let Some(size) = blobs
                .size(&path)
                .await
                .map_err(|e| manifest_damaged(snapshot, e))?
            {
                return Ok((path, size));
            }
        }
        Err(manifest_damaged(
            snapshot,
            BlobError::NotFound(manifest_path(cluster, snapshot)),
        ))
    }

    /// Opens a snapshot's manifest whole (see [`Self::manifest_object`] for which).
    pub(crate) async fn open_manifest(
        &self,
        cipher: &ChunkCipher,
        cluster: ObjectId,
        record: &SnapshotRecord,
    ) -> Result<Manifest> {
        let (path, _) = self.manifest_object(cluster, record).await?;
        self.open_manifest_at(cipher, cluster, record.id, &path)
            .await
    }

    /// Opens the manifest object at `path` whole, as snapshot `snapshot`'s.
    async fn open_manifest_at(
        &self,
        cipher: &ChunkCipher,
        cluster: ObjectId,
        snapshot: ObjectId,
        path: &str,
    ) -> Result<Manifest> {
        let bytes = self
            .blobs()?
            .get(path)
            .await
            .map_err(|e| manifest_damaged(snapshot, e))?;
        cipher
            .open_manifest(cluster, snapshot, &bytes)
            .map_err(|e| manifest_damaged(snapshot, e))
    }
}

/// A snapshot's manifest read a frame at a time (v2, by byte ranges of the object), or
/// whole (v1: snapshots taken before frames, opened as before and handed out in
/// batches of the same size).
pub struct ManifestStream {
    blobs: Arc<dyn BlobStore>,
    cipher: Arc<ChunkCipher>,
    snapshot: ObjectId,
    path: String,
    header: ManifestHeader,
    source: Source,
}

enum Source {
    /// v2: the next frame starts at `offset`; the object ends at `size`.
    Frames {
        reader: FrameReader,
        offset: u64,
        size: u64,
    },
    Whole(std::vec::IntoIter<ManifestEntry>),
}

impl ManifestStream {
    /// The manifest's kind and source.
    pub fn header(&self) -> &ManifestHeader {
        &self.header
    }

    fn damaged(&self, why: impl std::fmt::Display) -> crate::ServiceError {
        manifest_damaged(self.snapshot, why)
    }

    /// The next entries (one frame's), or `None` after the last; every entry checked.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<ManifestEntry>>> {
        match &mut self.source {
            Source::Whole(rest) => {
                let batch: Vec<ManifestEntry> = rest
                    .by_ref()
                    .take(headlock_core::snapshot::frames::MAX_FRAME_ENTRIES)
                    .collect();
                Ok((!batch.is_empty()).then_some(batch))
            }
            Source::Frames {
                reader,
                offset,
                size,
            } => {
                if reader.is_done() {
                    // Nothing may follow the final frame.
                    if *offset != *size {
                        return Err(self.damaged("bytes after its final frame"));
                    }
                    return Ok(None);
                }
                match self.next_frame().await? {
                    Frame::Entries(e) => Ok(Some(e)),
                    Frame::Header(_) => Err(self.damaged("a second header frame")),
                }
            }
        }
    }

    /// Reads and opens the next frame (checking the end once the final one is read).
    async fn next_frame(&mut self) -> Result<Frame> {
        let Source::Frames { offset, size, .. } = &self.source else {
            return Err(self.damaged("not a framed manifest"));
        };
        let (at, size) = (*offset, *size);
        if at + FRAME_PREFIX_LEN as u64 > size {
            return Err(self.damaged(format!("ends at byte {size}, before its final frame")));
        }
        let prefix = self
            .blobs
            .get_range(&self.path, at, at + FRAME_PREFIX_LEN as u64)
            .await
            .map_err(|e| self.damaged(format!("ends before its final frame ({e})")))?;
        let prefix: [u8; FRAME_PREFIX_LEN] = prefix
            .as_slice()
            .try_into()
            .map_err(|_| self.damaged("short read"))?;
        let len = FrameReader::frame_len(prefix).map_err(|e| self.damaged(e))?;
        if at + len as u64 > size {
            return Err(self.damaged(format!("ends at byte {size}, inside a frame")));
        }
        let frame = self
            .blobs
            .get_range(&self.path, at, at + len as u64)
            .await
            .map_err(|e| self.damaged(e))?;
        let snapshot = self.snapshot;
        let Source::Frames { reader, offset, .. } = &mut self.source else {
            unreachable!("checked above")
        };
        *offset = at + len as u64;
        let opened = reader.open(&self.cipher, &frame).and_then(|f| {
            if reader.is_done() {
                reader.finish()?;
            }
            Ok(f)
        });
        opened.map_err(|e| manifest_damaged(snapshot, e))
    }
}

impl Service {
    /// Opens a snapshot's manifest for reading a frame at a time: the one rewritten
    /// under its data key if there is one (`<snapshot>.<data key>`), else the one its
    /// backup wrote. Reads its header (a v1 manifest is opened whole here).
    pub(crate) async fn manifest_stream(
        &self,
        cipher: Arc<ChunkCipher>,
        cluster: ObjectId,
        record: &SnapshotRecord,
    ) -> Result<ManifestStream> {
        let snapshot = record.id;
        let blobs = self.blobs()?.clone();
        let (path, size) = self.manifest_object(cluster, record).await?;
        let magic = blobs
            .get_range(&path, 0, 8)
            .await
            .map_err(|e| manifest_damaged(snapshot, e))?;
        if magic.as_slice() == MANIFEST_MAGIC {
            let m = self
                .open_manifest_at(&cipher, cluster, snapshot, &path)
                .await?;
            return Ok(ManifestStream {
                blobs,
                cipher,
                snapshot,
                path,
                header: ManifestHeader {
                    version: m.version,
                    kind: m.kind,
                    source: m.source,
                },
                source: Source::Whole(m.entries.into_iter()),
            });
        }
        if magic.as_slice() != MANIFEST_V2_MAGIC {
            return Err(manifest_damaged(
                snapshot,
                "not a manifest: wrong magic bytes",
            ));
        }
        let mut stream = ManifestStream {
            blobs,
            cipher,
            snapshot,
            path,
            header: ManifestHeader {
                version: 0,
                kind: headlock_core::snapshot::ManifestKind::Tree,
                source: None,
            },
            source: Source::Frames {
                reader: FrameReader::new(cluster, snapshot),
                offset: MANIFEST_V2_MAGIC.len() as u64,
                size,
            },
        };
        match stream.next_frame().await? {
            Frame::Header(h) => stream.header = h,
            Frame::Entries(_) => return Err(manifest_damaged(snapshot, "no header frame")),
        }
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_runs_join_nearby_chunks_of_one_pack_only() {
        let (a, b) = (ObjectId::new(), ObjectId::new());
        let at = |pack, offset, length| ChunkLocation {
            cluster_id: a,
            chunk_id: ChunkId([0; 32]),
            pack_id: pack,
            offset,
            length,
            plaintext_length: length,
            stored_by: a,
        };
        let locations = [
            at(a, 8, 10),
            at(a, 18, 10),
            // 100 bytes skipped: joined (gap 100).
            at(a, 128, 10),
            // 101 bytes after: a new run.
            at(a, 239, 10),
            // Past the span of 300 from 239: a new run.
            at(a, 300, 240),
            at(b, 540, 10),
        ];
        let lens: Vec<usize> = pack_runs(&locations, 100, 300)
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(lens, [3, 1, 1, 1]);
        assert!(pack_runs(&[], 100, 300).is_empty());
    }
}
