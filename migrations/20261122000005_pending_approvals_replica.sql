-- Which gateway process holds the waiting call of a pending row, so that a restarted
-- process can time out the rows of its own crashed calls (the Go gateway left them pending
-- forever).
ALTER TABLE pending_approvals ADD COLUMN IF NOT EXISTS replica TEXT;
CREATE INDEX IF NOT EXISTS pending_approvals_replica_pending_idx
    ON pending_approvals (replica) WHERE status = 'pending';
