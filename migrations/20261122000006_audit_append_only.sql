-- The audit chain is append-only: UPDATE, DELETE and TRUNCATE of audit_events are refused
-- for every role unless the session opts in with
--   SET intentgate.audit_maintenance = 'on';
-- which the gateway never does. An operator who must repair or re-baseline after an
-- incident does so deliberately, in a session that says so (docs/OPERATIONS.md). A table
-- owner can still disable the triggers: the chain hashes, the head row and signed
-- checkpoints are what detect that.
CREATE OR REPLACE FUNCTION intentgate_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('intentgate.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only (% refused); see docs/OPERATIONS.md', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION intentgate_audit_append_only();

DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION intentgate_audit_append_only();
