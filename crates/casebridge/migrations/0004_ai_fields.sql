-- AI fields: Case columns filled from the transcript at hand-off. Portable
-- SQL, as 0001.

-- The org's mappings (JSON array), as validated against its Creatio at save:
-- the column written, the lookup and its options' GUIDs, the text size.
CREATE TABLE ai_fields (
    org_id      TEXT PRIMARY KEY REFERENCES orgs (id),
    mappings    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- What one hand-off decided (JSON): a retried hand-off job writes the values
-- decided the first time, since a language model asked twice may answer
-- differently (and each question costs).
CREATE TABLE ai_evaluations (
    org_id          TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    result          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, conversation_id, event_id)
);
