-- Batching: a subscription may send its deliveries together, as one request
-- whose body is a JSON array. The PostgreSQL twin (../postgres/0002_batching.sql)
-- is identical.

-- Captured for a batching subscription: the ordinary claim leaves it alone and
-- it leaves in a batch. Decided at capture, so a delivery never changes lanes.
ALTER TABLE deliveries ADD COLUMN batched BOOLEAN NOT NULL DEFAULT FALSE;
-- The batch whose request carried it: set when the batch is formed and kept
-- through that batch's retries, so they carry the same webhook-id and the same
-- members. A replay clears it.
ALTER TABLE deliveries ADD COLUMN batch_id TEXT;

-- Which batches are due: batched pending rows only, in the order they fall due.
CREATE INDEX deliveries_batched_due ON deliveries (next_attempt_at, seq)
    WHERE status = 'pending' AND batched;
-- Forming a subscription's next batch: its pending rows in no batch yet, in
-- capture order.
CREATE INDEX deliveries_awaiting_batch ON deliveries (tenant, subscription_id, seq)
    WHERE status = 'pending' AND batched AND batch_id IS NULL;
-- Retrying a batch: its members.
CREATE INDEX deliveries_by_batch ON deliveries (tenant, batch_id)
    WHERE batch_id IS NOT NULL;
