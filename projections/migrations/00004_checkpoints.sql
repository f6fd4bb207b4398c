-- The signed checkpoints, one at the end of each segment: what an evidence
-- bundle names as a period's start and end, and what proofs are against.
-- A view over segments, which already hold each checkpoint verbatim.

-- +goose Up
CREATE VIEW checkpoints AS
SELECT s.size,
       s.root,
       split_part(s.checkpoint, E'\n', 1) AS origin,
       s.checkpoint                        AS note,
       e.sealed_at,                        -- the sealing time of the last record it covers
       s.first                             AS segment_first
FROM segments s
JOIN events e ON e.idx = s.size - 1;

-- +goose Down
DROP VIEW checkpoints;
