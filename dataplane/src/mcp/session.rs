//! The `Mcp-Session-Id` of a request: opened (`session_seal`) and checked against the
//! caller before any other check, so a session is used only by the token that opened it,
//! and the upstream receives only its own raw id; and the id each answer carries, sealed
//! for the caller. A refusal is audited and answered 404 (the transport's "unknown
//! session": the client starts a new one).

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::snapshot::Snapshot;
use intentgate_shared::timestamp::Timestamp;

use crate::http::Head;
use crate::mcp_transport::{self, Revision};
use crate::routing::Refusal;
use crate::session_seal::{Owner, SessionRefusal};
use crate::worker::Worker;

/// A request's caller and the session it named. The caller is read from its token only
/// when needed (a named session, or an answer starting one): a request without a session
/// costs no token lookup here.
#[derive(Debug, Default)]
pub(crate) struct ClientSession {
    /// The fields below were read from the caller's token (or its absence).
    resolved: bool,
    /// The token or its root is revoked.
    revoked: bool,
    /// The tenant of the caller's verified token ("" without one).
    tenant: String,
    /// Its root token id ("" without a token).
    root: String,
    /// Its subject and id, and its caveat count, for audit records.
    agent: String,
    jti: String,
    caveats: i64,
    /// When the token expires, if it does.
    token_expires_at: Option<i64>,
    /// The named session, opened and the caller's.
    named: Option<Named>,
}

/// A session the request named and may use.
#[derive(Debug)]
struct Named {
    /// The id as the client sent it (echoed while the upstream keeps its session).
    sealed: String,
    /// The upstream's own id.
    upstream: String,
}

/// Why a request's session is not served: audited already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionDenied {
    /// Unknown, expired or not the caller's: 404.
    Unknown,
    /// No audit slot for the refusal: 503.
    AuditFull,
}

impl SessionDenied {
    /// The answer: a JSON-RPC error with the request's id for a POST (`rpc`), else a
    /// plain one.
    pub(crate) fn refusal(self, rpc: Option<Option<&[u8]>>) -> Refusal<'_> {
        match self {
            Self::Unknown => Refusal::UnknownSession { rpc },
            Self::AuditFull => Refusal::AuditFull,
        }
    }
}

impl ClientSession {
    /// The upstream's id of the named session: the only session id sent upstream.
    pub(crate) fn upstream(&self) -> Option<&str> {
        self.named.as_ref().map(|n| n.upstream.as_str())
    }

    fn owner(&self) -> Owner<'_> {
        Owner {
            tenant: &self.tenant,
            root: &self.root,
        }
    }

    /// Puts the caller's token on an audit record.
    pub(crate) fn stamp(&self, event: &mut AuditEvent) {
        event.tenant.clone_from(&self.tenant);
        event.agent_id.clone_from(&self.agent);
        event.capability_token_id.clone_from(&self.jti);
        event.root_capability_token_id.clone_from(&self.root);
        event.caveat_count = self.caveats;
    }
}

impl Worker {
    /// The caller as its token says (empty without a token); None when the token does not
    /// verify (the capability check refuses the request: it names no session and starts
    /// none).
    pub(crate) fn caller(
        &self,
        snap: &Snapshot,
        authorization: Option<&[u8]>,
    ) -> Option<ClientSession> {
        let mut session = ClientSession {
            resolved: true,
            ..ClientSession::default()
        };
        let Some(auth) = authorization else {
            return Some(session);
        };
        let v = self.core.borrow_mut().verify(snap, auth).token.ok()?;
        let c = &v.token.claims;
        session.tenant.clone_from(&c.tenant);
        session.root.clone_from(&c.root_jti);
        session.agent.clone_from(&c.sub);
        session.jti.clone_from(&c.jti);
        session.caveats = v.token.caveats.len() as i64;
        session.token_expires_at = v.token.expires_at();
        session.revoked = snap.revoked.revokes(c);
        Some(session)
    }

    /// Resolves the request's `Mcp-Session-Id` for the caller (`what`: the tool or method,
    /// for the audit record). 2026-07-28 requests have no sessions: the header is ignored
    /// and not passed on.
    pub(crate) fn client_session(
        &self,
        snap: &Snapshot,
        buf: &[u8],
        head: &Head,
        what: &str,
        remote: &str,
    ) -> Result<ClientSession, SessionDenied> {
        let version = head.mcp_protocol_version.clone().map(|r| &buf[r]);
        let Some(named) = head
            .mcp_session_id
            .clone()
            .filter(|_| mcp_transport::revision(version) != Ok(Revision::Modern))
        else {
            return Ok(ClientSession::default());
        };
        let authorization = head.authorization.clone().map(|r| &buf[r]);
        let Some(mut session) = self.caller(snap, authorization) else {
            return Ok(ClientSession::default());
        };
        let mut event = AuditEvent::new(Timestamp::now(), Decision::Block, what);
        let sealed = &buf[named];
        let opened = self
            .sessions
            .open(sealed, event.ts.unix_seconds())
            .and_then(|o| o.belongs_to(session.owner()).map(|()| o))
            .and_then(|o| {
                if session.revoked {
                    Err(SessionRefusal::Revoked)
                } else {
                    Ok(o)
                }
            });
        match opened {
            Ok(o) => {
                session.named = Some(Named {
                    // Opened, so base64url: ASCII.
                    sealed: String::from_utf8_lossy(sealed).into_owned(),
                    upstream: o.upstream,
                });
                Ok(session)
            }
            Err(refusal) => {
                let Some(slot) = self.audit.borrow_mut().reserve() else {
                    return Err(SessionDenied::AuditFull);
                };
                session.stamp(&mut event);
                event.check = Check::Capability.into();
                // Why, never the id itself.
                event.reason = refusal.to_string();
                event.remote_ip = remote.to_owned();
                self.audit.borrow_mut().push_reserved(slot, event);
                Err(SessionDenied::Unknown)
            }
        }
    }

    /// The session id an answer carries for the upstream's `upstream` id: the client's own
    /// id while the upstream keeps the session, a newly sealed one (owned by the caller,
    /// read from `authorization` if not yet) when it starts one.
    pub(crate) fn reply_session(
        &self,
        session: &ClientSession,
        upstream: Option<&str>,
        authorization: Option<&[u8]>,
    ) -> Option<String> {
        let upstream = upstream?;
        if let Some(named) = session.named.as_ref().filter(|n| n.upstream == upstream) {
            return Some(named.sealed.clone());
        }
        let read;
        let session = if session.resolved {
            session
        } else {
            read = self.caller(&self.shared.snapshot.load(), authorization)?;
            &read
        };
        let now = Timestamp::now().unix_seconds();
        match self
            .sessions
            .seal(upstream, session.owner(), session.token_expires_at, now)
        {
            Ok(id) => Some(id),
            Err(e) => {
                // The client gets no session (the upstream then refuses its next request):
                // never the upstream's raw id.
                tracing::warn!(error = %e, "the upstream's MCP session id cannot be sealed");
                None
            }
        }
    }
}
