-- Headlock metadata schema, version 6: a snapshot refers to the packs it uses, no longer
-- to each of its chunks.
--
-- Same dialect rules as 0001 (the SQL SQLite 3.35+ and PostgreSQL 12+ share).
--
-- Why: version 2 kept a row per chunk per snapshot (snapshot_chunks). A backup of a
-- million small files that changed nothing still wrote a million rows (about 490 bytes
-- each with their two indexes: 488 MiB per snapshot), and its commit spent its time
-- inserting them. A snapshot's packs are what garbage collection deletes, so they are
-- what a snapshot needs to hold on to: a pack is deleted when no snapshot uses a chunk
-- of it, exactly as before, and the rows per snapshot are now one per pack (a pack holds
-- up to thousands of chunks). Which chunks a snapshot uses is in its manifest.
--
-- What changes for the chunk records: a chunk no snapshot uses any more stays recorded
-- as long as its pack is kept for other chunks (its bytes stayed in the pack before
-- too; now a later backup can use it again instead of storing it twice).

-- Every pack a chunk record points into. Recorded before its chunks (the foreign key
-- below), deleted with them by garbage collection.
CREATE TABLE packs (
    cluster_id TEXT NOT NULL REFERENCES clusters (id),
    pack_id    TEXT NOT NULL,
    PRIMARY KEY (cluster_id, pack_id)
);
INSERT INTO packs (cluster_id, pack_id) SELECT DISTINCT cluster_id, pack_id FROM chunks;

-- Which packs each snapshot uses (a pack that holds at least one chunk it uses). The
-- foreign key to packs is the guarantee garbage collection rests on, as the one to
-- chunks was: a reference to a pack that is not recorded can never be committed, and a
-- referenced pack can never be deleted. The index on (cluster_id, pack_id) serves both
-- that check and collection's "is it used?".
CREATE TABLE snapshot_packs (
    snapshot_id TEXT NOT NULL REFERENCES snapshots (id),
    cluster_id  TEXT NOT NULL,
    pack_id     TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, pack_id),
    FOREIGN KEY (cluster_id, pack_id) REFERENCES packs (cluster_id, pack_id)
);
CREATE INDEX snapshot_packs_pack_idx ON snapshot_packs (cluster_id, pack_id);
INSERT INTO snapshot_packs (snapshot_id, cluster_id, pack_id)
    SELECT DISTINCT r.snapshot_id, r.cluster_id, c.pack_id
    FROM snapshot_chunks r
    JOIN chunks c ON c.cluster_id = r.cluster_id AND c.chunk_id = r.chunk_id;
DROP TABLE snapshot_chunks;

-- chunks again, with a foreign key to its pack (SQLite cannot add one to a table: the
-- table is rebuilt, the same way on both).
CREATE TABLE chunks_v6 (
    cluster_id       TEXT   NOT NULL REFERENCES clusters (id),
    chunk_id         TEXT   NOT NULL,
    pack_id          TEXT   NOT NULL,
    record_offset    BIGINT NOT NULL,
    record_length    BIGINT NOT NULL,
    plaintext_length BIGINT NOT NULL,
    stored_by        TEXT   NOT NULL,
    PRIMARY KEY (cluster_id, chunk_id),
    FOREIGN KEY (cluster_id, pack_id) REFERENCES packs (cluster_id, pack_id)
);
INSERT INTO chunks_v6 (cluster_id, chunk_id, pack_id, record_offset, record_length,
                       plaintext_length, stored_by)
    SELECT cluster_id, chunk_id, pack_id, record_offset, record_length, plaintext_length,
           stored_by
    FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_v6 RENAME TO chunks;
-- A pack's chunk records: garbage collection deletes them with the pack.
CREATE INDEX chunks_pack_idx ON chunks (cluster_id, pack_id);
