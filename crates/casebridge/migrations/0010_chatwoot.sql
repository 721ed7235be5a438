-- The Chatwoot connector (issue 26). Portable SQL, as 0001.

-- Where an org's deliveries go: 'webhook' (a receiver of Standard Webhooks,
-- PUT /v1/delivery) or 'chatwoot' (Chatwoot's Application API, through the
-- connector below). One endpoint row per org either way, so the queue's
-- gate, the 410 rule and the recovery tools are the same for both.
ALTER TABLE delivery_endpoints ADD COLUMN platform TEXT NOT NULL DEFAULT 'webhook';

-- The org's Chatwoot: the API token and the webhook secret sealed
-- (ChaCha20-Poly1305), the path token of the webhook URL hashed for lookup
-- and sealed to show the URL again.
CREATE TABLE chatwoot_connectors (
    org_id                TEXT PRIMARY KEY REFERENCES orgs (id),
    base_url              TEXT NOT NULL,
    account_id            BIGINT NOT NULL,
    api_token_sealed      TEXT NOT NULL,
    api_token_last4       TEXT NOT NULL,
    webhook_secret_sealed TEXT,
    -- Comma-separated inbox ids; empty: every inbox.
    inbox_ids             TEXT NOT NULL,
    -- pending_to_open | any_open
    handoff               TEXT NOT NULL,
    agent_messages        BIGINT NOT NULL,
    summary_attribute     TEXT,
    token_hash            TEXT NOT NULL UNIQUE,
    token_sealed          TEXT NOT NULL,
    last_check_report     TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- The last status casebridge saw of each Chatwoot conversation: hand-offs
-- and resolutions are transitions, which Chatwoot's payloads do not always
-- say (changed_attributes is null on conversation_status_changed, and
-- missing when auto-assignment runs: docs/reference/chatwoot.md §1.4, §4.3).
-- set_by_casebridge is the status casebridge set itself through the API, so
-- the webhook that reports it is not taken for the agent's doing (no echo).
CREATE TABLE chatwoot_statuses (
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    conversation_id   TEXT NOT NULL,
    status            TEXT NOT NULL,
    set_by_casebridge TEXT,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (org_id, conversation_id)
);
