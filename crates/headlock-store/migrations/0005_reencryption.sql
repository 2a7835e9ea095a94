-- Headlock metadata schema, version 5: re-encryption jobs (compromise recovery). See
-- docs/design.md, "Compromise recovery".
--
-- Same dialect rules as 0001 (the SQL SQLite 3.35+ and PostgreSQL 12+ share): ids as 24
-- hex digits in TEXT, times as BIGINT unix microseconds (*_us), sizes as BIGINT.
--
-- A job rewrites every snapshot of a cluster that is not under new_data_key_id under
-- it, one snapshot per transaction (which also counts snapshots_done and bytes_done);
-- the transaction that ends it deletes the cluster's other data keys. cluster_id has no
-- foreign key: the job's record, like an audit event, outlives the cluster (a job whose
-- cluster is gone fails).
CREATE TABLE reencryption_jobs (
    id              TEXT   NOT NULL PRIMARY KEY,
    group_id        TEXT   NOT NULL,
    cluster_id      TEXT   NOT NULL,
    new_data_key_id TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    created_us      BIGINT NOT NULL,
    finished_us     BIGINT,
    snapshots_total BIGINT NOT NULL,
    snapshots_done  BIGINT NOT NULL,
    bytes_total     BIGINT NOT NULL,
    bytes_done      BIGINT NOT NULL,
    requested_by    TEXT   NOT NULL,
    error           TEXT,
    CHECK (status IN ('RUNNING', 'FINISHED', 'FAILED')),
    CHECK (snapshots_done >= 0 AND bytes_done >= 0)
);
-- At most one running job per cluster.
CREATE UNIQUE INDEX reencryption_jobs_running_key
    ON reencryption_jobs (cluster_id) WHERE status = 'RUNNING';
CREATE INDEX reencryption_jobs_cluster_idx ON reencryption_jobs (cluster_id, created_us, id);
