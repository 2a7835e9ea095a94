//! A snapshot's chunk rows, written the same way by a snapshot commit (`snapshots.rs`) and by
//! the switch of a snapshot to a new data key (`reencryption.rs`): the new chunks
//! checked against the chunks the snapshot uses, inserted in batches (their packs
//! first), then the snapshot's references to every pack that holds a chunk it uses.
//!
//! A statement refused for a unique or foreign key violation is diagnosed once its
//! transaction is rolled back (PostgreSQL runs nothing more in a failed one), so the
//! error names the chunk at fault; hence the writes take the transaction by value and
//! give it back when they succeed.

use std::borrow::Cow;
use std::collections::BTreeSet;

use headlock_core::model::{ChunkId, ChunkLocation};
use headlock_core::{ObjectId, StoreConflict as Conflict, StoreError};
use sqlx::error::ErrorKind;

use crate::db::{Pool, Tx, stmt};
use crate::error::{classify, ctx, is_violation};
use crate::queries as q;
use crate::rows::{bigint, id_text};

/// The chunk rows of one snapshot, checked: the chunks it uses (sorted, each once),
/// the plaintext length it lists for each (if its caller wants them checked), and the
/// new chunks it stores (sorted by id).
pub(crate) struct SnapshotChunks<'a> {
    cluster_text: String,
    snapshot_text: String,
    uses: Cow<'a, [ChunkId]>,
    lengths: Option<&'a [u32]>,
    new_chunks: Vec<&'a ChunkLocation>,
}

impl<'a> SnapshotChunks<'a> {
    /// Checks that every new chunk is of `cluster`, stored by `snapshot` and among
    /// `uses` ([`StoreError::Precondition`] naming the chunk if not). `lengths`, if not
    /// empty, are those of `uses`, which must then be sorted and distinct already.
    pub(crate) fn check(
        op: &str,
        cluster: ObjectId,
        snapshot: ObjectId,
        (uses, lengths): (&'a [ChunkId], &'a [u32]),
        new_chunks: &'a [ChunkLocation],
    ) -> Result<Self, StoreError> {
        let sorted = uses.windows(2).all(|w| w[0] < w[1]);
        let lengths = match lengths {
            [] => None,
            l if l.len() == uses.len() && sorted => Some(l),
            _ => {
                return Err(StoreError::Precondition(format!(
                    "{op}: {} lengths for {} chunks (they must be sorted and distinct)",
                    lengths.len(),
                    uses.len()
                )));
            }
        };
        // Sorted and distinct already (an upload's commit sorts them): used as they
        // are, not copied (a copy grows with the snapshot).
        let uses = if sorted {
            Cow::Borrowed(uses)
        } else {
            let mut owned = uses.to_vec();
            owned.sort_unstable();
            owned.dedup();
            Cow::Owned(owned)
        };
        for chunk in new_chunks {
            if chunk.cluster_id != cluster || chunk.stored_by != snapshot {
                return Err(StoreError::Precondition(format!(
                    "{op}: new chunk {} is of cluster {}, stored by snapshot {}",
                    chunk.chunk_id, chunk.cluster_id, chunk.stored_by
                )));
            }
            if uses.binary_search(&chunk.chunk_id).is_err() {
                return Err(StoreError::Precondition(format!(
                    "{op}: new chunk {} is not among the chunks the snapshot uses",
                    chunk.chunk_id
                )));
            }
        }
        // Inserted in chunk id order: two commits that store some of the same new chunks
        // (on PostgreSQL) then wait on the first shared one instead of deadlocking.
        let mut new_chunks: Vec<&ChunkLocation> = new_chunks.iter().collect();
        new_chunks.sort_by_key(|c| c.chunk_id);
        Ok(SnapshotChunks {
            cluster_text: id_text(cluster),
            snapshot_text: id_text(snapshot),
            uses,
            lengths,
            new_chunks,
        })
    }

    /// Inserts the new chunks in `tx`, and their packs where not recorded yet. A chunk
    /// already stored for the cluster (by another commit) rolls `tx` back and is
    /// [`Conflict::ChunkStored`] naming it.
    pub(crate) async fn insert_new(
        &self,
        mut tx: Tx,
        pool: &Pool,
        op: &str,
    ) -> Result<Tx, StoreError> {
        let packs: BTreeSet<ObjectId> = self.new_chunks.iter().map(|c| c.pack_id).collect();
        insert_packs(&mut tx, &self.cluster_text, &packs, op).await?;
        for batch in self.new_chunks.chunks(q::CHUNK_BATCH) {
            let sql = q::insert_chunks(batch.len());
            let mut insert = stmt(&sql).persistent(batch.len() == q::CHUNK_BATCH);
            for chunk in batch {
                insert = insert
                    .bind(&self.cluster_text)
                    .bind(chunk.chunk_id.to_string())
                    .bind(id_text(chunk.pack_id))
                    .bind(bigint(chunk.offset, "a chunk offset")?)
                    .bind(i64::from(chunk.length))
                    .bind(i64::from(chunk.plaintext_length))
                    .bind(&self.snapshot_text);
            }
            if let Err(e) = insert.execute(&mut tx).await {
                if is_violation(&e, ErrorKind::UniqueViolation) {
                    tx.rollback().await.ok();
                    let ids: Vec<ChunkId> = batch.iter().map(|c| c.chunk_id).collect();
                    let stored = stored_ids(pool, &self.cluster_text, &ids, op).await?;
                    let which = ids.iter().find(|id| stored.binary_search(id).is_ok());
                    return Err(match which {
                        Some(id) => Conflict::ChunkStored(*id),
                        None => Conflict::ChunkListedTwice,
                    }
                    .into());
                }
                return Err(classify(op, e));
            }
        }
        Ok(tx)
    }

    /// Inserts the snapshot's references to the packs of every chunk it uses in `tx`,
    /// each pack once, and returns the bytes of the records this snapshot stored (those
    /// of the chunks it uses whose `stored_by` is its id).
    ///
    /// A chunk it uses that is not stored for the cluster rolls `tx` back. With lengths
    /// (a client's manifest): every such chunk is looked for, and a chunk stored with
    /// another plaintext length counts as not stored, [`Conflict::ChunksNotStored`]
    /// naming the first and counting them. Without (the service's own list, where a
    /// missing chunk means garbage collection removed it meanwhile):
    /// [`StoreError::Precondition`] naming it.
    pub(crate) async fn insert_references(
        &self,
        mut tx: Tx,
        op: &str,
    ) -> Result<(Tx, u64), StoreError> {
        // Read in the transaction, after its own new chunks were inserted. On PostgreSQL
        // no collection runs meanwhile (see queries.rs), so what is found stays.
        let mut packs = BTreeSet::new();
        let mut stored = 0u64;
        let (mut first_missing, mut missing) = (None::<ChunkId>, 0u64);
        for (n, batch) in self.uses.chunks(q::CHUNK_BATCH).enumerate() {
            let lengths = self
                .lengths
                .map(|l| &l[n * q::CHUNK_BATCH..n * q::CHUNK_BATCH + batch.len()]);
            // Usually every chunk is there: a row per pack says so.
            let grouped = q::chunk_packs_grouped(batch.len(), lengths.is_some());
            let mut query = stmt(&grouped)
                .persistent(batch.len() == q::CHUNK_BATCH)
                .bind(&self.snapshot_text);
            for (i, id) in batch.iter().enumerate() {
                query = query.bind(id.to_string());
                if let Some(l) = lengths {
                    query = query.bind(i64::from(l[i]));
                }
            }
            let by_pack = query
                .bind(&self.cluster_text)
                .fetch_map(&mut tx, |row| {
                    let pack: String = row.try_get("pack_id")?;
                    let found: i64 = row.try_get("found")?;
                    let here: i64 = row.try_get("stored_here")?;
                    Ok((pack, found, here))
                })
                .await
                .map_err(ctx(op))?;
            let found: i64 = by_pack.iter().map(|(_, n, _)| n).sum();
            if usize::try_from(found).ok() == Some(batch.len()) {
                for (pack, _, here) in by_pack {
                    packs.insert(pack);
                    stored += u64::try_from(here).unwrap_or(0);
                }
                continue;
            }
            // Some are missing: which, a row a chunk.
            let sql = q::chunk_packs(batch.len());
            let mut found = with_ids(&sql, &[&self.snapshot_text, &self.cluster_text], batch)
                .fetch_map(&mut tx, |row| {
                    let chunk: String = row.try_get("chunk_id")?;
                    let pack: String = row.try_get("pack_id")?;
                    let length: i64 = row.try_get("plaintext_length")?;
                    let here: i64 = row.try_get("stored_here")?;
                    Ok((chunk, pack, length, here))
                })
                .await
                .map_err(ctx(op))?;
            found.sort_unstable();
            // Both sorted by id (hex text sorts as the bytes do): one pass.
            let mut rows = found.into_iter().peekable();
            for (i, id) in batch.iter().enumerate() {
                let text = id.to_string();
                while rows.next_if(|r| r.0 < text).is_some() {}
                let row = rows.next_if(|r| r.0 == text);
                let listed = lengths.map(|l| i64::from(l[i]));
                match row {
                    Some((_, pack, length, here)) if listed.is_none_or(|l| l == length) => {
                        packs.insert(pack);
                        stored += u64::try_from(here).unwrap_or(0);
                    }
                    _ if self.lengths.is_none() => {
                        tx.rollback().await.ok();
                        return Err(StoreError::Precondition(format!(
                            "{op}: the snapshot uses chunk {id}, which is not stored for the \
                             cluster (garbage collection removed it)"
                        )));
                    }
                    _ => {
                        first_missing.get_or_insert(*id);
                        missing += 1;
                    }
                }
            }
        }
        if let Some(first) = first_missing {
            tx.rollback().await.ok();
            return Err(Conflict::ChunksNotStored {
                first,
                count: missing,
            }
            .into());
        }
        let packs: Vec<String> = packs.into_iter().collect();
        for batch in packs.chunks(q::REFERENCE_BATCH) {
            let sql = q::insert_references(batch.len());
            let mut insert = stmt(&sql).persistent(false);
            for pack in batch {
                insert = insert
                    .bind(&self.snapshot_text)
                    .bind(&self.cluster_text)
                    .bind(pack.as_str());
            }
            // Every pack was read from a chunk row, whose foreign key says it is recorded.
            insert.execute(&mut tx).await.map_err(ctx(op))?;
        }
        Ok((tx, stored))
    }
}

/// Records `packs` of the cluster where they are not recorded yet, in `tx` (before
/// chunk rows that point into them).
pub(crate) async fn insert_packs(
    tx: &mut Tx,
    cluster_text: &str,
    packs: &BTreeSet<ObjectId>,
    op: &str,
) -> Result<(), StoreError> {
    let packs: Vec<String> = packs.iter().map(|p| id_text(*p)).collect();
    for batch in packs.chunks(q::REFERENCE_BATCH) {
        let sql = q::insert_packs_if_new(batch.len());
        let mut insert = stmt(&sql).persistent(false);
        for pack in batch {
            insert = insert.bind(cluster_text).bind(pack.as_str());
        }
        insert.execute(&mut *tx).await.map_err(ctx(op))?;
    }
    Ok(())
}

/// Which of `ids` are stored for the cluster, sorted and each once, asked [`q::CHUNK_BATCH`] at a time
/// (the statement reads only the primary key's index). Also read after a failed write was
/// rolled back (so PostgreSQL can run statements again) to name the chunk the write
/// failed on.
pub(crate) async fn stored_ids(
    pool: &Pool,
    cluster_text: &str,
    ids: &[ChunkId],
    op: &str,
) -> Result<Vec<ChunkId>, StoreError> {
    let mut stored = Vec::with_capacity(ids.len());
    for batch in ids.chunks(q::CHUNK_BATCH) {
        // Usually every one is stored (a parent snapshot's chunks) or none is (a
        // first backup's new chunks): one row says so, where the list would be a row
        // per chunk, each a hand-off from SQLite's worker thread and most of the time
        // of a parent's answer. Ids are the table's key, so a count equal to the
        // batch's length means each is there. Only a batch with some of each is asked
        // twice.
        let count = q::count_stored_chunks(batch.len());
        let found = with_ids(&count, &[cluster_text], batch)
            .fetch_i64(pool)
            .await
            .map_err(ctx(op))?;
        if usize::try_from(found).ok() == Some(batch.len()) {
            stored.extend_from_slice(batch);
            continue;
        }
        if found == 0 {
            continue;
        }
        let sql = q::stored_chunk_ids(batch.len());
        let query = with_ids(&sql, &[cluster_text], batch);
        for text in query.fetch_texts(pool).await.map_err(ctx(op))? {
            stored.push(text.parse().map_err(|_| {
                StoreError::Backend(format!(
                    "{op}: table chunks holds a chunk id that is not 64 hex digits"
                ))
            })?);
        }
    }
    stored.sort_unstable();
    stored.dedup();
    Ok(stored)
}

/// A statement of `sql` (a query over a batch of at most [`q::CHUNK_BATCH`] ids) with
/// `leading` as `$1`, `$2`, ... and the ids after them; kept prepared for full batches
/// only. (A `&String`: `stmt` takes a `&str` as a fixed statement of `queries.rs`.)
#[allow(clippy::ptr_arg)]
pub(crate) fn with_ids<'a>(
    sql: &'a String,
    leading: &[&'a str],
    ids: &[ChunkId],
) -> crate::db::Stmt<'a> {
    let mut query = stmt(sql).persistent(ids.len() == q::CHUNK_BATCH);
    for value in leading {
        query = query.bind(*value);
    }
    for id in ids {
        query = query.bind(id.to_string());
    }
    query
}
