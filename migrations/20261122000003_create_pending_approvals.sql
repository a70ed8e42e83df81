-- Escalated calls waiting for a human decision (compat §6, §10).
CREATE TABLE IF NOT EXISTS pending_approvals (
    pending_id               TEXT        PRIMARY KEY,
    capability_token_id      TEXT,
    root_capability_token_id TEXT,
    agent_id                 TEXT        NOT NULL DEFAULT '',
    tool                     TEXT        NOT NULL,
    args                     JSONB,
    intent_summary           TEXT        NOT NULL DEFAULT '',
    reason                   TEXT        NOT NULL DEFAULT '',
    status                   TEXT        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected', 'timeout')),
    created_at               TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    decided_at               TIMESTAMPTZ,
    decided_by               TEXT        NOT NULL DEFAULT '',
    decide_note              TEXT        NOT NULL DEFAULT ''
);
ALTER TABLE pending_approvals ADD COLUMN IF NOT EXISTS tenant TEXT;
ALTER TABLE pending_approvals ADD COLUMN IF NOT EXISTS requires_step_up BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX IF NOT EXISTS pending_approvals_tenant_pending_idx
    ON pending_approvals (tenant, created_at DESC) WHERE status = 'pending' AND tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS pending_approvals_pending_idx ON pending_approvals (created_at DESC) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS pending_approvals_status_created_idx ON pending_approvals (status, created_at DESC);
CREATE INDEX IF NOT EXISTS pending_approvals_agent_idx ON pending_approvals (agent_id, created_at DESC) WHERE agent_id <> '';
