-- History retention. A tenant may keep its history (events, deliveries,
-- attempts, audit entries) for another number of days than the server's
-- default; NULL keeps the default.

CREATE TABLE tenant_settings (
    tenant                 TEXT    NOT NULL PRIMARY KEY,
    history_retention_days BIGINT,
    updated_at             BIGINT  NOT NULL
);

-- Pruning walks a tenant's events and deliveries from the oldest, a chunk at
-- a time, resuming after the last row of the chunk before: each index ends
-- with the row's key so that a position in it is exact. (Client-chosen event
-- ids do not sort by time, hence an index on the capture time.)
CREATE INDEX events_by_time ON events (tenant, received_at, id);
DROP INDEX deliveries_by_time;
CREATE INDEX deliveries_by_time ON deliveries (tenant, created_at, seq);
