-- An endpoint's own limits (its rate limit and max_concurrency) hold for every
-- node of a database together, not for each node (see store/admission.rs).

-- Set on a queued delivery while it is admitted under its endpoint's
-- concurrency limit and its lease runs: the deliveries an endpoint has in
-- flight in the whole cluster are these. Requeuing or settling the delivery
-- clears it; a lease that runs out (its node died) stops counting by itself.
ALTER TABLE delivery_queue ADD COLUMN sending BOOLEAN NOT NULL DEFAULT FALSE;
-- Only endpoints with a concurrency limit of their own mark deliveries, so
-- the index stays as small as what is in flight to them.
CREATE INDEX delivery_queue_sending ON delivery_queue (tenant, endpoint_id) WHERE sending;

-- One row per endpoint with a limit of its own that was ever admitted to: the
-- rate limit as a generic cell rate (the time the next request may go, in
-- microseconds) and the last turn given to a request it refused. Admissions
-- to one endpoint take turns on its row lock.
CREATE TABLE endpoint_pacing (
    tenant       TEXT   NOT NULL,
    endpoint_id  TEXT   NOT NULL,
    next_free_us BIGINT NOT NULL,
    last_turn_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, endpoint_id)
);
