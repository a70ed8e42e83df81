//! An upstream event stream relayed to the agent as it arrives: a chunked
//! `text/event-stream` answer written as whole events only, the response to the request
//! watched for (and a list answer narrowed as it passes), the upstream's requests to the
//! client noted (`server_requests`), the call's record written when the stream ends. The
//! response head is already gone when a stream breaks, so a
//! failure reaches the agent as a final JSON-RPC error event.

use std::time::Instant;

use monoio::net::TcpStream;

use intentgate_shared::audit::AuditEvent;

use crate::forward::{Forwarded, UpstreamFault, malformed_upstream};
use crate::jsonrpc;
use crate::list_filter::ListFilter;
use crate::server_requests::id_key;
use crate::stages::Stages;
use crate::upstream::EventStream;
use crate::worker::{Worker, elapsed_ms};

/// A request whose upstream answers with an event stream, handed to the connection loop to
/// relay ([`Worker::relay`]).
pub(crate) struct Relay {
    pub(crate) upstream: EventStream,
    /// Where the call's record goes when the stream ends (None: recorded when it opened).
    pub(crate) record: Option<Forwarded>,
    pub(crate) event: AuditEvent,
    pub(crate) stages: Stages,
    pub(crate) id: Option<Vec<u8>>,
    pub(crate) started: Instant,
    pub(crate) close: bool,
    /// A list answer is narrowed with this filter as it passes.
    pub(crate) narrow: Option<ListFilter>,
    /// The session id the agent sees on the answer (sealed; never the upstream's).
    pub(crate) session_id: Option<String>,
    /// The upstream session whose requests to the client (sampling, elicitation, roots)
    /// are noted as they pass, so the client's responses can be matched to them.
    pub(crate) requests_on: Option<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

/// How the relay loop ended.
struct Pumped {
    /// The agent still reads.
    client_ok: bool,
    /// Why the stream failed, if it did.
    failure: Option<UpstreamFault>,
}

impl Worker {
    /// Relays `job`'s stream, then writes the call's audit record. False: close the
    /// connection.
    pub(crate) async fn relay(&self, stream: &mut TcpStream, mut job: Relay) -> bool {
        let head = stream_head(job.session_id.as_deref(), job.close);
        let client_ok = self.send_to_agent(stream, head).await;
        let Pumped {
            mut client_ok,
            failure,
        } = self.pump(stream, &mut job, client_ok).await;
        // A GET stream has no answer to wait for: it just ends.
        if let Some(fault) = failure.filter(|_| job.record.is_some()) {
            let err = malformed_upstream(&mut job.event, &fault);
            if client_ok {
                let mut payload = Vec::with_capacity(256);
                jsonrpc::write_error(&mut payload, job.id.as_deref(), &err);
                let mut chunk = Vec::with_capacity(payload.len() + 32);
                crate::sse::write_event(
                    &mut chunk,
                    &crate::sse::Event {
                        data: String::from_utf8_lossy(&payload).into_owned(),
                        ..crate::sse::Event::default()
                    },
                );
                client_ok = self.send_to_agent(stream, http_chunk(&chunk)).await;
            }
        }
        if client_ok {
            client_ok = self.send_to_agent(stream, b"0\r\n\r\n".to_vec()).await;
        }
        let Relay {
            record,
            mut event,
            stages,
            started,
            close,
            ..
        } = job;
        event.latency_ms = elapsed_ms(started);
        stages.finish(&mut event);
        if let Some(record) = record {
            self.after_forward(record, event);
        }
        client_ok && !close
    }

    /// Passes whole events to the agent until the stream ends, fails, answers the request
    /// (a stream that stays open after its answer must not hold this connection) or the
    /// agent goes away.
    async fn pump(&self, stream: &mut TcpStream, job: &mut Relay, mut client_ok: bool) -> Pumped {
        let want: serde_json::Value = job
            .id
            .as_deref()
            .and_then(|i| serde_json::from_slice(i).ok())
            .unwrap_or(serde_json::Value::Null);
        let mut parser = crate::sse::Parser::new(self.config.max_body.max(1));
        let mut answered = false;
        let waits_for_answer = job.record.is_some();
        let failure = loop {
            if !client_ok {
                // Closing the upstream stream is the cancellation (2026-07-28).
                job.event
                    .reason
                    .push_str(" (agent disconnected mid-stream)");
                break None;
            }
            match job.upstream.next().await {
                Ok(Some(bytes)) => match parser.push(&bytes) {
                    Ok(mut events) => {
                        // Whole events only, so a stream cut later leaves no half event
                        // at the agent.
                        let mut chunk = Vec::with_capacity(bytes.len() + 64);
                        for e in &mut events {
                            answered |= self.watch_event(e, &want, job);
                            crate::sse::write_event(&mut chunk, e);
                        }
                        if !chunk.is_empty() {
                            client_ok = self.send_to_agent(stream, http_chunk(&chunk)).await;
                        }
                        if answered && waits_for_answer {
                            break None;
                        }
                    }
                    Err(e) => break Some(UpstreamFault::MalformedStream(e)),
                },
                Ok(None) if parser.mid_event() => break Some(UpstreamFault::CutMidEvent),
                Ok(None) if !answered && waits_for_answer => break Some(UpstreamFault::NoResponse),
                Ok(None) => break None,
                Err(_) if answered => break None,
                Err(e) => break Some(UpstreamFault::StreamFailed(e.detail())),
            }
        };
        Pumped { client_ok, failure }
    }
}

impl Worker {
    /// True when `e` is the response to the request; a list response is narrowed in place.
    /// A request of the upstream to the client is noted before the client sees it.
    fn watch_event(
        &self,
        e: &mut crate::sse::Event,
        want: &serde_json::Value,
        job: &mut Relay,
    ) -> bool {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&e.data) else {
            return false;
        };
        if v.get("result").is_none() && v.get("error").is_none() {
            if let Some(session) = &job.requests_on {
                self.note_server_request(session, &v);
            }
            return false;
        }
        if v.get("id") != Some(want) {
            return false;
        }
        if let Some(filter) = &job.narrow {
            let snap = self.shared.snapshot.load();
            if self.narrow_list(&snap, filter, &mut v, &mut job.event) {
                e.data = v.to_string();
            }
        }
        true
    }

    /// Notes `message` if it is a request of the upstream to its client on `session`.
    pub(crate) fn note_server_request(&self, session: &str, message: &serde_json::Value) {
        let method = message.get("method").and_then(serde_json::Value::as_str);
        let id = message.get("id").and_then(id_key);
        if let (Some(method), Some(id)) = (method, id) {
            self.shared
                .server_requests
                .record(session, id, method, Instant::now());
        }
    }

    /// Notes the upstream's requests to the client in an event-stream answer read whole.
    pub(crate) fn note_server_requests(&self, session: &str, body: &[u8]) {
        let mut parser = crate::sse::Parser::new(self.config.max_body.max(1));
        for e in parser.push(body).unwrap_or_default() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.data) {
                self.note_server_request(session, &v);
            }
        }
    }
}

/// The relayed answer's head: a chunked event stream, with the upstream's session.
fn stream_head(session_id: Option<&str>, close: bool) -> Vec<u8> {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n",
    );
    if let Some(sid) = session_id {
        head.push_str(&format!("Mcp-Session-Id: {sid}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// One HTTP/1.1 chunk.
fn http_chunk(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}
