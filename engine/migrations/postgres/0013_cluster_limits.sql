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

-- Admits one request of delivery p_carrier to an endpoint under its own
-- limits, for the whole cluster, in one round trip: the endpoint's pacing row
-- is locked only while this runs. Each statement inside sees what committed
-- before it, so the count taken under the lock includes every admission
-- made before the lock was granted. The rate limit is a generic cell rate:
-- p_period_us between requests, a burst of p_burst; a request it refuses
-- gets a turn of its own, a period after the last turn given. Answers
-- whether the request is admitted, and if not, for which limit ('rate' or
-- 'concurrency'), in how many microseconds it may be tried again, and for
-- how long no request will be admitted.
CREATE FUNCTION weft_admit_to_endpoint(
    p_tenant TEXT,
    p_endpoint TEXT,
    p_carrier TEXT,
    p_now_us BIGINT,
    p_max_concurrency BIGINT,  -- NULL: no concurrency limit
    p_period_us BIGINT,        -- NULL: no rate limit
    p_burst BIGINT
) RETURNS TABLE (admitted BOOLEAN, refused_by TEXT, retry_in_us BIGINT, held_for_us BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    pacing endpoint_pacing%ROWTYPE;
    carrier_seq BIGINT;
    in_flight BIGINT;
    base BIGINT;
    earliest BIGINT;
    turn BIGINT;
BEGIN
    -- Losing the last admissions to a database crash costs at most a burst
    -- past the rate: not worth waiting for the disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Written even when unchanged: the row's lock is what admissions to the
    -- endpoint take turns on.
    INSERT INTO endpoint_pacing (tenant, endpoint_id, next_free_us, last_turn_us)
        VALUES (p_tenant, p_endpoint, 0, 0)
        ON CONFLICT (tenant, endpoint_id)
        DO UPDATE SET next_free_us = endpoint_pacing.next_free_us
        RETURNING * INTO pacing;
    SELECT seq INTO carrier_seq FROM deliveries WHERE tenant = p_tenant AND id = p_carrier;
    IF p_max_concurrency IS NOT NULL THEN
        SELECT count(*) INTO in_flight FROM delivery_queue
            WHERE tenant = p_tenant AND endpoint_id = p_endpoint AND sending
              AND lease_until > p_now_us / 1000 AND seq IS DISTINCT FROM carrier_seq;
        IF in_flight >= p_max_concurrency THEN
            RETURN QUERY SELECT FALSE, 'concurrency'::TEXT, 0::BIGINT, 0::BIGINT;
            RETURN;
        END IF;
    END IF;
    IF p_period_us IS NOT NULL THEN
        base := greatest(pacing.next_free_us, p_now_us);
        -- A full burst may go at once: the next request is early by at most
        -- the rest of the burst.
        earliest := base - p_period_us * (greatest(p_burst, 1) - 1);
        IF earliest > p_now_us THEN
            turn := greatest(pacing.last_turn_us + p_period_us, earliest);
            UPDATE endpoint_pacing SET last_turn_us = turn
                WHERE tenant = p_tenant AND endpoint_id = p_endpoint;
            RETURN QUERY SELECT FALSE, 'rate'::TEXT, turn - p_now_us, earliest - p_now_us;
            RETURN;
        END IF;
        UPDATE endpoint_pacing SET next_free_us = base + p_period_us
            WHERE tenant = p_tenant AND endpoint_id = p_endpoint;
    END IF;
    IF p_max_concurrency IS NOT NULL THEN
        UPDATE delivery_queue SET sending = TRUE WHERE seq = carrier_seq;
    END IF;
    RETURN QUERY SELECT TRUE, NULL::TEXT, 0::BIGINT, 0::BIGINT;
END
$$;
