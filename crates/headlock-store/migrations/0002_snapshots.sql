-- Headlock metadata schema, version 2: snapshots, their chunks, and restore jobs.
--
-- Same dialect rules as 0001 (the SQL SQLite 3.35+ and PostgreSQL 12+ share): ids as 24
-- hex digits and chunk ids as 64 hex digits in TEXT, times as BIGINT microseconds (*_us),
-- byte strings as hex TEXT, sizes as BIGINT.
--
-- The layouts these rows point into (packs, manifests) are in docs/design.md, "Snapshots:
-- chunks, packs and manifests".

-- Complete snapshots only: a snapshot row is written in the same transaction as its chunk
-- references, after its packs and manifest are durable.
--
-- The foreign key on cluster_id means a cluster that has snapshots (or chunks, below)
-- cannot be deleted, even by a statement that forgets to ask (the store refuses earlier,
-- with a clear error). It keeps the default action, NO ACTION, rather than RESTRICT: both
-- refuse the delete, but SQLite implements RESTRICT as a trigger whose error is not
-- reported as a foreign key violation.
-- data_key_id has no foreign key: data key rows are replaced when a rotation re-wraps
-- them, and the id is what matters.
CREATE TABLE snapshots (
    id                TEXT    NOT NULL PRIMARY KEY,
    group_id          TEXT    NOT NULL REFERENCES project_groups (id),
    cluster_id        TEXT    NOT NULL REFERENCES clusters (id),
    created_us        BIGINT  NOT NULL,
    kind              TEXT    NOT NULL, -- 'tree' | 'stream'
    data_size_bytes   BIGINT  NOT NULL,
    stored_size_bytes BIGINT  NOT NULL,
    file_size_bytes   BIGINT  NOT NULL,
    expires_us        BIGINT,
    do_not_delete     BOOLEAN NOT NULL,
    data_key_id       TEXT    NOT NULL
);
CREATE INDEX snapshots_cluster_idx ON snapshots (cluster_id, created_us, id);

-- Where each stored chunk of a cluster lives: one sealed record in one pack object
-- (packs/<cluster_id>/<pack_id>), at record_offset, record_length bytes long (its length
-- prefix included). A chunk is stored once per cluster (deduplication), so the primary key
-- is (cluster_id, chunk_id). stored_by is the snapshot whose backup wrote the record (it is
-- bound into the record's associated data); it is not a foreign key, because the chunk
-- outlives that snapshot while later snapshots use it.
CREATE TABLE chunks (
    cluster_id       TEXT   NOT NULL REFERENCES clusters (id),
    chunk_id         TEXT   NOT NULL,
    pack_id          TEXT   NOT NULL,
    record_offset    BIGINT NOT NULL,
    record_length    BIGINT NOT NULL,
    plaintext_length BIGINT NOT NULL,
    stored_by        TEXT   NOT NULL,
    PRIMARY KEY (cluster_id, chunk_id)
);
CREATE INDEX chunks_pack_idx ON chunks (cluster_id, pack_id);

-- Which chunks each snapshot uses (each distinct chunk once). The foreign key to chunks is
-- the guarantee garbage collection rests on: a reference to a chunk that is not stored can
-- never be committed, and a referenced chunk can never be deleted. The index on
-- (cluster_id, chunk_id) serves both that check and collection's "is it used?".
CREATE TABLE snapshot_chunks (
    snapshot_id TEXT NOT NULL REFERENCES snapshots (id),
    chunk_id    TEXT NOT NULL,
    cluster_id  TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, chunk_id),
    FOREIGN KEY (cluster_id, chunk_id) REFERENCES chunks (cluster_id, chunk_id)
);
CREATE INDEX snapshot_chunks_chunk_idx ON snapshot_chunks (cluster_id, chunk_id);

-- Restore jobs: a one-time download of a snapshot. Only the SHA-256 of the download token
-- is kept. snapshot_id is not a foreign key: a job's record outlives its snapshot, as in
-- Ops Manager (the download then fails); the store checks the snapshot when the job is
-- created.
CREATE TABLE restore_jobs (
    id            TEXT   NOT NULL PRIMARY KEY,
    group_id      TEXT   NOT NULL REFERENCES project_groups (id),
    cluster_id    TEXT   NOT NULL REFERENCES clusters (id),
    snapshot_id   TEXT   NOT NULL,
    created_us    BIGINT NOT NULL,
    expires_us    BIGINT NOT NULL,
    token_sha256  TEXT   NOT NULL,
    max_downloads BIGINT NOT NULL,
    downloads     BIGINT NOT NULL,
    requested_by  TEXT   NOT NULL,
    CHECK (downloads >= 0 AND downloads <= max_downloads)
);
CREATE INDEX restore_jobs_cluster_idx ON restore_jobs (cluster_id, created_us, id);
