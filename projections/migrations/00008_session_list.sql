-- The sessions, one row each, kept by the projector as it applies each
-- segment (in the same transaction), so that the session list pages by
-- index rather than grouping every event of the log at each request. The
-- sessions view keeps its columns and meaning: what it computed from the
-- events, this table sums segment by segment.

-- +goose Up
CREATE TABLE session_list (
    tenant        text NOT NULL,
    session_id    text NOT NULL,
    started       timestamptz NOT NULL, -- min(time) of its events
    last_seen     timestamptz NOT NULL, -- max(time)
    events        bigint NOT NULL,      -- count(*)
    seqs          bigint NOT NULL,      -- count(DISTINCT session_seq)
    last_seq      bigint,               -- max(session_seq)
    actor_subject text NOT NULL,        -- min(actor_subject)
    target_name   text,                 -- min(target_name)
    PRIMARY KEY (tenant, session_id)
);
-- The list's order (session id, then tenant) across tenants, and by actor.
CREATE INDEX session_list_order ON session_list (session_id, tenant);
CREATE INDEX session_list_actor ON session_list (actor_subject, session_id, tenant);

INSERT INTO session_list
SELECT tenant, session_id, min(time), max(time), count(*), count(DISTINCT session_seq), max(session_seq),
       min(actor_subject), min(target_name)
FROM events WHERE session_id IS NOT NULL
GROUP BY tenant, session_id;

DROP VIEW sessions;
CREATE VIEW sessions AS
SELECT tenant, session_id, started, last_seen, events, last_seq, seqs <> last_seq AS has_gaps, actor_subject, target_name
FROM session_list;

-- +goose Down
DROP VIEW sessions;
CREATE VIEW sessions AS
SELECT tenant, session_id, min(time) AS started, max(time) AS last_seen, count(*) AS events,
       max(session_seq) AS last_seq, count(DISTINCT session_seq) <> max(session_seq) AS has_gaps,
       min(actor_subject) AS actor_subject, min(target_name) AS target_name
FROM events WHERE session_id IS NOT NULL
GROUP BY tenant, session_id;
DROP TABLE session_list;
