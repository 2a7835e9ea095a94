-- Headlock metadata schema, version 3: what several nodes on one database share.
--
-- Same dialect rules as 0001 (the SQL SQLite 3.35+ and PostgreSQL 12+ share): names as
-- TEXT, times as BIGINT unix microseconds (*_us), byte strings as hex TEXT.

-- Leases: a named, time-limited claim of one node on a piece of work (see
-- headlock-service's lease module). A lease is taken or renewed by one
-- INSERT ... ON CONFLICT DO UPDATE ... WHERE statement, so that two nodes can never both
-- hold it; an expired row stays until someone takes the name again.
CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_us BIGINT NOT NULL
);

-- Secrets every node must share (HMAC keys of digest nonces and restore links): the
-- first node to start writes its candidate, every node reads the row. They are as
-- sensitive as the digest HA1 values in users.
CREATE TABLE shared_secrets (
    name       TEXT   NOT NULL PRIMARY KEY,
    value_hex  TEXT   NOT NULL,
    created_us BIGINT NOT NULL
);
