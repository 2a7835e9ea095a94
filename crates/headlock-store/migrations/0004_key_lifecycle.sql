-- Headlock metadata schema, version 4: the master key lifecycle (automatic rotation,
-- the key state watch, destruction of retired keys). See docs/design.md, "Key
-- lifecycle".
--
-- Same dialect rules as 0001 (the SQL SQLite 3.35+ and PostgreSQL 12+ share): ids and
-- KMIP uids as TEXT, times as BIGINT unix microseconds (*_us), no binary columns.
-- Three tables of their own rather than columns on backup_configs and master_keys: the
-- lifecycle settings and states are written by the lifecycle jobs, never by the
-- read-modify-write of a backup config or by a key change, so neither can overwrite
-- the other.

-- The lifecycle settings of a cluster (extension fields of its backup config). A
-- cluster without a row has both off (0).
CREATE TABLE key_lifecycle (
    cluster_id                     TEXT   NOT NULL PRIMARY KEY REFERENCES clusters (id),
    rotation_period_days           BIGINT NOT NULL,
    retired_key_destroy_after_days BIGINT NOT NULL,
    CHECK (rotation_period_days >= 0 AND retired_key_destroy_after_days >= 0)
);

-- The key state watch's finding: the cluster's current key (kmip_uid) is not Active in
-- the KMIP server, or is missing there. An error about a key that is no longer current
-- (a rotation replaced it) no longer counts, so any committed rotation clears it.
CREATE TABLE key_state_errors (
    cluster_id TEXT   NOT NULL PRIMARY KEY REFERENCES clusters (id),
    kmip_uid   TEXT   NOT NULL,
    message    TEXT   NOT NULL,
    since_us   BIGINT NOT NULL
);

-- What became of a retired master key: 'DESTROYING' (claimed by the destruction job,
-- checked unreferenced in the same transaction; KMIP Destroy under way or interrupted),
-- 'DESTROYED' (KMIP Destroy done, at changed_us) or 'KEPT' (its destruction cancelled
-- for good, at changed_us). A retired key without a row is still pending.
CREATE TABLE retired_key_fates (
    cluster_id TEXT   NOT NULL REFERENCES clusters (id),
    kmip_uid   TEXT   NOT NULL,
    fate       TEXT   NOT NULL,
    changed_us BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, kmip_uid),
    CHECK (fate IN ('DESTROYING', 'DESTROYED', 'KEPT'))
);
