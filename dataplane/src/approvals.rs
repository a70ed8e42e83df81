//! Human approval of escalated calls (COMPATIBILITY.md §6): the escalated call waits on a oneshot
//! channel that a decision completes, waking the core that holds the call without any
//! polling. Decide once; a timeout marks the row `timeout`.
//!
//! In memory (one replica) this queue is the store and the admin API decides here. When
//! approvals are shared (Postgres), an [`ApprovalMirror`] copies each row and each expiry
//! to the store, the admin API decides there, and the control plane hands decisions back
//! with [`ApprovalQueue::resolve`]; this queue then only keeps the waiting calls.
//!
//! The record and the traits the control plane sees the queue through
//! ([`PendingApprovals`], [`ApprovalMirror`]) live in `intentgate_shared::approval`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_channel::oneshot;
use ring::rand::SecureRandom;

// The record, its status and the decide error are the contract with the control plane.
pub use intentgate_shared::approval::{
    ApprovalMirror, DecideError, Decided, PendingApprovals, PendingRequest, Status,
};
use intentgate_shared::timestamp::Timestamp;

/// Rows kept; the oldest decided ones go first when full.
pub const MAX_ROWS: usize = 10_000;

#[derive(Debug, Default)]
struct Inner {
    rows: Vec<PendingRequest>,
    waiters: HashMap<String, oneshot::Sender<Decided>>,
}

/// The approvals queue, shared by the data plane and the control plane (which sees it as
/// [`PendingApprovals`]).
#[derive(Debug, Default)]
pub struct ApprovalQueue {
    inner: Mutex<Inner>,
    mirror: Option<Arc<dyn ApprovalMirror>>,
}

/// A fresh pending id: 4-byte big-endian seconds and 12 random bytes, base64url.
pub fn new_pending_id(now: Timestamp) -> String {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&(now.unix_seconds() as u32).to_be_bytes());
    // A failing system RNG leaves zeros: ids stay unique by time prefix and the map check.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes[4..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl ApprovalQueue {
    /// A queue whose rows live in a shared store reached through `mirror`.
    pub fn with_mirror(mirror: Arc<dyn ApprovalMirror>) -> Self {
        Self {
            inner: Mutex::default(),
            mirror: Some(mirror),
        }
    }

    /// Whether a shared store keeps the rows (the admin API must decide there).
    pub fn is_mirrored(&self) -> bool {
        self.mirror.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a pending request; the receiver completes when someone decides. `None` when
    /// [`MAX_ROWS`] requests are already pending: the caller must refuse the escalation.
    pub fn enqueue(&self, row: PendingRequest) -> Option<oneshot::Receiver<Decided>> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        if inner.waiters.len() >= MAX_ROWS {
            return None;
        }
        let full = inner.rows.len() >= MAX_ROWS;
        if let Some(i) = inner
            .rows
            .iter()
            .position(|r| full && r.status != Status::Pending)
        {
            inner.rows.remove(i);
        }
        inner.waiters.insert(row.pending_id.clone(), tx);
        if let Some(m) = &self.mirror {
            m.enqueued(&row);
        }
        inner.rows.push(row);
        Some(rx)
    }

    /// Records a decision (once). `tenant` `Some` restricts to that tenant's rows (others are
    /// reported as not found).
    pub fn decide(
        &self,
        id: &str,
        approved: bool,
        by: &str,
        note: &str,
        tenant: Option<&str>,
    ) -> Result<PendingRequest, DecideError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let row = inner
            .rows
            .iter_mut()
            .find(|r| r.pending_id == id && tenant.is_none_or(|t| r.tenant == t))
            .ok_or(DecideError::NotFound)?;
        if row.status != Status::Pending {
            return Err(DecideError::AlreadyDecided(Box::new(row.clone())));
        }
        row.decided_at = Some(Timestamp::now());
        // The waiting call may have given up a moment ago (timeout, shutdown): then the
        // request expired, and saying "approved" would claim a call ran that did not.
        let Some(tx) = inner.waiters.remove(id).filter(|tx| !tx.is_canceled()) else {
            row.status = Status::Timeout;
            return Err(DecideError::AlreadyDecided(Box::new(row.clone())));
        };
        row.status = if approved {
            Status::Approved
        } else {
            Status::Rejected
        };
        by.clone_into(&mut row.decided_by);
        note.clone_into(&mut row.decide_note);
        let _ = tx.send(Decided {
            approved,
            decided_by: by.to_owned(),
            note: note.to_owned(),
        });
        Ok(row.clone())
    }

    /// Hands a decision taken in the shared store to the call waiting for it. `false` when
    /// this queue holds no live waiter for `id` (another replica's call, or one that gave up:
    /// then its row is expired, since the call did not run).
    pub fn resolve(&self, id: &str, decided: Decided) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(row) = inner
            .rows
            .iter_mut()
            .find(|r| r.pending_id == id && r.status == Status::Pending)
        else {
            return false;
        };
        row.decided_at = Some(Timestamp::now());
        match inner.waiters.remove(id).filter(|tx| !tx.is_canceled()) {
            Some(tx) => {
                row.status = if decided.approved {
                    Status::Approved
                } else {
                    Status::Rejected
                };
                row.decided_by.clone_from(&decided.decided_by);
                row.decide_note.clone_from(&decided.note);
                tx.send(decided).is_ok()
            }
            None => {
                row.status = Status::Timeout;
                if let Some(m) = &self.mirror {
                    m.expired(id);
                }
                false
            }
        }
    }

    /// Whether a call waits here on `id`.
    pub fn is_waiting(&self, id: &str) -> bool {
        self.lock().waiters.contains_key(id)
    }

    /// Ids of the calls waiting here now.
    pub fn waiting(&self) -> Vec<String> {
        self.lock().waiters.keys().cloned().collect()
    }

    /// Expires every pending request (shutdown): their calls answer at once and are audited.
    pub fn expire_all(&self) {
        let mut inner = self.lock();
        inner.waiters.clear();
        for row in inner
            .rows
            .iter_mut()
            .filter(|r| r.status == Status::Pending)
        {
            row.status = Status::Timeout;
            row.decided_at = Some(Timestamp::now());
            if let Some(m) = &self.mirror {
                m.expired(&row.pending_id);
            }
        }
    }

    /// Marks a still-pending request `timeout` (the waiting call gave up).
    pub fn expire(&self, id: &str) {
        let mut inner = self.lock();
        inner.waiters.remove(id);
        if let Some(row) = inner
            .rows
            .iter_mut()
            .find(|r| r.pending_id == id && r.status == Status::Pending)
        {
            row.status = Status::Timeout;
            row.decided_at = Some(Timestamp::now());
            if let Some(m) = &self.mirror {
                m.expired(id);
            }
        }
    }

    /// Newest first, optionally one tenant's and one status.
    pub fn list(
        &self,
        tenant: Option<&str>,
        status: Option<Status>,
        limit: usize,
        offset: usize,
    ) -> Vec<PendingRequest> {
        let inner = self.lock();
        inner
            .rows
            .iter()
            .rev()
            .filter(|r| {
                tenant.is_none_or(|t| r.tenant == t) && status.is_none_or(|s| r.status == s)
            })
            .skip(offset)
            .take(limit)
            .cloned()
            .collect()
    }
}

/// The control plane's view of the queue (`Arc<dyn PendingApprovals>`); each method is the
/// inherent one, which the data plane keeps calling directly.
impl PendingApprovals for ApprovalQueue {
    fn list(
        &self,
        tenant: Option<&str>,
        status: Option<Status>,
        limit: usize,
        offset: usize,
    ) -> Vec<PendingRequest> {
        ApprovalQueue::list(self, tenant, status, limit, offset)
    }

    fn decide(
        &self,
        id: &str,
        approved: bool,
        by: &str,
        note: &str,
        tenant: Option<&str>,
    ) -> Result<PendingRequest, DecideError> {
        ApprovalQueue::decide(self, id, approved, by, note, tenant)
    }

    fn resolve(&self, id: &str, decided: Decided) -> bool {
        ApprovalQueue::resolve(self, id, decided)
    }

    fn expire(&self, id: &str) {
        ApprovalQueue::expire(self, id);
    }

    fn is_waiting(&self, id: &str) -> bool {
        ApprovalQueue::is_waiting(self, id)
    }

    fn waiting(&self) -> Vec<String> {
        ApprovalQueue::waiting(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, tenant: &str) -> PendingRequest {
        PendingRequest {
            pending_id: id.into(),
            tenant: tenant.into(),
            capability_token_id: String::new(),
            root_capability_token_id: String::new(),
            agent_id: "a".into(),
            tool: "wire".into(),
            args: None,
            intent_summary: String::new(),
            reason: "big".into(),
            status: Status::Pending,
            created_at: Timestamp::now(),
            decided_at: None,
            decided_by: String::new(),
            decide_note: String::new(),
            requires_step_up: false,
        }
    }

    #[test]
    fn a_decision_wakes_the_waiter_once() {
        let q = ApprovalQueue::default();
        let mut rx = q.enqueue(row("p1", "acme")).unwrap();
        assert!(rx.try_recv().unwrap().is_none());
        let decided = q.decide("p1", true, "alice", "ok", None).unwrap();
        assert_eq!(
            (decided.status, decided.decided_by.as_str()),
            (Status::Approved, "alice")
        );
        assert_eq!(
            rx.try_recv().unwrap().unwrap(),
            Decided {
                approved: true,
                decided_by: "alice".into(),
                note: "ok".into()
            }
        );
        match q.decide("p1", false, "bob", "", None) {
            Err(DecideError::AlreadyDecided(r)) => assert_eq!(r.status, Status::Approved),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tenant_scope_hides_foreign_rows_and_timeouts_stick() {
        let q = ApprovalQueue::default();
        let _rx = q.enqueue(row("p1", "acme")).unwrap();
        assert_eq!(
            q.decide("p1", true, "x", "", Some("globex")),
            Err(DecideError::NotFound)
        );
        assert_eq!(
            q.decide("nope", true, "x", "", None),
            Err(DecideError::NotFound)
        );
        q.expire("p1");
        assert_eq!(q.list(None, Some(Status::Timeout), 10, 0).len(), 1);
        assert!(matches!(
            q.decide("p1", true, "x", "", None),
            Err(DecideError::AlreadyDecided(_))
        ));
        assert!(q.list(Some("globex"), None, 10, 0).is_empty());
        assert_eq!(Status::parse("timeout"), Some(Status::Timeout));
        // A decision after the caller gave up is refused and the row says timeout.
        let rx = q.enqueue(row("p2", "acme")).unwrap();
        drop(rx);
        match q.decide("p2", true, "x", "", None) {
            Err(DecideError::AlreadyDecided(r)) => assert_eq!(r.status, Status::Timeout),
            other => panic!("{other:?}"),
        }
        assert_eq!(Status::parse("maybe"), None);
        assert_eq!(new_pending_id(Timestamp::now()).len(), 22);
    }

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ApprovalMirror for Recorder {
        fn enqueued(&self, row: &PendingRequest) {
            self.0.lock().unwrap().push(format!("+{}", row.pending_id));
        }
        fn expired(&self, id: &str) {
            self.0.lock().unwrap().push(format!("-{id}"));
        }
    }

    #[test]
    fn a_mirrored_queue_reports_changes_and_takes_decisions_from_outside() {
        let rec = Arc::new(Recorder::default());
        let q = ApprovalQueue::with_mirror(rec.clone());
        assert!(q.is_mirrored());
        let mut rx = q.enqueue(row("p1", "acme")).unwrap();
        let gone = q.enqueue(row("p2", "acme")).unwrap();
        let _late = q.enqueue(row("p3", "acme")).unwrap();
        let mut ids = q.waiting();
        ids.sort();
        assert_eq!(ids, ["p1", "p2", "p3"]);
        assert!(q.is_waiting("p2") && !q.is_waiting("elsewhere"));
        let d = Decided {
            approved: true,
            decided_by: "alice".into(),
            note: String::new(),
        };
        assert!(q.resolve("p1", d.clone()));
        assert_eq!(rx.try_recv().unwrap(), Some(d.clone()));
        // Decided once: a second notification changes nothing.
        assert!(!q.resolve("p1", d.clone()));
        // Another replica's call: nothing here.
        assert!(!q.resolve("elsewhere", d.clone()));
        // The caller went away: the decision cannot reach it and the row expires.
        drop(gone);
        assert!(!q.resolve("p2", d));
        q.expire_all();
        assert_eq!(*rec.0.lock().unwrap(), ["+p1", "+p2", "+p3", "-p2", "-p3"]);
        assert_eq!(q.list(None, Some(Status::Timeout), 10, 0).len(), 2);
    }
}
