-- API keys: who may call the API, for which tenant, in which role. A key is
-- shown once, when it is created; only its SHA-256 digest is kept (keys are
-- 240 random bits, so a fast digest is enough), with its last four characters
-- as a hint to tell keys apart.

CREATE TABLE api_keys (
    tenant           TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    role             TEXT    NOT NULL, -- admin | integration-admin | publisher | viewer
    key_hash         TEXT    NOT NULL, -- hex SHA-256 of the whole key
    hint             TEXT    NOT NULL,
    allowed_networks TEXT    NOT NULL, -- JSON array of CIDRs; empty: from anywhere
    ingest_per_second INTEGER,          -- publishes a second; NULL: the server's default
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    PRIMARY KEY (tenant, id)
);

CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (key_hash);
