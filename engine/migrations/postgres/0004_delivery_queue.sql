-- The delivery queue moves out of the delivery history, into a table of its
-- own. The SQLite twin (../sqlite/0004_delivery_queue.sql) is identical but
-- for the types and the fill factor.
--
-- Every index of a table that mentions a column makes an update of that
-- column rewrite the row's entry in every index of the table. The queue's
-- indexes all mention `status` (pending rows only) and `next_attempt_at`, so
-- finishing a delivery added a fresh entry to each of the history's fourteen
-- indexes: about 90 us a delivery on PostgreSQL, the largest single cost of
-- delivering. Now the queue holds the pending deliveries' scheduling state
-- under its own few indexes, and finishing deletes the queue row (successes)
-- and rewrites a history row that no index looks into: on PostgreSQL a
-- heap-only update, about 10 us all told.
--
-- The history loses its index on `status`: a status filter is applied while
-- walking another index newest first, so listing a rare status over a long
-- history reads more rows, unless an endpoint or a time range narrows it.

-- One row per pending delivery, written in the transaction that makes the
-- delivery pending (capture, retry, replay) and deleted in the one that
-- settles it. No foreign key: the store writes both rows together, and a
-- check per queued delivery would cost what this table saves.
CREATE TABLE delivery_queue (
    seq             BIGINT  PRIMARY KEY, -- the delivery's seq in deliveries
    tenant          TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,
    endpoint_id     TEXT    NOT NULL,
    ordering_key    TEXT,
    batched         BOOLEAN NOT NULL,
    batch_id        TEXT,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT             -- set while a worker holds it
) WITH (fillfactor = 50); -- claims rewrite rows in place (see migration 3)

INSERT INTO delivery_queue
    SELECT seq, tenant, subscription_id, endpoint_id, ordering_key, batched, batch_id,
           next_attempt_at, lease_until
    FROM deliveries WHERE status = 'pending';

-- Claiming: unbatched deliveries in the order they fall due.
CREATE INDEX delivery_queue_due ON delivery_queue (next_attempt_at, seq) WHERE NOT batched;
-- Ordering: is an earlier delivery of the same key still pending?
CREATE INDEX delivery_queue_by_ordering_key
    ON delivery_queue (tenant, subscription_id, ordering_key, seq)
    WHERE ordering_key IS NOT NULL;
-- Dropping a deleted subscription's deliveries.
CREATE INDEX delivery_queue_by_subscription ON delivery_queue (tenant, subscription_id, seq);
-- Batching: which batches are due, what awaits a batch, a batch's members.
CREATE INDEX delivery_queue_batched_due ON delivery_queue (next_attempt_at, seq) WHERE batched;
CREATE INDEX delivery_queue_awaiting_batch ON delivery_queue (tenant, subscription_id, seq)
    WHERE batched AND batch_id IS NULL;
CREATE INDEX delivery_queue_by_batch ON delivery_queue (tenant, batch_id)
    WHERE batch_id IS NOT NULL;

DROP INDEX deliveries_due;
DROP INDEX deliveries_by_ordering_key;
DROP INDEX deliveries_by_status;
DROP INDEX deliveries_batched_due;
DROP INDEX deliveries_awaiting_batch;
DROP INDEX deliveries_by_batch;
ALTER TABLE deliveries DROP COLUMN lease_until;
