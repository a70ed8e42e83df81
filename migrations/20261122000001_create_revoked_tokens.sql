-- Revoked capability tokens (compat §10). tenant '' = revoked by a superadmin, global.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        TEXT        NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    reason     TEXT        NOT NULL DEFAULT '',
    tenant     TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (jti, tenant)
);
-- Databases created by gateway versions before 0.9 lack the tenant column.
ALTER TABLE revoked_tokens ADD COLUMN IF NOT EXISTS tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS revoked_tokens_revoked_at_idx ON revoked_tokens (revoked_at DESC);
CREATE INDEX IF NOT EXISTS revoked_tokens_tenant_revoked_at_idx2 ON revoked_tokens (tenant, revoked_at DESC);
