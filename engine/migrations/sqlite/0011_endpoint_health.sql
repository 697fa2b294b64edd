-- Endpoint health. Each endpoint gets a circuit breaker's settings (JSON; the
-- defaults when NULL) and a circuit, shared by every node of the database; each
-- request made to it is counted per minute and latency bucket for a day.
-- Deliveries of a disabled endpoint are kept as 'skipped', to be recovered.

ALTER TABLE endpoints ADD COLUMN circuit_breaker TEXT;

-- One row per endpoint that was ever attempted. Written with the outcomes
-- that change it, in their transaction.
CREATE TABLE endpoint_circuits (
    tenant               TEXT    NOT NULL,
    endpoint_id          TEXT    NOT NULL,
    state                TEXT    NOT NULL, -- closed | open | half_open
    consecutive_failures BIGINT  NOT NULL,
    opened_times         BIGINT  NOT NULL,
    opened_at            BIGINT,
    probe_at             BIGINT,
    probe_delivery       TEXT,
    probe_until          BIGINT,
    failing_since        BIGINT,
    last_success_at      BIGINT,
    last_failure         TEXT,             -- JSON LastFailure
    updated_at           BIGINT  NOT NULL,
    PRIMARY KEY (tenant, endpoint_id)
);
-- Circuits that are not closed: the few the workers watch.
CREATE INDEX endpoint_circuits_not_closed ON endpoint_circuits (probe_at)
    WHERE state <> 'closed';

-- Deliveries parked until their endpoint's circuit closes (due at
-- model::PARKED): only those are in this index, so it costs capture nothing.
CREATE INDEX delivery_queue_parked ON delivery_queue (tenant, endpoint_id, seq)
    WHERE next_attempt_at = 253402300799998;

-- Requests per endpoint, minute and latency bucket (see engine/src/health).
CREATE TABLE endpoint_stats (
    tenant      TEXT    NOT NULL,
    endpoint_id TEXT    NOT NULL,
    minute      BIGINT  NOT NULL,
    bucket      BIGINT  NOT NULL,
    successes   BIGINT  NOT NULL,
    failures    BIGINT  NOT NULL,
    PRIMARY KEY (tenant, endpoint_id, minute, bucket)
);
-- Pruning tallies older than a day.
CREATE INDEX endpoint_stats_by_minute ON endpoint_stats (minute);
