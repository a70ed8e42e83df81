//! The pending-approval record (COMPATIBILITY.md §6) and what each plane may do with a queue of them.
//!
//! The data plane's queue (`intentgate_dataplane::approvals::ApprovalQueue`) holds the rows
//! and wakes the waiting calls; the control plane lists and decides through
//! [`PendingApprovals`], writes a shared store through [`ApprovalMirror`], and keeps the same
//! [`PendingRequest`] as its Postgres row. Neither plane names the other's types.

use std::fmt::Debug;

use serde_json::{Value, json};

use crate::timestamp::Timestamp;

/// State of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting.
    Pending,
    /// Approved by a reviewer.
    Approved,
    /// Rejected by a reviewer.
    Rejected,
    /// Nobody decided in time.
    Timeout,
}

impl Status {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Timeout]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One escalated call.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRequest {
    /// Id (16 bytes, time-prefixed, base64url).
    pub pending_id: String,
    /// Tenant.
    pub tenant: String,
    /// Token id.
    pub capability_token_id: String,
    /// Root token id.
    pub root_capability_token_id: String,
    /// Agent.
    pub agent_id: String,
    /// Tool.
    pub tool: String,
    /// Arguments, verbatim.
    pub args: Option<Value>,
    /// Intent summary.
    pub intent_summary: String,
    /// The policy's reason.
    pub reason: String,
    /// State.
    pub status: Status,
    /// Created.
    pub created_at: Timestamp,
    /// Decided.
    pub decided_at: Option<Timestamp>,
    /// Reviewer (free text from the decision body).
    pub decided_by: String,
    /// Reviewer's note.
    pub decide_note: String,
    /// The policy asked for step-up.
    pub requires_step_up: bool,
}

impl PendingRequest {
    /// The compat JSON shape (empty optional fields omitted).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "pending_id": self.pending_id,
            "agent_id": self.agent_id,
            "tool": self.tool,
            "reason": self.reason,
            "status": self.status.as_str(),
            "created_at": self.created_at.to_rfc3339_nano(),
        });
        let opt = |v: &mut Value, k: &str, s: &str| {
            if !s.is_empty() {
                v[k] = s.into();
            }
        };
        opt(&mut v, "tenant", &self.tenant);
        opt(&mut v, "capability_token_id", &self.capability_token_id);
        opt(
            &mut v,
            "root_capability_token_id",
            &self.root_capability_token_id,
        );
        opt(&mut v, "intent_summary", &self.intent_summary);
        opt(&mut v, "decided_by", &self.decided_by);
        opt(&mut v, "decide_note", &self.decide_note);
        if let Some(args) = &self.args {
            v["args"] = args.clone();
        }
        if let Some(at) = self.decided_at {
            v["decided_at"] = at.to_rfc3339_nano().into();
        }
        if self.requires_step_up {
            v["requires_step_up"] = true.into();
        }
        v
    }
}

/// What the waiting call learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// Approved (true) or rejected.
    pub approved: bool,
    /// Reviewer.
    pub decided_by: String,
    /// Note.
    pub note: String,
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum DecideError {
    /// No such id (or another tenant's).
    NotFound,
    /// Decided before; carries the current row.
    AlreadyDecided(Box<PendingRequest>),
}

/// Receives the queue's changes when a shared store keeps the rows. Called under the
/// queue's lock: implementations only hand the change on (a channel send), never block.
pub trait ApprovalMirror: Send + Sync + Debug {
    /// A call started waiting.
    fn enqueued(&self, row: &PendingRequest);
    /// A call stopped waiting without a decision (timeout, shutdown, a decision that
    /// arrived after the call gave up): its row must say `timeout`.
    fn expired(&self, pending_id: &str);
}

/// What the control plane does with this process's approvals queue: list and decide its rows
/// (when the queue is the store), and hand decisions taken in a shared store to the calls
/// waiting here. Every method is short and takes the queue's lock at most once.
pub trait PendingApprovals: Send + Sync + Debug {
    /// Newest first, optionally one tenant's and one status.
    fn list(
        &self,
        tenant: Option<&str>,
        status: Option<Status>,
        limit: usize,
        offset: usize,
    ) -> Vec<PendingRequest>;

    /// Records a decision (once) and wakes the waiting call. `tenant` `Some` restricts to
    /// that tenant's rows (others are reported as not found).
    fn decide(
        &self,
        id: &str,
        approved: bool,
        by: &str,
        note: &str,
        tenant: Option<&str>,
    ) -> Result<PendingRequest, DecideError>;

    /// Hands a decision taken in the shared store to the call waiting for it. `false` when
    /// no live call waits here on `id`.
    fn resolve(&self, id: &str, decided: Decided) -> bool;

    /// Marks a still-pending request `timeout` (its row timed out in the shared store).
    fn expire(&self, id: &str);

    /// Whether a call waits here on `id`.
    fn is_waiting(&self, id: &str) -> bool;

    /// Ids of the calls waiting here now.
    fn waiting(&self) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_and_unknown_names_are_refused() {
        for s in [
            Status::Pending,
            Status::Approved,
            Status::Rejected,
            Status::Timeout,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("maybe"), None);
    }
}
