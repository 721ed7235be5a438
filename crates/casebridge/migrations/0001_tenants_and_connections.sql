-- Orgs, API keys, Creatio connections and webhook tokens.
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Times are Unix
-- milliseconds (BIGINT), ids and GUIDs TEXT, flags BIGINT 0/1, so the sqlx
-- `Any` driver reads every column the same way on both.

CREATE TABLE instance_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    role       TEXT NOT NULL,
    name       TEXT,
    -- SHA-256 of the key; the key itself is shown once and never stored.
    key_hash   TEXT NOT NULL UNIQUE,
    -- The first characters, so a person can tell keys apart in a list.
    key_prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_org ON api_keys (org_id);

CREATE TABLE creatio_connections (
    org_id                      TEXT PRIMARY KEY REFERENCES orgs (id),
    -- active | needs_attention | disconnected
    status                      TEXT NOT NULL,
    status_detail               TEXT,
    instance_url                TEXT NOT NULL,
    identity_service_url        TEXT,
    client_id                   TEXT,
    -- ChaCha20-Poly1305 sealed; NULL once disconnected.
    client_secret_sealed        TEXT,
    client_secret_last4         TEXT,
    default_owner_id            TEXT,
    default_group_id            TEXT,
    resolved_status_id          TEXT,
    create_case_only_on_handoff BIGINT NOT NULL,
    -- The Contact of the OAuth app's technical user (CreatedById of what
    -- casebridge writes), learned by the write check: the echo guard's key.
    technical_user_id           TEXT,
    last_check_at               BIGINT,
    last_check_report           TEXT,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);

CREATE TABLE webhook_tokens (
    -- SHA-256 of the token: what an incoming webhook is looked up by.
    token_hash   TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    -- The token sealed, so the admin page can show the URL again.
    token_sealed TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    -- NULL while current; set when rotated (grace period) or revoked.
    expires_at   BIGINT
);
CREATE INDEX webhook_tokens_by_org ON webhook_tokens (org_id);
