-- Keyed search digests (docs/FORMAT.md §1.5): each value the recording
-- rule replaced is recorded as HMAC-SHA-256 under its tenant's search
-- key, in the payload's "redacted" member ("matches"). One row per event,
-- digest and place, so "which events recorded this value?" is answered by
-- the index on (tenant, digest) without reading the events. Rebuilt with
-- the events by `auditledger projections rebuild`.

-- +goose Up
CREATE TABLE event_matches (
    tenant   text NOT NULL,               -- the event's tenant: whose key made the digest
    digest   text NOT NULL,               -- "hmac:" and 64 hex digits
    idx      bigint NOT NULL,             -- the event's ledger index (events.idx)
    path     text NOT NULL,               -- where in the payload (JSON Pointer)
    detector text NOT NULL,               -- which detector found the value
    PRIMARY KEY (idx, path, detector, digest)
);
CREATE INDEX event_matches_digest ON event_matches (tenant, digest, idx);

-- +goose Down
DROP TABLE event_matches;
