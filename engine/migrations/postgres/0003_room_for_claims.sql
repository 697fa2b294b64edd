-- Room on every deliveries page for the row versions that claims write.
--
-- A claim sets only `lease_until`, which no index holds, so PostgreSQL can
-- write the new version on the same page without touching the table's
-- indexes (a heap-only update), provided the page has room. Packed pages
-- leave none, and every claim then adds an entry to each of the table's
-- indexes. Half-full pages make claims about four times cheaper. It applies
-- to pages written from now on. SQLite writes rows in place and needs no twin.
ALTER TABLE deliveries SET (fillfactor = 50);
