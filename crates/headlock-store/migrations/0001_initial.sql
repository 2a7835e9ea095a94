-- Headlock metadata schema, version 1.
--
-- Written in the SQL that SQLite (3.35+) and PostgreSQL (12+) share, so that this file
-- runs unchanged on both:
--   * identifiers are TEXT: ObjectIds as 24 lowercase hex digits, KMIP uids as given;
--   * every time is BIGINT unix microseconds, UTC (columns named *_us): PostgreSQL's
--     timestamp precision, totally ordered, no text parsing, no dialect functions;
--   * there are NO binary columns: the few byte strings (wrapped data keys, HA1 digests,
--     audit hashes) are lowercase hex TEXT, which avoids BLOB versus BYTEA;
--   * lists are JSON arrays in TEXT;
--   * uniqueness rules live here as (partial) unique indexes, which both engines have.
--
-- Audit events carry no foreign keys: the history outlives the groups and clusters it
-- talks about.

CREATE TABLE project_groups (
    id         TEXT   NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    org_id     TEXT   NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE UNIQUE INDEX project_groups_name_key ON project_groups (name);
CREATE INDEX project_groups_created_idx ON project_groups (created_us, id);

-- A replica set, a whole sharded cluster, one of its shards or its config server
-- replica set. Parts point at their whole cluster through parent_cluster_id and share
-- its cluster_name, so the name is unique only among top-level records.
CREATE TABLE clusters (
    id                TEXT   NOT NULL PRIMARY KEY,
    group_id          TEXT   NOT NULL REFERENCES project_groups (id),
    cluster_name      TEXT   NOT NULL,
    type_name         TEXT   NOT NULL,
    replica_set_name  TEXT,
    shard_name        TEXT,
    parent_cluster_id TEXT   REFERENCES clusters (id),
    created_us        BIGINT NOT NULL
);
CREATE UNIQUE INDEX clusters_top_level_name_key
    ON clusters (group_id, cluster_name) WHERE parent_cluster_id IS NULL;
CREATE INDEX clusters_group_idx ON clusters (group_id, created_us, id);
CREATE INDEX clusters_parent_idx ON clusters (parent_cluster_id, created_us, id);

-- One backup config per cluster record.
CREATE TABLE backup_configs (
    cluster_id          TEXT    NOT NULL PRIMARY KEY REFERENCES clusters (id),
    group_id            TEXT    NOT NULL REFERENCES project_groups (id),
    status_name         TEXT    NOT NULL,
    encryption_enabled  BOOLEAN NOT NULL,
    storage_engine_name TEXT    NOT NULL,
    ssl_enabled         BOOLEAN NOT NULL,
    excluded_namespaces TEXT    NOT NULL, -- JSON array of strings
    included_namespaces TEXT    NOT NULL, -- JSON array of strings
    auth_mechanism_name TEXT    NOT NULL
);
CREATE INDEX backup_configs_group_idx ON backup_configs (group_id);

-- Every master key a cluster has had. generation counts 1, 2, 3... per cluster and gives
-- the history its order; the current key is the one not retired.
CREATE TABLE master_keys (
    cluster_id    TEXT   NOT NULL REFERENCES clusters (id),
    generation    BIGINT NOT NULL,
    kmip_uid      TEXT   NOT NULL,
    kmip_server   TEXT   NOT NULL,
    kmip_name     TEXT   NOT NULL,
    created_us    BIGINT NOT NULL,
    retired_us    BIGINT,
    rotation_type TEXT   NOT NULL,
    requested_by  TEXT   NOT NULL,
    PRIMARY KEY (cluster_id, generation)
);
CREATE UNIQUE INDEX master_keys_uid_key ON master_keys (cluster_id, kmip_uid);
CREATE UNIQUE INDEX master_keys_current_key ON master_keys (cluster_id) WHERE retired_us IS NULL;

-- Data keys, stored only wrapped by the cluster's current master key.
CREATE TABLE data_keys (
    id             TEXT   NOT NULL PRIMARY KEY,
    cluster_id     TEXT   NOT NULL REFERENCES clusters (id),
    wrapped_hex    TEXT   NOT NULL,
    master_key_uid TEXT   NOT NULL,
    created_us     BIGINT NOT NULL
);
CREATE INDEX data_keys_cluster_idx ON data_keys (cluster_id, created_us, id);

-- Key changes in flight: at most one per cluster.
CREATE TABLE key_intents (
    id            TEXT   NOT NULL PRIMARY KEY,
    cluster_id    TEXT   NOT NULL REFERENCES clusters (id),
    key_name      TEXT   NOT NULL,
    previous_uid  TEXT,
    new_uid       TEXT,
    phase         TEXT   NOT NULL,
    rotation_type TEXT   NOT NULL,
    requested_by  TEXT   NOT NULL,
    created_us    BIGINT NOT NULL
);
CREATE UNIQUE INDEX key_intents_cluster_key ON key_intents (cluster_id);

-- API users: digest HA1 values only, never the API key.
CREATE TABLE users (
    id               TEXT   NOT NULL PRIMARY KEY,
    username         TEXT   NOT NULL,
    ha1_md5_hex      TEXT   NOT NULL,
    ha1_sha256_hex   TEXT   NOT NULL,
    roles_json       TEXT   NOT NULL, -- [{"role": "GROUP_OWNER", "groupId": "..."}]
    access_list_json TEXT   NOT NULL, -- ["10.0.0.0/8", "192.0.2.1"]
    created_us       BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username);

-- The audit log: append-only, hash-chained. seq is the position in the chain (1, 2, ...);
-- hash = SHA-256(prev_hash || canonical encoding of the event), see src/audit.rs.
CREATE TABLE audit_events (
    seq            BIGINT NOT NULL PRIMARY KEY,
    id             TEXT   NOT NULL,
    created_us     BIGINT NOT NULL,
    event_type     TEXT   NOT NULL,
    group_id       TEXT,
    cluster_id     TEXT,
    username       TEXT,
    remote_address TEXT,
    outcome        TEXT   NOT NULL,
    old_key_uid    TEXT,
    new_key_uid    TEXT,
    detail         TEXT,
    prev_hash      TEXT   NOT NULL,
    hash           TEXT   NOT NULL
);
CREATE UNIQUE INDEX audit_events_id_key ON audit_events (id);
CREATE INDEX audit_events_group_idx ON audit_events (group_id, seq);

-- The end of the chain, one row. Appenders update it in their write transaction (on
-- PostgreSQL its row lock serialises them); verification checks that the last event is
-- the one it names, so removing events from the end is noticed too.
CREATE TABLE audit_head (
    id   BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
