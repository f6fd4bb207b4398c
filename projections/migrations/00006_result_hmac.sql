-- A result's digest is keyed under its tenant's search key (docs/FORMAT.md
-- §1.5): response.digest records it as "hmac". Records written before
-- that carry an unkeyed "sha256", and are read as they are.

-- +goose Up
DROP VIEW commands;
CREATE VIEW commands AS
SELECT c.idx, c.id, c.time, c.tenant, c.actor_subject, c.actor_email, c.session_id, c.session_seq,
       c.target_name, c.payload->>'statement' AS statement, c.payload->>'statement_sha256' AS statement_sha256,
       c.payload->>'kind' AS kind, d.idx AS digest_idx, d.payload->>'command_tag' AS command_tag,
       (d.payload->>'rows')::bigint AS rows, coalesce(d.payload->>'hmac', d.payload->>'sha256') AS result_digest,
       d.payload->>'error_code' AS error_code
FROM events c
LEFT JOIN events d ON d.type = 'response.digest' AND d.payload->>'command_id' = c.id AND d.tenant = c.tenant
WHERE c.type = 'command.executed';

-- +goose Down
DROP VIEW commands;
CREATE VIEW commands AS
SELECT c.idx, c.id, c.time, c.tenant, c.actor_subject, c.actor_email, c.session_id, c.session_seq,
       c.target_name, c.payload->>'statement' AS statement, c.payload->>'statement_sha256' AS statement_sha256,
       c.payload->>'kind' AS kind, d.idx AS digest_idx, d.payload->>'command_tag' AS command_tag,
       (d.payload->>'rows')::bigint AS rows, d.payload->>'sha256' AS result_sha256,
       d.payload->>'error_code' AS error_code
FROM events c
LEFT JOIN events d ON d.type = 'response.digest' AND d.payload->>'command_id' = c.id AND d.tenant = c.tenant
WHERE c.type = 'command.executed';
