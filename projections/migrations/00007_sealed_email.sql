-- A sealed actor e-mail (docs/FORMAT.md §1.6) is found by the pseudonym
-- its token names (pii1.<pseudonym>.<sealed>): the API looks up, in the
-- key store, the pseudonyms of the subjects who sealed an address, and
-- asks for their events.

-- +goose Up
CREATE INDEX events_actor_email_pseudonym ON events (tenant, split_part(actor_email, '.', 2), idx) WHERE actor_email LIKE 'pii1.%';

-- +goose Down
DROP INDEX events_actor_email_pseudonym;
