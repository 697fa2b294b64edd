-- The audit log: every change made through the API, and every refused access
-- by a known credential, with who, from where, and the object before and
-- after (secrets reduced to hints). Written in the transaction of the change
-- it records. Ids are ULIDs, so (tenant, id) is also the order of time.

CREATE TABLE audit_log (
    tenant  TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL, -- key_… or token:<subject>
    role    TEXT    NOT NULL,
    action  TEXT    NOT NULL, -- endpoint.create, api_key.revoke, access.refused, …
    object  TEXT,             -- the id or name of the object acted on
    outcome TEXT    NOT NULL, -- done | refused
    detail  TEXT,
    source  TEXT,             -- the caller's address
    before  TEXT,             -- JSON
    after   TEXT,             -- JSON
    PRIMARY KEY (tenant, id)
);
