-- Audit events and per-tenant chain heads (compat §8, §10), plus a gapless per-chain seq.
-- The chain key is COALESCE(tenant, 'default'): events of the empty tenant are stored with a
-- NULL tenant and chain as 'default', exactly as the Go gateway did.
CREATE TABLE IF NOT EXISTS audit_events (
    id                       BIGSERIAL   PRIMARY KEY,
    ts                       TIMESTAMPTZ NOT NULL,
    event_name               TEXT        NOT NULL DEFAULT 'intentgate.tool_call',
    schema_version           TEXT        NOT NULL DEFAULT '1',
    decision                 TEXT        NOT NULL,
    check_stage              TEXT        NOT NULL DEFAULT '',
    reason                   TEXT        NOT NULL DEFAULT '',
    agent_id                 TEXT        NOT NULL DEFAULT '',
    session_id               TEXT        NOT NULL DEFAULT '',
    tool                     TEXT        NOT NULL DEFAULT '',
    arg_keys                 JSONB,
    capability_token_id      TEXT        NOT NULL DEFAULT '',
    intent_summary           TEXT        NOT NULL DEFAULT '',
    latency_ms               BIGINT      NOT NULL DEFAULT 0,
    remote_ip                TEXT        NOT NULL DEFAULT '',
    upstream_status          INTEGER     NOT NULL DEFAULT 0
);
-- Columns added over the Go gateway's schema versions 2..6; no-ops on a fresh database.
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS root_capability_token_id TEXT;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS caveat_count INTEGER;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS tenant TEXT;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS arg_values JSONB;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS elevation_id TEXT;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS pending_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS decided_by TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS requires_step_up BOOLEAN NOT NULL DEFAULT FALSE;
-- Ours: position in the chain, 1-based and gapless per chain key. NULL on rows the Go
-- gateway wrote before the switch (they verify by id order, as before).
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS seq BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_chain_seq_uidx
    ON audit_events ((COALESCE(tenant, 'default')), seq) WHERE seq IS NOT NULL;

CREATE INDEX IF NOT EXISTS audit_events_elevation_idx ON audit_events (elevation_id, ts DESC) WHERE elevation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_events_tenant_ts_idx ON audit_events (tenant, ts DESC) WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_events_ts_idx ON audit_events (ts DESC);
CREATE INDEX IF NOT EXISTS audit_events_agent_ts_idx ON audit_events (agent_id, ts DESC) WHERE agent_id <> '';
CREATE INDEX IF NOT EXISTS audit_events_tool_ts_idx ON audit_events (tool, ts DESC) WHERE tool <> '';
CREATE INDEX IF NOT EXISTS audit_events_decision_ts_idx ON audit_events (decision, ts DESC);
CREATE INDEX IF NOT EXISTS audit_events_jti_ts_idx ON audit_events (capability_token_id, ts DESC) WHERE capability_token_id <> '';

CREATE TABLE IF NOT EXISTS audit_chain_heads (
    tenant     TEXT        PRIMARY KEY,
    head_hash  TEXT        NOT NULL DEFAULT '',
    head_id    BIGINT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
-- Ours: seq of the head row (0 = empty chain, or a chain written only by the Go gateway).
ALTER TABLE audit_chain_heads ADD COLUMN IF NOT EXISTS head_seq BIGINT NOT NULL DEFAULT 0;
