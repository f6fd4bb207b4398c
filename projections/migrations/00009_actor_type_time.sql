-- "What did X run since T" of the tenants in scope: events_actor_type
-- keeps its order (actor, type, then ledger index, for the keyset) and
-- also holds each entry's tenant and time, so the scan tests those on the
-- index entry instead of fetching every row of the actor's before T (on
-- 1M events, p95 165 ms before, docs/PERFORMANCE.md).

-- +goose Up
DROP INDEX events_actor_type;
CREATE INDEX events_actor_type ON events (actor_subject, type, idx, tenant, time);

-- +goose Down
DROP INDEX events_actor_type;
CREATE INDEX events_actor_type ON events (actor_subject, type, idx);
