//! Phase 5, the forward: an authorized request goes to the upstream MCP server (or, without
//! one, gets the gateway's stub answer), with its audit record written around it: before
//! the forward and committed in sync durability, after it otherwise. An upstream failure or
//! an answer that is not JSON-RPC becomes a block at the `upstream` stage.

use std::time::Instant;

use intentgate_shared::audit::{AuditEvent, Check, Decision};

use crate::audit_ring::Reservation;
use crate::http;
use crate::jsonrpc::{self, RpcError, code};
use crate::mcp::McpIn;
use crate::stages::{self, Stages};
use crate::upstream::{Answered, EventStream, Response, UpstreamError};
use crate::worker::{Worker, elapsed_ms};

/// How a forwarded call's audit record is written ([`Worker::before_forward`]).
pub(crate) enum Forwarded {
    /// After the forward, into this slot (async durability).
    RecordAfter(Reservation),
    /// Before the forward, committed (sync durability).
    RecordedBefore,
}

/// Why an upstream answer cannot be passed on: a block at the `upstream` stage, and the
/// agent's -32603 (the text is both the audit reason and the error message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpstreamFault {
    /// The event stream does not parse.
    #[error("malformed upstream event stream: {0}")]
    MalformedStream(#[from] crate::sse::SseError),
    /// The stream ended inside an event.
    #[error("upstream event stream was cut mid-event")]
    CutMidEvent,
    /// The stream ended without the response to the request.
    #[error("upstream event stream ended without a response")]
    NoResponse,
    /// Reading the stream failed.
    #[error("upstream event stream failed: {0}")]
    StreamFailed(String),
    /// A JSON answer that is not a JSON-RPC response.
    #[error("upstream returned non-JSON-RPC body")]
    NotJsonRpc,
}

/// What a forward got back: an answer to write, or an event stream to relay.
pub(crate) enum UpstreamReply {
    Whole(Answer),
    Stream(EventStream),
}

impl Worker {
    /// Before an allowed call leaves for the upstream. In sync durability (with an
    /// upstream) the allow decision is recorded now and its commit awaited; `None`: it was not
    /// committed in time and the call must not be forwarded. Otherwise the slot waits for
    /// the record written after the forward.
    pub(crate) async fn before_forward(
        &self,
        slot: Reservation,
        event: &AuditEvent,
    ) -> Option<Forwarded> {
        if self.shared.commit_watch.is_none() || self.upstream.is_none() {
            return Some(Forwarded::RecordAfter(slot));
        }
        let mut early = event.clone();
        early.reason.push_str(" (recorded before forwarding)");
        self.audit.borrow_mut().push_reserved(slot, early);
        self.committed().await.then_some(Forwarded::RecordedBefore)
    }

    /// After the forward: writes the call's record, or, when it was recorded before, only a
    /// failure.
    pub(crate) fn after_forward(&self, record: Forwarded, event: AuditEvent) {
        match record {
            Forwarded::RecordAfter(slot) => {
                self.audit.borrow_mut().push_reserved(slot, event);
            }
            // The answer waits for this record's commit too (`committed`); a full ring here
            // only loses the failure detail, the forward itself is on record.
            Forwarded::RecordedBefore if event.decision == Decision::Block => {
                let _ = self.audit.borrow_mut().push(event);
            }
            Forwarded::RecordedBefore => {}
        }
    }

    /// Forwards an allowed `tools/call`, or answers with the stub result without an upstream.
    pub(crate) async fn forward_call(
        &self,
        req: &jsonrpc::Request<'_>,
        body: &[u8],
        event: &mut AuditEvent,
        started: Instant,
        stages: &mut Stages,
        mcp: McpIn<'_>,
    ) -> UpstreamReply {
        let mut payload = Vec::with_capacity(512);
        let Some(upstream) = &self.upstream else {
            // Written directly: this path is the gateway's own throughput ceiling.
            let mut result = Vec::with_capacity(256);
            result.extend_from_slice(br#"{"content":[{"type":"text","text":"stub: no upstream configured; gateway authorized this call"}],"isError":false,"_intentgate":{"decision":"allow","reason":"stub: no upstream configured","latency_ms":"#);
            result.extend_from_slice(elapsed_ms(started).to_string().as_bytes());
            result.extend_from_slice(b"}}");
            event.reason.push_str(" (stub upstream)");
            jsonrpc::write_result(&mut payload, req.id, &result);
            return UpstreamReply::Whole(Answer::json(payload));
        };
        let sent = Instant::now();
        stages.mark_at(sent);
        let traceparent = stages.next_traceparent();
        let mut headers = mcp.headers();
        if let Some(tp) = traceparent.as_deref() {
            headers.push(("traceparent", tp.as_bytes()));
        }
        let answer = upstream.post_answer(body, &headers, true).await;
        let done = Instant::now();
        let metrics = self.metrics();
        stages.end_at(stages::UPSTREAM, done, metrics);
        metrics.upstream_idle.set(upstream.idle() as u64);
        let outcome = match &answer {
            Ok(_) => 0,
            Err(e) => crate::metrics::OUTCOMES
                .iter()
                .position(|o| *o == e.kind())
                .unwrap_or(2),
        };
        metrics.forward(outcome, done.saturating_duration_since(sent));
        match answer {
            Ok(Answered::Stream(stream)) => {
                event.upstream_status = i64::from(stream.status);
                UpstreamReply::Stream(stream)
            }
            Ok(Answered::Whole(resp)) => {
                event.upstream_status = i64::from(resp.status);
                let session_id = resp.session_id.clone();
                if is_event_stream(&resp) {
                    // The stream is relayed as sent once its final answer is found.
                    return UpstreamReply::Whole(
                        match final_answer(&resp.body, req.id, self.config.max_body) {
                            Ok(_) => Answer {
                                body: resp.body,
                                sse: true,
                                session_id,
                            },
                            Err(fault) => {
                                let err = malformed_upstream(event, &fault);
                                jsonrpc::write_error(&mut payload, req.id, &err);
                                Answer::json(payload)
                            }
                        },
                    );
                }
                let body = match inject_block(&resp.body, elapsed_ms(started) as u64) {
                    Some(b) => b,
                    None => {
                        let err = malformed_upstream(event, &UpstreamFault::NotJsonRpc);
                        jsonrpc::write_error(&mut payload, req.id, &err);
                        payload
                    }
                };
                UpstreamReply::Whole(Answer {
                    body,
                    sse: false,
                    session_id,
                })
            }
            Err(e) => {
                event.upstream_status = i64::from(e.status());
                let err = upstream_failure(event, &e);
                jsonrpc::write_error(&mut payload, req.id, &err);
                UpstreamReply::Whole(Answer::json(payload))
            }
        }
    }

    /// Methods other than `tools/call`: forwarded as they are, or the local fallbacks.
    pub(crate) async fn passthrough(
        &self,
        req: &jsonrpc::Request<'_>,
        body: &[u8],
        event: &mut AuditEvent,
        mcp: McpIn<'_>,
        stream: bool,
    ) -> UpstreamReply {
        let mut payload = Vec::with_capacity(256);
        if let Some(upstream) = &self.upstream {
            match upstream.post_answer(body, &mcp.headers(), stream).await {
                Ok(Answered::Stream(s)) => {
                    event.upstream_status = i64::from(s.status);
                    return UpstreamReply::Stream(s);
                }
                Ok(Answered::Whole(resp)) => {
                    event.upstream_status = i64::from(resp.status);
                    let session_id = resp.session_id.clone();
                    let valid = if is_event_stream(&resp) {
                        final_answer(&resp.body, req.id, self.config.max_body).map(|_| true)
                    } else if resp.body.is_empty()
                        || serde_json::from_slice::<&serde_json::value::RawValue>(&resp.body)
                            .is_ok()
                    {
                        Ok(false)
                    } else {
                        Err(UpstreamFault::NotJsonRpc)
                    };
                    match valid {
                        Ok(sse) => {
                            return UpstreamReply::Whole(Answer {
                                body: resp.body,
                                sse,
                                session_id,
                            });
                        }
                        Err(fault) => {
                            let err = malformed_upstream(event, &fault);
                            jsonrpc::write_error(&mut payload, req.id, &err);
                        }
                    }
                }
                Err(e) => {
                    let err = upstream_failure(event, &e);
                    jsonrpc::write_error(&mut payload, req.id, &err);
                }
            }
            return UpstreamReply::Whole(Answer::json(payload));
        }
        let result: &[u8] = match req.method {
            "initialize" => br#"{"protocolVersion":"2025-03-26","serverInfo":{"name":"intentgate","version":"0.2"},"capabilities":{"tools":{}}}"#,
            "tools/list" => br#"{"tools":[]}"#,
            "ping" => b"{}",
            other => {
                let err = RpcError::new(code::METHOD_NOT_FOUND, format!("method not implemented: {other}"));
                jsonrpc::write_error(&mut payload, req.id, &err);
                return UpstreamReply::Whole(Answer::json(payload));
            }
        };
        jsonrpc::write_result(&mut payload, req.id, result);
        UpstreamReply::Whole(Answer::json(payload))
    }
}

/// Marks `event` as blocked at the upstream stage and builds the compat -32603 error
/// (`upstream <kind>`, data `{upstream_status, detail}`).
pub(crate) fn upstream_failure(event: &mut AuditEvent, e: &UpstreamError) -> RpcError {
    event.decision = Decision::Block.into();
    event.check = Check::Upstream.into();
    event.reason = format!("upstream {}: {}", e.kind(), e.detail());
    let data = serde_json::json!({"upstream_status": e.status(), "detail": e.detail()});
    RpcError {
        code: code::INTERNAL,
        message: format!("upstream {}", e.kind()).into(),
        data: Some(data.to_string().into_bytes()),
    }
}

/// Adds `_intentgate` to a JSON-RPC result object; `None` when the body is not JSON-RPC.
fn inject_block(body: &[u8], latency_ms: u64) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = doc.as_object_mut()?;
    if !obj.contains_key("result") && !obj.contains_key("error") {
        return None;
    }
    if let Some(result) = obj
        .get_mut("result")
        .and_then(serde_json::Value::as_object_mut)
    {
        result.insert(
            "_intentgate".into(),
            jsonrpc::intentgate_block("forwarded", latency_ms),
        );
    }
    serde_json::to_vec(&doc).ok()
}

/// What goes back to the agent for a forwarded request.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
    /// The body is an event stream (relayed as `text/event-stream`).
    pub(crate) sse: bool,
    /// The `Mcp-Session-Id` written: the upstream's as it answered, replaced by the
    /// sealed id the agent sees before the answer is written (`mcp::session`).
    pub(crate) session_id: Option<String>,
}

impl Answer {
    pub(crate) fn json(body: Vec<u8>) -> Self {
        Self {
            body,
            sse: false,
            session_id: None,
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, notification: bool, close: bool) {
        let session = self.session_id.as_deref().map(|s| ("Mcp-Session-Id", s));
        let extra: &[(&str, &str)] = match &session {
            Some(h) => std::slice::from_ref(h),
            None => &[],
        };
        if notification {
            http::write_response(out, 202, b"", close, extra);
        } else if self.sse {
            http::write_response_as(out, 200, &self.body, "text/event-stream", close, extra);
        } else {
            http::write_response(out, 200, &self.body, close, extra);
        }
    }
}

fn is_event_stream(resp: &Response) -> bool {
    resp.content_type.as_deref().is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
    })
}

/// The event of an upstream event stream that answers the request `id`: its final JSON-RPC
/// response. A stream that is cut, oversized, not UTF-8 or ends without one is malformed.
pub(crate) fn final_answer(
    body: &[u8],
    id: Option<&[u8]>,
    max_event: usize,
) -> Result<serde_json::Value, UpstreamFault> {
    let mut parser = crate::sse::Parser::new(max_event.max(1));
    let events = parser.push(body)?;
    if parser.mid_event() {
        return Err(UpstreamFault::CutMidEvent);
    }
    let want: serde_json::Value = id
        .and_then(|i| serde_json::from_slice(i).ok())
        .unwrap_or(serde_json::Value::Null);
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.data).ok())
        .find(|v| {
            v.get("id") == Some(&want) && (v.get("result").is_some() || v.get("error").is_some())
        })
        .ok_or(UpstreamFault::NoResponse)
}

/// Marks `event` as blocked at the upstream stage for an answer that is not JSON-RPC, and
/// builds the agent's -32603.
pub(crate) fn malformed_upstream(event: &mut AuditEvent, fault: &UpstreamFault) -> RpcError {
    let reason = fault.to_string();
    event.decision = Decision::Block.into();
    event.check = Check::Upstream.into();
    event.reason.clone_from(&reason);
    RpcError::new(code::INTERNAL, reason)
}
