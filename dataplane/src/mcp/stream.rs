//! `GET /v1/mcp` (the server-to-client stream, resumed with `Last-Event-ID`) and
//! `DELETE /v1/mcp` (ending a session) of the revisions with sessions: the session must be
//! the caller's (plain 404 otherwise), the capability check, then passed to the upstream
//! with its own session id; the upstream's answer (often 405) goes back with the session
//! id sealed, a GET's event stream is relayed for as long as both ends keep it open (the
//! upstream's requests to the client on it noted). 2026-07-28 has neither: 405.

use std::time::Instant;

use crate::decision::Verdict;
use crate::forward::upstream_failure;
use crate::http::{self, Head, Method};
use crate::mcp::{ClientSession, McpIn};
use crate::mcp_transport::{self, Revision};
use crate::relay::events::Relay;
use crate::routing::Refusal;
use crate::upstream::{Answered, Outgoing, Response};
use crate::worker::Worker;

/// Whether the client's revision has sessions and streams; if not, its answer is written:
/// 405 for 2026-07-28, 400 for a version the gateway does not serve.
fn has_streams(buf: &[u8], head: &Head, close: bool, out: &mut Vec<u8>) -> bool {
    let version = head.mcp_protocol_version.clone().map(|r| &buf[r]);
    match mcp_transport::revision(version) {
        Ok(Revision::Modern) => Refusal::NoStream.write(out, close),
        Ok(_) => return true,
        Err(refusal) => {
            // No body was parsed: a plain error whatever the revision.
            let refusal = mcp_transport::Refusal {
                code: None,
                ..refusal
            };
            Refusal::Transport {
                refusal: &refusal,
                id: None,
            }
            .write(out, close);
        }
    }
    false
}

impl Worker {
    /// `GET` or `DELETE /v1/mcp`.
    pub(crate) async fn mcp_stream_or_end(
        &self,
        buf: &[u8],
        head: &Head,
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let get = head.method == Some(Method::Get);
        if !has_streams(buf, head, close, out) {
            return;
        }
        let Some(upstream) = &self.upstream else {
            return Refusal::NoStream.write(out, close);
        };
        let what = if get { "GET /v1/mcp" } else { "DELETE /v1/mcp" };
        let snap = self.shared.snapshot.load();
        let session = match self.client_session(&snap, buf, head, what, remote) {
            Ok(s) => s,
            Err(denied) => return denied.refusal(None).write(out, close),
        };
        let Some(slot) = self.audit.borrow_mut().reserve() else {
            return Refusal::AuditFull.write(out, close);
        };
        let mut event = match self.session_verdict(&snap, buf, head, what, remote) {
            Verdict::Deny { error, event, .. } => {
                self.audit.borrow_mut().push_reserved(slot, event);
                return Refusal::Rpc {
                    status: 403,
                    error: &error,
                }
                .write(out, close);
            }
            Verdict::Allow { event } => event,
        };
        let mcp = McpIn::of(buf, head, session.upstream());
        let mut headers = mcp.headers();
        headers.push(("Accept", b"text/event-stream"));
        if let Some(r) = head.last_event_id.clone() {
            headers.push(("Last-Event-ID", &buf[r]));
        }
        let req = Outgoing {
            method: if get { "GET" } else { "DELETE" },
            path: upstream.path(),
            headers: &headers,
            body: b"",
            pass_errors: true,
            stream_events: get,
        };
        let started = Instant::now();
        match upstream.send(&req).await {
            Ok(Answered::Stream(stream)) => {
                event.upstream_status = i64::from(stream.status);
                event.reason.push_str(" (stream opened)");
                // Recorded now: the stream may stay open for hours.
                self.audit.borrow_mut().push_reserved(slot, event.clone());
                let requests_on = stream
                    .session_id
                    .clone()
                    .or_else(|| session.upstream().map(str::to_owned));
                let auth = head.authorization.clone().map(|r| &buf[r]);
                let session_id = self.reply_session(&session, stream.session_id.as_deref(), auth);
                *relay = Some(Relay {
                    upstream: stream,
                    record: None,
                    event,
                    stages: self.untraced(started),
                    id: None,
                    started,
                    close,
                    narrow: None,
                    session_id,
                    requests_on,
                });
            }
            Ok(Answered::Whole(resp)) => {
                event.upstream_status = i64::from(resp.status);
                self.audit.borrow_mut().push_reserved(slot, event);
                let auth = head.authorization.clone().map(|r| &buf[r]);
                self.answer_whole(&session, &resp, auth, close, out);
            }
            Err(e) => {
                event.upstream_status = i64::from(e.status());
                let err = upstream_failure(&mut event, &e);
                self.audit.borrow_mut().push_reserved(slot, event);
                Refusal::Rpc {
                    status: 502,
                    error: &err,
                }
                .write(out, close);
            }
        }
    }

    /// The upstream's whole answer to a GET or DELETE, with the session id sealed (and the
    /// requests to the client in an event stream noted).
    fn answer_whole(
        &self,
        session: &ClientSession,
        resp: &Response,
        authorization: Option<&[u8]>,
        close: bool,
        out: &mut Vec<u8>,
    ) {
        let event_stream = resp
            .content_type
            .as_deref()
            .is_some_and(|c| c.trim_start().starts_with("text/event-stream"));
        if let Some(on) = resp.session_id.as_deref().or(session.upstream())
            && event_stream
        {
            self.note_server_requests(on, &resp.body);
        }
        let sealed = self.reply_session(session, resp.session_id.as_deref(), authorization);
        let sealed = sealed.as_deref().map(|s| ("Mcp-Session-Id", s));
        let extra: &[(&str, &str)] = match &sealed {
            Some(h) => std::slice::from_ref(h),
            None => &[],
        };
        let ct = resp.content_type.as_deref().unwrap_or("application/json");
        http::write_response_as(out, resp.status, &resp.body, ct, close, extra);
    }
}
