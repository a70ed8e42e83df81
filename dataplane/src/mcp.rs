//! Phase 3, the MCP handler: `POST /v1/mcp` (Streamable HTTP). The envelope is parsed
//! (`jsonrpc`), the transport headers checked (`mcp_transport`), then every request and
//! notification goes through one decision ([`Worker::authorize_and_record`]): a
//! `tools/call` through the four checks, every other method through capability (with the
//! caveats of the prompt or resource it names, [`method`]) and policy. Allowed requests are
//! forwarded (`forward`) and answered, or relayed as an event stream (`relay::events`); list
//! answers are narrowed (`list_filter`). Before any of it, the request's `Mcp-Session-Id`
//! must be the caller's ([`session`]); a client's response to the upstream's request is
//! [`client_response`]. `GET`/`DELETE /v1/mcp` are in [`stream`].

mod client_response;
mod method;
mod session;
mod stream;

use std::time::Instant;

use crate::decision::Authorized;
use crate::forward::{Answer, UpstreamReply};
use crate::http::{self, Head};
use crate::jsonrpc::{self, RpcError, code};
use crate::relay::events::Relay;
use crate::routing::Refusal;
use crate::upstream::EventStream;
use crate::worker::{Worker, elapsed_ms};

pub(crate) use session::ClientSession;

/// One parsed `POST /v1/mcp` request and what its answer needs.
struct Exchange<'r, 'b> {
    req: &'r jsonrpc::Request<'b>,
    buf: &'b [u8],
    head: &'b Head,
    body: &'b [u8],
    remote: &'b str,
    close: bool,
    started: Instant,
    /// The caller and the session it named.
    session: &'r ClientSession,
}

impl Exchange<'_, '_> {
    /// The `Authorization` header's value.
    fn authorization(&self) -> Option<&[u8]> {
        self.head.authorization.clone().map(|r| &self.buf[r])
    }
}

impl Worker {
    /// `POST /v1/mcp`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one framed request, borrowed from the connection's buffers"
    )]
    pub(crate) async fn mcp(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let started = Instant::now();
        let mut scratch = self.scratch.take();
        let req = match jsonrpc::parse_message(&mut scratch, body) {
            Ok(jsonrpc::Message::Request(r)) => r,
            Ok(jsonrpc::Message::Response(response)) => {
                let post = client_response::Post {
                    buf,
                    head,
                    body,
                    remote,
                    close,
                };
                return self.mcp_client_response(&post, response, out).await;
            }
            Err((err, id)) => {
                let mut payload = Vec::with_capacity(256);
                jsonrpc::write_error(&mut payload, id, &err);
                return http::write_response(out, 200, &payload, close, &[]);
            }
        };
        if let Err(refusal) = self.transport_rules(buf, head, &req) {
            return Refusal::Transport {
                refusal: &refusal,
                id: req.id,
            }
            .write(out, close);
        }
        let what = match req.method {
            "tools/call" => req.param_str("name").unwrap_or(req.method),
            other => other,
        };
        let snap = self.shared.snapshot.load();
        let session = match self.client_session(&snap, buf, head, what, remote) {
            Ok(s) => s,
            Err(denied) => return denied.refusal(Some(req.id)).write(out, close),
        };
        let x = Exchange {
            req: &req,
            buf,
            head,
            body,
            remote,
            close,
            started,
            session: &session,
        };
        if req.method == "tools/call" {
            self.mcp_tool_call(&x, out, relay).await;
        } else {
            self.mcp_other_method(&x, out, relay).await;
        }
    }

    /// A `tools/call`: the four checks, then the forward.
    async fn mcp_tool_call(
        &self,
        x: &Exchange<'_, '_>,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let req = x.req;
        let call = match req.tool_call() {
            Ok(c) => c,
            Err(err) => {
                let mut payload = Vec::with_capacity(256);
                jsonrpc::write_error(&mut payload, req.id, &err);
                return http::write_response(out, 200, &payload, x.close, &[]);
            }
        };
        let snap = self.shared.snapshot.load();
        let checked = self.call(x.buf, x.head, call.name, call.arguments.as_ref(), x.remote);
        let (slot, mut event, mut stages) = match self
            .authorize_and_record(&snap, x.buf, x.head, &checked, x.started)
            .await
        {
            Err(refusal) => return refusal.write(out, x.close),
            Ok(Authorized::Denied { error, .. }) => {
                return self.answer_denied(req.id, &error, req.is_notification(), x, out);
            }
            Ok(Authorized::Allowed {
                slot,
                event,
                stages,
            }) => (slot, event, stages),
        };
        let Some(record) = self.before_forward(slot, &event).await else {
            return Refusal::AuditUnconfirmed.write(out, true);
        };
        let mcp = McpIn::of(x.buf, x.head, x.session.upstream());
        let reply = self
            .forward_call(req, x.body, &mut event, x.started, &mut stages, mcp)
            .await;
        let mut answer = match reply {
            UpstreamReply::Whole(a) => a,
            UpstreamReply::Stream(upstream) => {
                // Relayed by the connection loop, which owns the socket; audited when the
                // stream ends.
                let (session_id, requests_on) = self.stream_sessions(x, &upstream);
                *relay = Some(Relay {
                    upstream,
                    record: Some(record),
                    event,
                    stages,
                    id: req.id.map(<[u8]>::to_vec),
                    started: x.started,
                    close: x.close,
                    narrow: None,
                    session_id,
                    requests_on,
                });
                return;
            }
        };
        self.seal_answer(x, &mut answer);
        event.latency_ms = elapsed_ms(x.started);
        stages.finish(&mut event);
        self.after_forward(record, event);
        answer.write(out, req.is_notification(), x.close);
    }

    /// Any other method (`initialize`, `resources/read`, `prompts/get`, the lists,
    /// notifications, methods unknown to us...): the same decision as a tool call (capability
    /// with the caveats of what it names, policy with `input.method` and `input.params`; no
    /// intent, no budget), then the forward; a list answer is narrowed entry by entry.
    async fn mcp_other_method(
        &self,
        x: &Exchange<'_, '_>,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let req = x.req;
        let notification = req.is_notification();
        let params = match req.params_value() {
            Ok(p) => p,
            Err(err) => return self.answer_error(req.id, &err, x, out),
        };
        let target = match method::target_of(req, params.as_ref()) {
            Ok(t) => t,
            Err(err) => return self.answer_error(req.id, &err, x, out),
        };
        let snap = self.shared.snapshot.load();
        let call = self.method_call(x.buf, x.head, req.method, target, params.as_ref(), x.remote);
        let (slot, mut event, stages) = match self
            .authorize_and_record(&snap, x.buf, x.head, &call, x.started)
            .await
        {
            Err(refusal) => return refusal.write(out, x.close),
            Ok(Authorized::Denied {
                about_target: true, ..
            }) if !notification => {
                let err = method::not_found(target, self.modern(x));
                return self.answer_error(req.id, &err, x, out);
            }
            Ok(Authorized::Denied { error, .. }) => {
                return self.answer_denied(req.id, &error, notification, x, out);
            }
            Ok(Authorized::Allowed {
                slot,
                event,
                stages,
            }) => (slot, event, stages),
        };
        let Some(record) = self.before_forward(slot, &event).await else {
            return Refusal::AuditUnconfirmed.write(out, true);
        };
        let filter = self.list_filter(&snap, req.method, x.authorization());
        let mcp = McpIn::of(x.buf, x.head, x.session.upstream());
        let mut answer = match self
            .passthrough(req, x.body, &mut event, mcp, !notification)
            .await
        {
            UpstreamReply::Whole(a) => a,
            UpstreamReply::Stream(upstream) => {
                // A list stream is narrowed as its answer passes.
                let (session_id, requests_on) = self.stream_sessions(x, &upstream);
                *relay = Some(Relay {
                    upstream,
                    record: Some(record),
                    event,
                    stages,
                    id: req.id.map(<[u8]>::to_vec),
                    started: x.started,
                    close: x.close,
                    narrow: filter,
                    session_id,
                    requests_on,
                });
                return;
            }
        };
        self.seal_answer(x, &mut answer);
        if let Some(filter) = &filter {
            self.filter_answer(&snap, filter, &mut answer, &mut event);
        }
        event.latency_ms = elapsed_ms(x.started);
        stages.finish(&mut event);
        self.after_forward(record, event);
        answer.write(out, notification, x.close);
    }

    /// An answer as the agent gets it: the upstream's requests to the client in an event
    /// stream noted, and the session id sealed for the caller.
    fn seal_answer(&self, x: &Exchange<'_, '_>, answer: &mut Answer) {
        let upstream = answer.session_id.take();
        if answer.sse
            && let Some(s) = upstream.as_deref().or(x.session.upstream())
        {
            self.note_server_requests(s, &answer.body);
        }
        answer.session_id = self.reply_session(x.session, upstream.as_deref(), x.authorization());
    }

    /// A relayed stream's session id for the agent (sealed), and the upstream session its
    /// requests to the client are noted under.
    fn stream_sessions(
        &self,
        x: &Exchange<'_, '_>,
        upstream: &EventStream,
    ) -> (Option<String>, Option<String>) {
        let requests_on = upstream
            .session_id
            .clone()
            .or_else(|| x.session.upstream().map(str::to_owned));
        let auth = x.authorization();
        let sealed = self.reply_session(x.session, upstream.session_id.as_deref(), auth);
        (sealed, requests_on)
    }

    /// A JSON-RPC error the gateway answers itself, before or instead of a decision.
    fn answer_error(
        &self,
        id: Option<&[u8]>,
        err: &RpcError,
        x: &Exchange<'_, '_>,
        out: &mut Vec<u8>,
    ) {
        if x.req.is_notification() {
            return http::write_response(out, 202, b"", x.close, &[]);
        }
        let mut payload = Vec::with_capacity(256);
        jsonrpc::write_error(&mut payload, id, err);
        http::write_response(out, 200, &payload, x.close, &[]);
    }

    /// The client speaks the 2026-07-28 revision.
    fn modern(&self, x: &Exchange<'_, '_>) -> bool {
        let header = x.head.mcp_protocol_version.clone().map(|r| &x.buf[r]);
        crate::mcp_transport::revision(header) == Ok(crate::mcp_transport::Revision::Modern)
    }

    /// A refused request's answer (its record is already pushed). OAuth resource-server
    /// mode: a call without any token gets 401 and the challenge that tells a standard MCP
    /// client where to authenticate (the JSON-RPC error stays in the body for the
    /// IntentGate SDKs).
    fn answer_denied(
        &self,
        id: Option<&[u8]>,
        error: &RpcError,
        notification: bool,
        x: &Exchange<'_, '_>,
        out: &mut Vec<u8>,
    ) {
        let challenge = self
            .config
            .oauth
            .as_ref()
            .filter(|_| x.head.authorization.is_none() && error.code == code::CAPABILITY)
            .map(|m| ("WWW-Authenticate", m.challenge.as_str()));
        let extra: &[(&str, &str)] = match &challenge {
            Some(h) => std::slice::from_ref(h),
            None => &[],
        };
        if notification && challenge.is_none() {
            return http::write_response(out, 202, b"", x.close, &[]);
        }
        let mut payload = Vec::with_capacity(256);
        jsonrpc::write_error(&mut payload, id, error);
        let status = if challenge.is_some() { 401 } else { 200 };
        http::write_response(out, status, &payload, x.close, extra);
    }

    /// The MCP transport's header rules (`mcp_transport`): a served protocol version, and for
    /// 2026-07-28 clients headers that repeat the body.
    fn transport_rules(
        &self,
        buf: &[u8],
        head: &Head,
        req: &jsonrpc::Request<'_>,
    ) -> Result<(), crate::mcp_transport::Refusal> {
        use crate::mcp_transport::{self as t, Revision};
        let at = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
        if t::revision(at(&head.mcp_protocol_version))? != Revision::Modern {
            return Ok(());
        }
        let name = match req.method {
            "resources/read" => req.param_str("uri"),
            _ => req.param_str("name"),
        };
        t::check_modern(at(&head.mcp_method), at(&head.mcp_name), req.method, name)
    }
}

/// The MCP transport headers of an agent's request, passed on to the upstream.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct McpIn<'a> {
    /// The upstream's own session id (the agent's was opened: [`session`]).
    session: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    /// `Mcp-Method` and `Mcp-Name` (2026-07-28), already checked against the body.
    method: Option<&'a [u8]>,
    name: Option<&'a [u8]>,
    /// `Mcp-Param-*` headers, forwarded untouched.
    params: &'a [(std::ops::Range<usize>, std::ops::Range<usize>)],
    buf: &'a [u8],
}

impl<'a> McpIn<'a> {
    pub(crate) fn of(buf: &'a [u8], head: &'a Head, session: Option<&'a str>) -> Self {
        Self {
            session: session.map(str::as_bytes),
            version: head.mcp_protocol_version.clone().map(|r| &buf[r]),
            method: head.mcp_method.clone().map(|r| &buf[r]),
            name: head.mcp_name.clone().map(|r| &buf[r]),
            params: &head.mcp_params,
            buf,
        }
    }

    pub(crate) fn headers(&self) -> Vec<(&'a str, &'a [u8])> {
        let mut h: Vec<(&'a str, &'a [u8])> = [
            ("Mcp-Session-Id", self.session),
            ("MCP-Protocol-Version", self.version),
            ("Mcp-Method", self.method),
            ("Mcp-Name", self.name),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        let buf = self.buf;
        for (name, value) in self.params {
            // Header names are ASCII tokens (httparse checked them).
            if let Ok(n) = std::str::from_utf8(&buf[name.clone()]) {
                h.push((n, &buf[value.clone()]));
            }
        }
        h
    }
}
