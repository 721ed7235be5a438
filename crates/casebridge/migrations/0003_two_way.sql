-- Two-way sync: Creatio → chat. Webhook calls from Creatio become jobs in
-- the conversation's queue (table jobs); what they find becomes deliveries
-- to the org's endpoint, signed per Standard Webhooks. Portable SQL, as 0001.

-- Webhook calls name a case; several conversations may share one (case-append).
CREATE INDEX conversations_by_case ON conversations (org_id, case_id);

-- The org's delivery endpoint. The signing secret is sealed (ChaCha20-Poly1305);
-- during a rotation the previous secret signs too, until previous_until.
CREATE TABLE delivery_endpoints (
    org_id          TEXT PRIMARY KEY REFERENCES orgs (id),
    url             TEXT NOT NULL,
    secret_sealed   TEXT NOT NULL,
    previous_sealed TEXT,
    previous_until  BIGINT,
    -- enabled | disabled (the receiver answered 410 Gone)
    state           TEXT NOT NULL,
    disabled_reason TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- One row per message to the platform; id is the webhook-id, stable across
-- attempts and replays. pending → delivering → delivered; or dead (failed
-- for good, kept, replayable).
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    conversation_id TEXT NOT NULL,
    -- Deliveries of one conversation go out in this order.
    seq             BIGINT NOT NULL,
    -- What the delivery is about (e.g. reply:<activity id>): one delivery each.
    dedupe_key      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The exact bytes signed and sent.
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (org_id, dedupe_key);
CREATE INDEX deliveries_in_order ON deliveries (org_id, conversation_id, seq);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);

-- Every attempt, as sent and answered.
CREATE TABLE delivery_attempts (
    id          TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    url         TEXT NOT NULL,
    status      BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    response    TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, at);
