-- Running for years: retention, erasure and a cost per message that does not
-- grow with history. Portable SQL, as 0001.

-- The open part of each conversation's queue. The claim ("no earlier
-- unfinished job in this conversation"), the ride-along update and the
-- hand-off barrier look only at pending and running jobs; through
-- jobs_in_order they walked every job the conversation ever had, so a
-- message cost more the longer its conversation had been going.
CREATE INDEX jobs_open ON jobs (org_id, conversation_id, seq)
    WHERE state IN ('pending', 'running');

-- A conversation's messages not yet in Creatio (the round's backlog read
-- walked all of them, written ones included).
CREATE INDEX messages_unwritten ON messages (org_id, conversation_id, seq)
    WHERE written = 0;

-- Retention: what each purge pass looks for, oldest first.
-- A conversation whose texts and contact details are still held;
-- text_purged is set when retention (or an erasure) removed them, and
-- cleared when new events bring new ones.
ALTER TABLE conversations ADD COLUMN text_purged BIGINT NOT NULL DEFAULT 0;
-- Set by an erasure: the row is kept as a key (case and contact links, so
-- a later event never opens a second case), with nothing personal left.
ALTER TABLE conversations ADD COLUMN erased_at BIGINT;
CREATE INDEX conversations_to_purge ON conversations (updated_at) WHERE text_purged = 0;
CREATE INDEX events_by_age ON events (received_at);
CREATE INDEX timeline_by_age ON timeline (at);
CREATE INDEX written_records_by_age ON written_records (written_at);

-- Every erasure: who asked, when, and how many rows of each kind went,
-- without the personal data itself.
CREATE TABLE erasures (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    at         BIGINT NOT NULL,
    -- The API key that asked: its id and name (no secret).
    actor      TEXT NOT NULL,
    -- conversation | contact
    scope      TEXT NOT NULL,
    -- The conversation id (scope conversation); NULL for a contact, whose
    -- e-mail or phone is the personal data being erased.
    subject    TEXT,
    -- JSON: rows removed per table, conversations erased.
    counts     TEXT NOT NULL
);
CREATE INDEX erasures_by_org ON erasures (org_id, at);
