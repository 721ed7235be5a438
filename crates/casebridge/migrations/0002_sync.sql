-- The sync engine: conversations, the events received, messages, the
-- outbox of jobs, the timeline, and the records written to Creatio (the
-- echo guard's memory). Portable SQL, as 0001.

ALTER TABLE creatio_connections ADD COLUMN create_missing_contacts BIGINT NOT NULL DEFAULT 1;
-- Channels (comma separated) whose new conversations join the returning
-- contact's open case instead of opening another.
ALTER TABLE creatio_connections ADD COLUMN case_append_channels TEXT NOT NULL DEFAULT 'email';

CREATE TABLE conversations (
    org_id             TEXT NOT NULL REFERENCES orgs (id),
    id                 TEXT NOT NULL,
    channel            TEXT NOT NULL,
    url                TEXT,
    contact_name       TEXT,
    contact_email      TEXT,
    contact_phone      TEXT,
    -- open | handed_off | resolved
    state              TEXT NOT NULL,
    -- The next job's position: jobs of one conversation run in this order.
    next_seq           BIGINT NOT NULL,
    -- UUIDv5(org, conversation): the Case Id, fixed before the case exists.
    case_id            TEXT NOT NULL,
    case_created       BIGINT NOT NULL,
    case_number        TEXT,
    creatio_contact_id TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

-- Every event accepted, for idempotency on the platform's event id.
CREATE TABLE events (
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    id              TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    type            TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE messages (
    org_id          TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    role            TEXT NOT NULL,
    text            TEXT NOT NULL,
    attachments     TEXT,
    occurred_at     BIGINT NOT NULL,
    -- UUIDv5(org, conversation, message): the Activity Id.
    activity_id     TEXT NOT NULL,
    written         BIGINT NOT NULL,
    PRIMARY KEY (org_id, conversation_id, id)
);
CREATE INDEX messages_in_order ON messages (org_id, conversation_id, seq);

-- The outbox. pending → running → done; or dead (gave up, kept and
-- visible), or cancelled (disconnect; kept).
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    run_after       BIGINT NOT NULL,
    locked_until    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX jobs_in_order ON jobs (org_id, conversation_id, seq);
CREATE INDEX jobs_ready ON jobs (state, run_after);

CREATE TABLE timeline (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    at              BIGINT NOT NULL,
    -- event | creatio | warning | error
    kind            TEXT NOT NULL,
    summary         TEXT NOT NULL,
    attempts        BIGINT
);
CREATE INDEX timeline_by_conversation ON timeline (org_id, conversation_id, at);

CREATE TABLE written_records (
    org_id          TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    entity          TEXT NOT NULL,
    conversation_id TEXT,
    written_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, record_id)
);
