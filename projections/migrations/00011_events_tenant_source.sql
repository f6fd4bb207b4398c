-- The producers heard from are read per tenant of the reader's scope, and
-- a bound on how many are read must count only those tenants' producers
-- (another tenant's many producers must not push them out). With the
-- tenant first, the walk over one tenant's distinct (kind, instance) is
-- one index probe each, whatever the other tenants hold.

-- +goose Up
DROP INDEX events_source;
CREATE INDEX events_tenant_source ON events (tenant, source_kind, source_instance, idx);

-- +goose Down
DROP INDEX events_tenant_source;
CREATE INDEX events_source ON events (source_kind, source_instance, tenant, idx);
