-- The full verifications the projector runs on the store (at start and on
-- a schedule): GET /v1/verify/status reads the newest.

-- +goose Up
CREATE TABLE verifications (
    id       bigserial PRIMARY KEY,
    started  timestamptz NOT NULL,
    finished timestamptz NOT NULL,
    ok       boolean NOT NULL,
    size     bigint NOT NULL,        -- records verified (0 when it failed early)
    root     bytea,                  -- the root at that size
    gaps     int NOT NULL,           -- gap records found (reported, and failing ok)
    error    text                    -- why it failed
);

-- +goose Down
DROP TABLE verifications;
