-- The read side of one log: every sealed record as a row, the segments
-- they were read from, and the projector's position (docs/FORMAT.md). All
-- of it is rebuilt from the store by `auditledger projections rebuild`.

-- +goose Up
CREATE TABLE projection_cursor (
    name       text PRIMARY KEY,
    size       bigint NOT NULL,           -- records applied: the next index
    position   bytea NOT NULL,            -- ledger.Position: chain, compact range, rules' state
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    idx             bigint PRIMARY KEY,   -- ledger index
    leaf            bytea NOT NULL,       -- RFC 6962 leaf hash of the record
    header          bytea NOT NULL,       -- the record's bytes before the event: record = header ‖ event
    sealed_at       timestamptz NOT NULL, -- the record's time (sequenced by the ledger)
    source          bigint NOT NULL,      -- AUDIT_EVENTS stream sequence, 0 for a direct append
    id              text NOT NULL,
    type            text NOT NULL,
    time            timestamptz NOT NULL, -- when the producer observed the action
    tenant          text NOT NULL,
    source_kind     text NOT NULL,
    source_instance text NOT NULL,
    actor_issuer    text NOT NULL,
    actor_subject   text NOT NULL,
    actor_email     text,
    actor_kind      text NOT NULL,
    dev_identity    boolean NOT NULL,
    session_id      text,
    session_seq     bigint,
    target_kind     text,
    target_name     text,
    payload         jsonb,                -- NULL only when it holds \u0000, which jsonb cannot: see event
    event           text NOT NULL         -- the event exactly as sealed
);
-- Queries page by ledger index (keyset): each filter's index ends in idx.
CREATE INDEX events_tenant ON events (tenant, idx);
CREATE INDEX events_type ON events (type, idx);
CREATE INDEX events_actor ON events (actor_subject, idx);
CREATE INDEX events_actor_type ON events (actor_subject, type, idx);  -- "what did X run", at once even when X ran none
CREATE INDEX events_actor_email ON events (actor_email, idx) WHERE actor_email IS NOT NULL;
CREATE INDEX events_target ON events (target_name, idx) WHERE target_name IS NOT NULL;
CREATE INDEX events_time ON events (time);
CREATE INDEX events_session ON events (tenant, session_id, session_seq) WHERE session_id IS NOT NULL;
CREATE INDEX events_id ON events (id);
-- Actors and types are not independent (an agent runs one kind of
-- statement): tell the planner which pairs occur.
CREATE STATISTICS events_actor_type_stats (mcv) ON actor_subject, type FROM events;

CREATE TABLE segments (
    first      bigint PRIMARY KEY,
    size       bigint NOT NULL,           -- the tree size at its end
    name       text NOT NULL,
    sha256     bytea NOT NULL,            -- of the segment object
    root       bytea NOT NULL,            -- the signed root at its end
    checkpoint text NOT NULL,             -- the signed checkpoint, verbatim
    version    text,                      -- the object version read (S3), as the store reported it
    lock_mode  text,                      -- e.g. COMPLIANCE (S3 Object Lock), "read-only file" (local)
    retain_until timestamptz              -- the lock's retain-until date, when locked
);

-- Commands with their results, and the other views the API reads.
CREATE VIEW commands AS
SELECT c.idx, c.id, c.time, c.tenant, c.actor_subject, c.actor_email, c.session_id, c.session_seq,
       c.target_name, c.payload->>'statement' AS statement, c.payload->>'statement_sha256' AS statement_sha256,
       c.payload->>'kind' AS kind, d.idx AS digest_idx, d.payload->>'command_tag' AS command_tag,
       (d.payload->>'rows')::bigint AS rows, d.payload->>'sha256' AS result_sha256,
       d.payload->>'error_code' AS error_code
FROM events c
LEFT JOIN events d ON d.type = 'response.digest' AND d.payload->>'command_id' = c.id AND d.tenant = c.tenant
WHERE c.type = 'command.executed';

CREATE VIEW masks AS
SELECT idx, id, time, tenant, session_id, payload->>'command_id' AS command_id, payload->>'rule_id' AS rule_id,
       (payload->>'rule_version')::int AS rule_version, payload
FROM events WHERE type = 'mask.applied';

CREATE VIEW blocks AS
SELECT idx, id, time, tenant, actor_subject, session_id, payload->>'statement' AS statement, payload->>'rule' AS rule,
       payload->>'reason' AS reason
FROM events WHERE type = 'command.blocked';

-- One row per approval request: who asked, for which statement (its
-- digest), who decided what and when, and how long the statement waited.
CREATE VIEW approvals AS
SELECT q.idx, q.tenant, q.payload->>'approval_id' AS approval_id, q.payload->>'rule' AS rule,
       q.actor_subject AS requester, q.actor_email AS requester_email, q.session_id,
       q.payload->>'statement_sha256' AS statement_sha256, q.time AS requested_at,
       (q.payload->>'expires_at')::timestamptz AS expires_at,
       d.idx AS decision_idx, substr(d.type, 10) AS decision, d.actor_subject AS approver, d.actor_email AS approver_email,
       d.time AS decided_at, d.payload->>'reason' AS reason, d.time - q.time AS waited,
       d.actor_subject IS NOT NULL AND d.actor_subject = q.actor_subject AS self_approved
FROM events q
LEFT JOIN LATERAL (
    SELECT * FROM events d
    WHERE d.type IN ('approval.granted', 'approval.denied', 'approval.expired')
      AND d.tenant = q.tenant AND d.payload->>'approval_id' = q.payload->>'approval_id'
    ORDER BY d.idx LIMIT 1
) d ON true
WHERE q.type = 'approval.requested';

CREATE VIEW sessions AS
SELECT tenant, session_id, min(time) AS started, max(time) AS last_seen, count(*) AS events,
       max(session_seq) AS last_seq, count(DISTINCT session_seq) <> max(session_seq) AS has_gaps,
       min(actor_subject) AS actor_subject, min(target_name) AS target_name
FROM events WHERE session_id IS NOT NULL
GROUP BY tenant, session_id;

-- +goose Down
DROP VIEW sessions;
DROP VIEW approvals;
DROP VIEW blocks;
DROP VIEW masks;
DROP VIEW commands;
DROP TABLE segments;
DROP TABLE events;
DROP TABLE projection_cursor;
