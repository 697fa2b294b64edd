-- Weft's schema on PostgreSQL. The SQLite twin (../sqlite/0001_initial.sql)
-- has the same tables, columns and indexes; only the types differ: BIGINT for
-- every integer (sqlx decodes them all as i64), BYTEA for bytes, an identity
-- column for the capture sequence.
--
-- Every row belongs to a tenant and every key starts with the tenant, so no
-- lookup can reach another tenant's rows by id alone. Times are unix
-- milliseconds. Structured fields are JSON text, decoded by the store.

CREATE TABLE event_types (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    json_schema TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE endpoints (
    tenant          TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    method          TEXT    NOT NULL,
    headers         TEXT    NOT NULL, -- JSON object of name -> value
    secret          TEXT    NOT NULL,
    timeout_ms      BIGINT  NOT NULL,
    retry           TEXT    NOT NULL, -- JSON RetryPolicy
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE subscriptions (
    tenant       TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    endpoint_id  TEXT    NOT NULL,
    event_types  TEXT    NOT NULL, -- JSON array of patterns
    filter_expr  TEXT,             -- CEL
    template     TEXT,             -- JSON
    plugins      TEXT    NOT NULL, -- JSON array of PluginRef
    batching     TEXT,             -- JSON Batching
    ordering_key TEXT,             -- Jinja template
    enabled      BOOLEAN NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, endpoint_id) REFERENCES endpoints (tenant, id)
);
CREATE INDEX subscriptions_by_endpoint ON subscriptions (tenant, endpoint_id);

-- tenant NULL: a first-party plugin, visible to every tenant.
CREATE TABLE plugins (
    tenant     TEXT,
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    world      TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    bytes      BYTEA   NOT NULL,
    info       TEXT    NOT NULL, -- JSON
    created_at BIGINT  NOT NULL
);
-- NULLs are distinct in a unique index, so first-party rows get '' (never a
-- valid tenant) to make (name, version) unique among them too.
CREATE UNIQUE INDEX plugins_by_identity ON plugins (COALESCE(tenant, ''), name, version);

CREATE TABLE events (
    tenant          TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    idempotency_key TEXT,
    occurred_at     BIGINT  NOT NULL,
    received_at     BIGINT  NOT NULL,
    payload         TEXT    NOT NULL, -- JSON, as published
    metadata        TEXT    NOT NULL, -- JSON object of name -> value
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX events_by_idempotency_key ON events (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- No foreign keys to subscriptions or endpoints: the delivery history outlives
-- the configuration it was made for.
CREATE TABLE deliveries (
    -- Capture order: ordering keys and keyset pagination follow it.
    -- Identity values are never reused. Concurrent transactions may commit
    -- out of seq order; a delivery only becomes visible (captured) at commit.
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,
    endpoint_id     TEXT    NOT NULL,
    status          TEXT    NOT NULL, -- pending | succeeded | failed | dropped
    attempts        BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,            -- set while a worker holds it
    last_error      TEXT,
    ordering_key    TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (tenant, id),
    FOREIGN KEY (tenant, event_id) REFERENCES events (tenant, id)
);
-- Claiming: only pending rows, in the order they fall due.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, seq) WHERE status = 'pending';
-- Ordering: is an earlier delivery of the same key still pending?
CREATE INDEX deliveries_by_ordering_key
    ON deliveries (tenant, subscription_id, ordering_key, seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
-- The delivery history, newest first, per tenant and filter.
CREATE INDEX deliveries_by_tenant ON deliveries (tenant, seq);
CREATE INDEX deliveries_by_endpoint ON deliveries (tenant, endpoint_id, seq);
CREATE INDEX deliveries_by_subscription ON deliveries (tenant, subscription_id, seq);
CREATE INDEX deliveries_by_status ON deliveries (tenant, status, seq);
CREATE INDEX deliveries_by_event_type ON deliveries (tenant, event_type, seq);
CREATE INDEX deliveries_by_event ON deliveries (tenant, event_id);
CREATE INDEX deliveries_by_time ON deliveries (tenant, created_at);

CREATE TABLE attempts (
    tenant           TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    delivery_id      TEXT    NOT NULL,
    number           BIGINT  NOT NULL,
    started_at       BIGINT  NOT NULL,
    duration_ms      BIGINT  NOT NULL,
    request_method   TEXT    NOT NULL,
    request_url      TEXT    NOT NULL,
    request_headers  TEXT    NOT NULL, -- JSON object, secrets redacted
    response_status  BIGINT,  
    response_headers TEXT    NOT NULL, -- JSON object
    response_body    TEXT,
    error            TEXT,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, delivery_id) REFERENCES deliveries (tenant, id)
);
CREATE INDEX attempts_by_delivery ON attempts (tenant, delivery_id, number);
