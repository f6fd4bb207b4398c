-- The log's Merkle tree as stored hashes (golang.org/x/mod/sumdb/tlog's
-- layout), one blob per segment, so proofs read O(log n) hashes.

-- +goose Up
CREATE TABLE tree_hashes (
    first_stored bigint PRIMARY KEY,  -- stored hash index of the blob's first hash
    hashes       bytea NOT NULL       -- 32 bytes per stored hash, in index order
);

-- +goose Down
DROP TABLE tree_hashes;
