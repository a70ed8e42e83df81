-- Policy drafts and the per-tenant active pointer (compat §7, §10). tenant '' = default slot.
CREATE TABLE IF NOT EXISTS policy_drafts (
    id          TEXT        PRIMARY KEY,
    name        TEXT        NOT NULL DEFAULT '',
    description TEXT        NOT NULL DEFAULT '',
    rego_source TEXT        NOT NULL,
    tenant      TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by  TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS policy_drafts_tenant_updated_at_idx ON policy_drafts (tenant, updated_at DESC);

CREATE TABLE IF NOT EXISTS policy_active (
    id                TEXT        NOT NULL,
    tenant            TEXT        NOT NULL DEFAULT '' PRIMARY KEY,
    current_draft_id  TEXT        NOT NULL DEFAULT '',
    previous_draft_id TEXT        NOT NULL DEFAULT '',
    promoted_at       TIMESTAMPTZ,
    promoted_by       TEXT        NOT NULL DEFAULT ''
);
INSERT INTO policy_active (id, tenant) VALUES ('global', '') ON CONFLICT (tenant) DO NOTHING;
