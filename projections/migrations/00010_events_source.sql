-- Who the log has heard from: the console's health page lists each
-- producer (gateway, API, writer) with its newest record, per tenant in
-- the reader's scope. This index makes that a walk over the distinct
-- (producer, tenant) pairs — one index probe each — instead of a scan of
-- every event.

-- +goose Up
CREATE INDEX events_source ON events (source_kind, source_instance, tenant, idx);

-- +goose Down
DROP INDEX events_source;
