-- Signed chain checkpoints (INTENTGATE_AUDIT_SIGNING_KEY): after each committed batch, the
-- head of every chain it touched, signed with Ed25519 over
--   "intentgate-audit-checkpoint-v1\n<chain key>\n<seq>\n<head hash>\n<ts RFC3339Nano>".
-- Someone who can rewrite audit_events and audit_chain_heads consistently still cannot forge
-- these without the key; `intentgate audit verify-file` checks an export against one offline.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id         BIGSERIAL   PRIMARY KEY,
    tenant     TEXT        NOT NULL,
    seq        BIGINT      NOT NULL,
    head_hash  TEXT        NOT NULL,
    head_id    BIGINT,
    ts         TIMESTAMPTZ NOT NULL,
    key_id     TEXT        NOT NULL,
    signature  TEXT        NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_checkpoints_tenant_id_idx ON audit_checkpoints (tenant, id DESC);

-- The guard now names the table it protects.
CREATE OR REPLACE FUNCTION intentgate_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('intentgate.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only (% refused); see docs/OPERATIONS.md', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION intentgate_audit_append_only();
