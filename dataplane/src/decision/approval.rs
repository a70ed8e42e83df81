//! The approval stage: a call the policy escalated is handed to a reviewer through the
//! approvals queue and waits, without blocking the core, for approve, reject or the approval
//! timeout (COMPATIBILITY.md §6). An approved call is checked again (the wait
//! may have been long) before its budget is charged.

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::Target;

use super::checks::{
    Call, CapabilityRefusal, Core, Escalation, Verdict, VerifiedToken, capability_denied, deny,
};
use crate::approvals::{self, ApprovalQueue, Decided, PendingRequest};
use crate::jsonrpc::code;
use crate::worker::Worker;

/// Largest arguments kept on a pending approval.
const MAX_APPROVAL_ARGS: usize = 64 * 1024;

/// A refusal at the policy stage on the approval path.
fn policy_denied(event: AuditEvent, message: &'static str, reason: String) -> Verdict {
    deny(event, Check::Policy, code::POLICY, message, reason)
}

impl Worker {
    /// Hands an escalated call to a reviewer and waits for the decision.
    pub(super) async fn escalate(&self, call: &Call<'_>, esc: Box<Escalation>) -> Verdict {
        let Some(queue) = &self.shared.approvals else {
            let reason = format!(
                "escalation requested ({}) but approvals are off (INTENTGATE_APPROVALS_BACKEND=off)",
                esc.policy_reason
            );
            return policy_denied(esc.event, "policy escalation required", reason);
        };
        let pending_id = approvals::new_pending_id(call.now);
        let Some(waiter) = queue.enqueue(pending_row(call, &esc, &pending_id)) else {
            let reason = "the approvals queue is full; escalation refused".to_string();
            return policy_denied(esc.event, "policy escalation failed", reason);
        };
        let mut escalated = esc.event.clone();
        escalated.decision = Decision::Escalate.into();
        escalated.check = Check::Policy.into();
        escalated.reason = format!("escalate: {}", esc.policy_reason);
        escalated.pending_id.clone_from(&pending_id);
        if self.audit.borrow_mut().push(escalated).is_err() {
            queue.expire(&pending_id);
            let mut event = esc.event;
            event.pending_id = pending_id;
            let reason = "audit queue full: the escalation could not be recorded".to_string();
            return policy_denied(event, "policy escalation failed", reason);
        }
        let timeout = self.config.approval_timeout;
        let decided = monoio::select! {
            r = waiter => r.ok(),
            _ = monoio::time::sleep(timeout) => None,
        };
        self.after_review(call, esc, decided, queue, pending_id)
    }

    /// Approve, reject or time out.
    fn after_review(
        &self,
        call: &Call<'_>,
        mut esc: Box<Escalation>,
        decided: Option<Decided>,
        queue: &ApprovalQueue,
        pending_id: String,
    ) -> Verdict {
        let mut event = esc.event.clone();
        event.pending_id.clone_from(&pending_id);
        let metrics = self.metrics();
        match decided {
            Some(d) if d.approved => {
                let reason = reviewer_reason("approved", &d);
                metrics.approvals[0].inc();
                let mut approved = event.clone();
                approved.check = Check::Policy.into();
                approved.reason.clone_from(&reason);
                approved.decided_by.clone_from(&d.decided_by);
                // The approval is recorded on the call's final record too, so a full ring
                // here loses nothing that the final record does not say.
                let _ = self.audit.borrow_mut().push(approved);
                // The wait may have been long: the token must still be valid, unrevoked and
                // the snapshot current before the approved call runs.
                if let Some(refusal) = self.recheck(esc.token.as_deref(), call.target) {
                    return capability_denied(event, &refusal);
                }
                esc.event = event;
                esc.event.decided_by = d.decided_by;
                Core::after_approval(
                    &self.config.settings,
                    &self.shared.budget,
                    call,
                    *esc,
                    reason,
                )
            }
            Some(d) => {
                metrics.approvals[1].inc();
                let reason = reviewer_reason("rejected", &d);
                event.decided_by = d.decided_by;
                policy_denied(event, "policy: rejected by reviewer", reason)
            }
            None => {
                metrics.approvals[2].inc();
                queue.expire(&pending_id);
                let reason = format!(
                    "approval window expired ({}s)",
                    self.config.approval_timeout.as_secs()
                );
                policy_denied(event, "policy: approval window expired", reason)
            }
        }
    }

    /// Why a token that passed before an approval wait may no longer be used, if it may not.
    fn recheck(
        &self,
        token: Option<&VerifiedToken>,
        target: Target<'_>,
    ) -> Option<CapabilityRefusal> {
        if self.stale() {
            return Some(CapabilityRefusal::Stale);
        }
        let t = token?;
        let snap = self.shared.snapshot.load();
        let c = &t.token.claims;
        if snap.revoked.revokes(c) {
            return Some(CapabilityRefusal::Revoked);
        }
        t.token
            .check_target(Timestamp::now().unix_seconds(), &c.sub, target)
            .err()
            .map(CapabilityRefusal::Caveat)
    }
}

/// The pending-approval row reviewers see.
fn pending_row(call: &Call<'_>, esc: &Escalation, pending_id: &str) -> PendingRequest {
    let e = &esc.event;
    PendingRequest {
        pending_id: pending_id.to_owned(),
        tenant: e.tenant.clone(),
        capability_token_id: e.capability_token_id.clone(),
        root_capability_token_id: e.root_capability_token_id.clone(),
        agent_id: e.agent_id.clone(),
        tool: e.tool.clone(),
        // Reviewers see the arguments; beyond 64 KiB they are left out so that pending
        // rows cannot hold the whole body size each.
        args: call
            .arguments
            .and_then(|a| serde_json::to_vec(a).ok())
            .filter(|a| a.len() <= MAX_APPROVAL_ARGS)
            .and_then(|a| serde_json::from_slice(&a).ok()),
        intent_summary: e.intent_summary.clone(),
        reason: esc.policy_reason.clone(),
        status: approvals::Status::Pending,
        created_at: call.now,
        decided_at: None,
        decided_by: String::new(),
        decide_note: String::new(),
        requires_step_up: e.requires_step_up,
    }
}

/// `approved by alice: looks fine` (compat wording; an empty reviewer is `(anonymous)`).
fn reviewer_reason(verb: &str, d: &Decided) -> String {
    let who = if d.decided_by.is_empty() {
        "(anonymous)"
    } else {
        d.decided_by.as_str()
    };
    if d.note.is_empty() {
        format!("{verb} by {who}")
    } else {
        format!("{verb} by {who}: {}", d.note)
    }
}
