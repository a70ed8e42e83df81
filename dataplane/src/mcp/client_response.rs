//! A JSON-RPC response POSTed to `/v1/mcp`: the client answering a request the upstream
//! sent it on its session (`sampling/createMessage`, `elicitation/create`, `roots/list`,
//! …). Accepted only on the caller's own session (`session`), only for a request the
//! upstream really sent there and that is still unanswered (`server_requests`), and after
//! the capability check; then relayed with the upstream's own session id, answered 202 and
//! audited under the answered method. Anything else is refused with 400 and an id-less
//! JSON-RPC error (the transport's answer to a refused response), audited, and nothing
//! reaches the upstream.

use std::time::Instant;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::timestamp::Timestamp;

use crate::decision::Verdict;
use crate::forward::{Forwarded, upstream_failure};
use crate::http::{self, Head};
use crate::jsonrpc::{self, RpcError, code};
use crate::mcp::McpIn;
use crate::mcp_transport::{self, Revision};
use crate::routing::Refusal;
use crate::server_requests::id_key;
use crate::upstream::{Answered, UpstreamError};
use crate::worker::{Worker, elapsed_ms};

/// The audit record's tool for a response that answers no known request.
const RESPONSE: &str = "response";

/// The parts of one framed `POST /v1/mcp`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Post<'b> {
    pub(crate) buf: &'b [u8],
    pub(crate) head: &'b Head,
    pub(crate) body: &'b [u8],
    pub(crate) remote: &'b str,
    pub(crate) close: bool,
}

/// Why a client's response is refused (the error's message and the audit reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResponseRefusal {
    /// 2026-07-28 has no server-to-client requests: input travels in the retried request.
    #[error(
        "a 2026-07-28 client never POSTs a response: input_required answers go in the retried request"
    )]
    Modern,
    /// No session: a response answers a request of one session.
    #[error("a response must carry the Mcp-Session-Id of the session whose request it answers")]
    NoSession,
    /// No such request is pending on the session.
    #[error(
        "response id {0} answers no pending request of the upstream on this session (never sent, expired or already answered)"
    )]
    Unsolicited(String),
}

impl Worker {
    /// A client's response, relayed or refused.
    pub(crate) async fn mcp_client_response(
        &self,
        p: &Post<'_>,
        response: jsonrpc::Response<'_>,
        out: &mut Vec<u8>,
    ) {
        let started = Instant::now();
        if !self.legacy_revision(p, out) {
            return;
        }
        let snap = self.shared.snapshot.load();
        let session = match self.client_session(&snap, p.buf, p.head, RESPONSE, p.remote) {
            Ok(s) => s,
            Err(denied) => return denied.refusal(Some(None)).write(out, p.close),
        };
        let Some(slot) = self.audit.borrow_mut().reserve() else {
            return Refusal::AuditFull.write(out, p.close);
        };
        let mut event = match self.session_verdict(&snap, p.buf, p.head, RESPONSE, p.remote) {
            Verdict::Deny { error, event, .. } => {
                self.audit.borrow_mut().push_reserved(slot, event);
                let status = 403;
                return Refusal::Rpc {
                    status,
                    error: &error,
                }
                .write(out, p.close);
            }
            Verdict::Allow { event } => event,
        };
        // Consumed only now, once every check passed, and before the response leaves: two
        // copies of one response race for one request.
        let pending = session.upstream().map(|on| {
            let key = serde_json::from_slice(response.id)
                .ok()
                .as_ref()
                .and_then(id_key);
            let method = key.and_then(|k| self.shared.server_requests.take(on, &k, Instant::now()));
            (on, method)
        });
        let found = pending.and_then(|(on, method)| Some((on, method?, self.upstream.as_ref()?)));
        let Some((upstream_session, method, upstream)) = found else {
            let refusal = if session.upstream().is_none() {
                ResponseRefusal::NoSession
            } else {
                let shown = &response.id[..response.id.len().min(64)];
                ResponseRefusal::Unsolicited(String::from_utf8_lossy(shown).into_owned())
            };
            block(&mut event, &refusal);
            self.audit.borrow_mut().push_reserved(slot, event);
            return refused(&refusal, p.close, out);
        };
        event.tool.clone_from(&method);
        let kind = if response.is_error {
            "an error"
        } else {
            "a result"
        };
        event.reason = format!("response to the upstream's {method} request ({kind}) relayed");
        let Some(record) = self.before_forward(slot, &event).await else {
            return Refusal::AuditUnconfirmed.write(out, true);
        };
        let mcp = McpIn::of(p.buf, p.head, Some(upstream_session));
        let answer = upstream.post_answer(p.body, &mcp.headers(), false).await;
        self.answer_relayed(p, answer, record, event, started, out);
    }

    /// Whether the client speaks a revision with server-to-client requests; if not, its
    /// refusal is written.
    fn legacy_revision(&self, p: &Post<'_>, out: &mut Vec<u8>) -> bool {
        let version = p.head.mcp_protocol_version.clone().map(|r| &p.buf[r]);
        match mcp_transport::revision(version) {
            Ok(Revision::Modern) => {
                self.refuse_response(p, &ResponseRefusal::Modern, out);
                false
            }
            Ok(_) => true,
            Err(refusal) => {
                let refusal = mcp_transport::Refusal {
                    code: None,
                    ..refusal
                };
                Refusal::Transport {
                    refusal: &refusal,
                    id: None,
                }
                .write(out, p.close);
                false
            }
        }
    }

    /// The answer to a relayed response (202), and its record.
    fn answer_relayed(
        &self,
        p: &Post<'_>,
        answer: Result<Answered, UpstreamError>,
        record: Forwarded,
        mut event: AuditEvent,
        started: Instant,
        out: &mut Vec<u8>,
    ) {
        event.latency_ms = elapsed_ms(started);
        match answer {
            Ok(Answered::Whole(resp)) => {
                event.upstream_status = i64::from(resp.status);
                self.after_forward(record, event);
                http::write_response(out, 202, b"", p.close, &[]);
            }
            Ok(Answered::Stream(stream)) => {
                // Not asked for (`stream_events` is off); a response has no answer anyway.
                event.upstream_status = i64::from(stream.status);
                self.after_forward(record, event);
                http::write_response(out, 202, b"", p.close, &[]);
            }
            Err(e) => {
                event.upstream_status = i64::from(e.status());
                let err = upstream_failure(&mut event, &e);
                self.after_forward(record, event);
                Refusal::Rpc {
                    status: 502,
                    error: &err,
                }
                .write(out, p.close);
            }
        }
    }

    /// Refuses a client's response before any check (a 2026-07-28 client): audited, 400.
    fn refuse_response(&self, p: &Post<'_>, refusal: &ResponseRefusal, out: &mut Vec<u8>) {
        let Some(slot) = self.audit.borrow_mut().reserve() else {
            return Refusal::AuditFull.write(out, p.close);
        };
        let mut event = AuditEvent::new(Timestamp::now(), Decision::Block, RESPONSE);
        let auth = p.head.authorization.clone().map(|r| &p.buf[r]);
        if let Some(caller) = self.caller(&self.shared.snapshot.load(), auth) {
            caller.stamp(&mut event);
        }
        event.remote_ip = p.remote.to_owned();
        block(&mut event, refusal);
        self.audit.borrow_mut().push_reserved(slot, event);
        refused(refusal, p.close, out);
    }
}

/// Marks `event` as a refusal of the response.
fn block(event: &mut AuditEvent, refusal: &ResponseRefusal) {
    event.decision = Decision::Block.into();
    event.check = Check::Capability.into();
    event.reason = refusal.to_string();
}

/// 400 with an id-less JSON-RPC error.
fn refused(refusal: &ResponseRefusal, close: bool, out: &mut Vec<u8>) {
    let error = RpcError::new(code::INVALID_REQUEST, refusal.to_string());
    Refusal::Rpc {
        status: 400,
        error: &error,
    }
    .write(out, close);
}
