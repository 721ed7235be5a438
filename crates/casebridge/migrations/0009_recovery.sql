-- Recovery (issue "When things go wrong"): an admin retries a dead job or
-- delivery, or recovers every dead one since a time. Portable SQL, as 0001.
--
-- attempts counts every attempt ever made (the attempt log agrees); the
-- schedule restarts at a retry, from attempts_before, the count then.
-- retried_at is when an admin last queued the item again: a job gives up
-- that long after it, not after its creation.
ALTER TABLE jobs ADD COLUMN attempts_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN retried_at BIGINT;
ALTER TABLE deliveries ADD COLUMN attempts_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN retried_at BIGINT;
-- A conversation's items go out one at a time. A retried item comes back
-- before later ones that may be running; the claim waits for them through
-- these (small: claimed items only).
CREATE INDEX jobs_running ON jobs (org_id, conversation_id) WHERE state = 'running';
CREATE INDEX deliveries_sending ON deliveries (org_id, conversation_id) WHERE state = 'delivering';
