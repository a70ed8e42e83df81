//! Phase 2, routing: one function from a framed request to its handler ([`Worker::handle`])
//! and one type for every answer the gateway gives of its own accord rather than from a
//! handler's result ([`Refusal`]), so each status code, body and header is written in one
//! place.

use std::sync::atomic::Ordering;

use crate::http::{self, Head, HttpError, Method};
use crate::jsonrpc::{self, RpcError};
use crate::relay::events::Relay;
use crate::worker::Worker;

/// An answer the gateway writes itself: the kind of refusal (`Copy`, so it is passed and
/// returned freely on the request path) whose status, body and headers are static, or which
/// borrows the detail it reports.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal<'a> {
    /// A framing error from the HTTP parser.
    Http(HttpError),
    /// The buffered request exceeds head + body + framing limits (413).
    TooLarge,
    /// A request head (or body) did not arrive within the head timeout (408).
    HeadTimeout,
    /// The core is at its connection limit (503).
    TooManyConnections,
    /// A known path with a method it does not serve (405).
    MethodNotAllowed,
    /// An unknown path (404).
    NoRoute,
    /// `/v1/admin/*` on a data-plane listener that does not relay it (404).
    AdminDisabled,
    /// The admin listener did not answer the relay (502).
    AdminUnavailable,
    /// A request line that is not text (400).
    Malformed,
    /// A compressed body (`Content-Encoding`): the gateway authorizes the bytes it reads
    /// and forwards, so it takes none it would have to decode (415).
    Encoded,
    /// A body declared as something other than JSON (415).
    NotJson,
    /// A browser origin not in `INTENTGATE_ALLOWED_ORIGINS` (403); `mcp`: answer as JSON-RPC.
    Origin {
        /// The route is `/v1/mcp`.
        mcp: bool,
    },
    /// No audit slot: the call is refused so that no decision goes unrecorded (503).
    AuditFull,
    /// Sync durability: the record was not committed in time; nothing was forwarded (503,
    /// and the connection closes).
    AuditUnconfirmed,
    /// `GET`/`DELETE /v1/mcp` where there is no stream to open or end (405, `Allow: POST`).
    NoStream,
    /// The MCP transport headers are refused (400): as a JSON-RPC error for clients of the
    /// revision that has one, else as a plain error.
    Transport {
        /// What is wrong, and the JSON-RPC code for modern clients.
        refusal: &'a crate::mcp_transport::Refusal,
        /// The request id, when the body was parsed.
        id: Option<&'a [u8]>,
    },
    /// An `Mcp-Session-Id` that is unknown, expired or not the caller's (404: the client
    /// starts a new session). One answer whatever the reason, which only the audit record
    /// tells: the id's owner is nobody else's business.
    UnknownSession {
        /// `Some(id)`: a POST, answered as a JSON-RPC error with its id; `None`: plain.
        rpc: Option<Option<&'a [u8]>>,
    },
    /// A JSON-RPC error answered with a non-200 status (403 for a refused stream, 502 for an
    /// upstream failure of one).
    Rpc {
        /// HTTP status.
        status: u16,
        /// The error.
        error: &'a RpcError,
    },
}

impl Refusal<'_> {
    /// Appends the answer to `out`.
    pub(crate) fn write(self, out: &mut Vec<u8>, close: bool) {
        let error = |status, message| HttpError { status, message };
        match self {
            Self::Http(e) => http::write_error(out, e, close),
            Self::TooLarge => http::write_error(out, error(413, "request too large"), close),
            Self::HeadTimeout => {
                http::write_error(out, error(408, "request not received in time"), close);
            }
            Self::TooManyConnections => http::write_response(
                out,
                503,
                br#"{"error":"too many connections on this core; retry later"}"#,
                close,
                &[("Retry-After", "1")],
            ),
            Self::MethodNotAllowed => {
                http::write_error(out, error(405, "method not allowed"), close);
            }
            Self::NoRoute => http::write_error(out, error(404, "no such route"), close),
            Self::AdminDisabled => http::write_error(
                out,
                error(404, "admin API is not enabled on this listener"),
                close,
            ),
            Self::AdminUnavailable => {
                http::write_error(out, error(502, "admin API unavailable"), close);
            }
            Self::Malformed => http::write_error(out, error(400, "malformed HTTP request"), close),
            Self::Encoded => http::write_error(
                out,
                error(
                    415,
                    "compressed request bodies are refused: send the JSON without Content-Encoding",
                ),
                close,
            ),
            Self::NotJson => http::write_error(
                out,
                error(415, "Content-Type must be application/json"),
                close,
            ),
            Self::Origin { mcp: true } => http::write_response(
                out,
                403,
                br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"origin not allowed (INTENTGATE_ALLOWED_ORIGINS)"}}"#,
                close,
                &[],
            ),
            Self::Origin { mcp: false } => http::write_error(
                out,
                error(403, "origin not allowed (INTENTGATE_ALLOWED_ORIGINS)"),
                close,
            ),
            Self::AuditFull => http::write_response(
                out,
                503,
                br#"{"error":"audit queue full: call refused so that no decision goes unrecorded"}"#,
                close,
                &[("Retry-After", "1")],
            ),
            Self::AuditUnconfirmed => http::write_response(
                out,
                503,
                br#"{"error":"audit record not committed in time: call not forwarded"}"#,
                true,
                &[("Retry-After", "1")],
            ),
            Self::NoStream => http::write_response(
                out,
                405,
                br#"{"error":"method not allowed"}"#,
                close,
                &[("Allow", "POST")],
            ),
            Self::Transport { refusal, id } => {
                let mut body = Vec::with_capacity(128);
                match refusal.code {
                    Some(code) => {
                        let e = RpcError::new(code, refusal.message.clone());
                        jsonrpc::write_error(&mut body, id, &e);
                    }
                    None => plain_error(&mut body, &refusal.message),
                }
                http::write_response(out, 400, &body, close, &[]);
            }
            Self::UnknownSession { rpc } => unknown_session(out, rpc, close),
            Self::Rpc { status, error } => {
                let mut body = Vec::with_capacity(256);
                jsonrpc::write_error(&mut body, Some(b"null"), error);
                http::write_response(out, status, &body, close, &[]);
            }
        }
    }
}

/// 404 for an `Mcp-Session-Id` not served: a JSON-RPC error with the request's id for a
/// POST, a plain error otherwise.
fn unknown_session(out: &mut Vec<u8>, rpc: Option<Option<&[u8]>>, close: bool) {
    let mut body = Vec::with_capacity(256);
    match rpc {
        Some(id) => {
            let e = RpcError::with_reason(
                jsonrpc::code::INVALID_REQUEST,
                "session not found",
                UNKNOWN_SESSION,
            );
            jsonrpc::write_error(&mut body, id, &e);
        }
        None => plain_error(&mut body, UNKNOWN_SESSION),
    }
    http::write_response(out, 404, &body, close, &[]);
}

/// What an unknown session's answer says.
const UNKNOWN_SESSION: &str = "session not found: unknown, expired or opened by another token; start a new session with initialize";

/// Why a call's body is refused before it is parsed: compressed, or declared as not JSON
/// (`application/json`, parameters such as `charset` allowed; no header: JSON assumed).
fn body_media(buf: &[u8], head: &Head) -> Option<Refusal<'static>> {
    if head.content_encoded {
        return Some(Refusal::Encoded);
    }
    let declared = &buf[head.content_type.clone()?];
    let media = declared
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    (!media.eq_ignore_ascii_case(b"application/json")).then_some(Refusal::NotJson)
}

/// `{"error": message}` with the message escaped as Go would.
fn plain_error(body: &mut Vec<u8>, message: &str) {
    body.extend_from_slice(b"{\"error\":");
    intentgate_shared::gojson::write_str(body, message);
    body.push(b'}');
}

impl Worker {
    /// Routes one framed request to its handler, which appends its answer to `out` (or
    /// hands an event stream back in `relay`).
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one framed request, borrowed from the connection's buffers"
    )]
    pub(crate) async fn handle(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let path = &buf[head.path.clone()];
        let method = head.method.unwrap_or(Method::Other);
        if let Some(origin) = head.origin.clone()
            && matches!(path, b"/v1/mcp" | b"/v1/tool-call")
            && !self.config.origins.allows(&buf[origin])
        {
            // DNS rebinding: a page elsewhere whose name resolves to this gateway.
            return Refusal::Origin {
                mcp: path == b"/v1/mcp",
            }
            .write(out, close);
        }
        let admin = path.starts_with(b"/v1/admin/") || path == b"/v1/admin";
        if method == Method::Post
            && matches!(path, b"/v1/mcp" | b"/v1/tool-call")
            && let Some(refusal) = body_media(buf, head)
        {
            return refusal.write(out, close);
        }
        match (path, method) {
            (b"/healthz", Method::Get) => self.health(out, close),
            (p, Method::Get) if self.config.oauth.as_ref().is_some_and(|m| m.serves(p)) => {
                if let Some(m) = &self.config.oauth {
                    http::write_response(out, 200, &m.body, close, &[]);
                }
            }
            // Liveness: the worker answers. Readiness (stale snapshot, draining) is /healthz.
            (b"/livez", Method::Get) => {
                http::write_response(out, 200, br#"{"status":"alive"}"#, close, &[]);
            }
            (b"/v1/mcp", Method::Post) => {
                self.mcp(buf, head, body, remote, close, out, relay).await;
            }
            (b"/v1/tool-call", Method::Post) => {
                self.tool_call(buf, head, body, remote, close, out).await;
            }
            (b"/v1/mcp", Method::Get | Method::Delete) => {
                self.mcp_stream_or_end(buf, head, remote, close, out, relay)
                    .await;
            }
            (b"/healthz" | b"/livez" | b"/v1/mcp" | b"/v1/tool-call", _) => {
                Refusal::MethodNotAllowed.write(out, close);
            }
            _ if admin && self.admin.is_some() => {
                self.relay_admin(buf, head, body, remote, close, out).await;
            }
            _ if admin => Refusal::AdminDisabled.write(out, close),
            _ => Refusal::NoRoute.write(out, close),
        }
    }

    /// `/healthz`: 200 `ok`, or 503 `draining` / `stale`.
    fn health(&self, out: &mut Vec<u8>, close: bool) {
        let status = if self.shared.draining.load(Ordering::Acquire) {
            "draining"
        } else if self.stale() {
            "stale"
        } else {
            "ok"
        };
        let body = format!(
            "{{\"status\":\"{status}\",\"version\":\"{}\"}}",
            intentgate_shared::VERSION
        );
        let code = if status == "ok" { 200 } else { 503 };
        http::write_response(out, code, body.as_bytes(), close, &[]);
    }
}
