//! The upstream MCP server client: HTTP/1.1 over a per-core keep-alive pool.
//!
//! One pool per core (no locks, no cross-thread handoff). `https://` upstreams use rustls
//! (ring provider; Mozilla roots plus an optional operator CA file). The agent's capability
//! token is never forwarded: requests carry only the headers built here.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};

use crate::http::decode_chunked;

/// Idle connections kept per core.
const POOL_SIZE: usize = 64;
/// Idle connections older than this are not reused: servers close idle keep-alive
/// connections (Node after 5 s), and a request written into one may be lost or, worse,
/// half-processed. A call is never retried once its request was written.
const POOL_IDLE: Duration = Duration::from_secs(4);

mod target;

pub use target::{TargetError, Tls, UpstreamTarget, load_ca_file};

/// A pooled connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Conn::Plain",
            Self::Tls(_) => "Conn::Tls",
        })
    }
}

impl Conn {
    async fn write_all(&mut self, buf: Vec<u8>) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(buf).await.0.map(drop),
            Self::Tls(s) => s.write_all(buf).await.0.map(drop),
        }
    }

    /// An idle pooled connection the peer already closed (or sent unsolicited bytes on) is
    /// readable; a live one is not. (monoio-rustls does not lend its socket out, so a TLS
    /// connection is taken as open: a stale one fails its write and is retried.)
    fn closed_by_peer(&self) -> bool {
        match self {
            Self::Plain(s) => crate::socket_peek::peek(s) != crate::socket_peek::Peek::Idle,
            Self::Tls(_) => false,
        }
    }

    async fn read_into(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        let (res, slice) = match self {
            Self::Plain(s) => s.read(buf.slice_mut(len..)).await,
            Self::Tls(s) => s.read(buf.slice_mut(len..)).await,
        };
        (res, slice.into_inner())
    }
}

/// Why a forward failed (COMPATIBILITY.md §3: -32603 `upstream <kind>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// No answer within the timeout.
    Timeout,
    /// Connect, write or read failed.
    Transport(String),
    /// Status ≥ 400, or a response we cannot frame.
    Http {
        /// Status (0 when the response was unreadable).
        status: u16,
        /// What went wrong.
        detail: String,
    },
}

impl UpstreamError {
    /// `transport`, `timeout`, `upstream_http`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Transport(_) => "transport",
            Self::Http { .. } => "upstream_http",
        }
    }

    /// Status for the error data (0 when none).
    pub fn status(&self) -> u16 {
        match self {
            Self::Http { status, .. } => *status,
            _ => 0,
        }
    }

    /// Human-readable detail.
    pub fn detail(&self) -> String {
        match self {
            Self::Timeout => "no response within the upstream timeout".into(),
            Self::Transport(d) | Self::Http { detail: d, .. } => d.clone(),
        }
    }
}

/// A complete upstream response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Decoded body.
    pub body: Vec<u8>,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// `Mcp-Session-Id`, if sent (visible ASCII only, as the MCP transport requires).
    pub session_id: Option<String>,
    /// Bytes of the buffer this response occupied.
    consumed: usize,
}

/// A request to send (the client adds `Host`, `User-Agent` and `Content-Length`).
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Method.
    pub method: &'a str,
    /// Request target (path and query).
    pub path: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Body.
    pub body: &'a [u8],
    /// Return error statuses as responses (relays) instead of failing.
    pub pass_errors: bool,
    /// Hand back a `text/event-stream` answer unread ([`Answered::Stream`]) instead of
    /// reading it whole.
    pub stream_events: bool,
}

/// An answer: read whole, or an event stream to read as it arrives.
#[derive(Debug)]
pub enum Answered {
    /// The whole response.
    Whole(Response),
    /// A `text/event-stream` body, not read yet.
    Stream(EventStream),
}

/// An upstream event-stream body, read as the upstream sends it. The connection is not
/// pooled afterwards; dropping it closes the stream (cancellation in MCP 2026-07-28).
#[derive(Debug)]
pub struct EventStream {
    conn: Conn,
    pending: Vec<u8>,
    framing: Framing,
    /// Status code.
    pub status: u16,
    /// `Mcp-Session-Id`, if sent.
    pub session_id: Option<String>,
    /// Longest wait for the next bytes.
    idle_timeout: Duration,
}

#[derive(Debug)]
enum Framing {
    /// Chunked: the size line of the next chunk, or this many data bytes (+ CRLF) left.
    Chunked { left: usize, in_data: bool },
    /// Content-Length: bytes left.
    Length(usize),
    /// Until the upstream closes.
    Close,
    /// Ended.
    Done,
}

impl EventStream {
    /// The next body bytes; `Ok(None)` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, UpstreamError> {
        loop {
            if let Some(out) = self.take()? {
                return Ok(Some(out));
            }
            if matches!(self.framing, Framing::Done) {
                return Ok(None);
            }
            if self.pending.capacity() - self.pending.len() < 4096 {
                self.pending.reserve(8192);
            }
            let buf = std::mem::take(&mut self.pending);
            let read = monoio::time::timeout(self.idle_timeout, self.conn.read_into(buf)).await;
            let (res, back) = read.map_err(|_| UpstreamError::Timeout)?;
            self.pending = back;
            match res {
                Ok(0) if matches!(self.framing, Framing::Close) => {
                    self.framing = Framing::Done;
                }
                Ok(0) => {
                    return Err(UpstreamError::Transport(
                        "upstream closed mid-stream".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(UpstreamError::Transport(format!("read: {e}"))),
            }
        }
    }

    /// Decodes what `pending` holds into body bytes (None: nothing yet).
    fn take(&mut self) -> Result<Option<Vec<u8>>, UpstreamError> {
        let bad = |d: &str| UpstreamError::Http {
            status: 0,
            detail: d.to_owned(),
        };
        match &mut self.framing {
            Framing::Done => Ok(None),
            Framing::Close => {
                if self.pending.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(std::mem::take(&mut self.pending)))
                }
            }
            Framing::Length(left) => {
                if *left == 0 {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let n = (*left).min(self.pending.len());
                *left -= n;
                let out: Vec<u8> = self.pending.drain(..n).collect();
                if *left == 0 {
                    self.framing = Framing::Done;
                }
                Ok(Some(out))
            }
            Framing::Chunked { left, in_data } => {
                let mut out = Vec::new();
                loop {
                    if *in_data {
                        if *left > 0 {
                            if self.pending.is_empty() {
                                break;
                            }
                            let n = (*left).min(self.pending.len());
                            out.extend(self.pending.drain(..n));
                            *left -= n;
                            continue;
                        }
                        if self.pending.len() < 2 {
                            break;
                        }
                        if &self.pending[..2] != b"\r\n" {
                            return Err(bad("malformed chunk in upstream stream"));
                        }
                        self.pending.drain(..2);
                        *in_data = false;
                    }
                    let Some(eol) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                        if self.pending.len() > 1024 {
                            return Err(bad("malformed chunk size in upstream stream"));
                        }
                        break;
                    };
                    let line = std::str::from_utf8(&self.pending[..eol]).unwrap_or("");
                    let size =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                            .map_err(|_| bad("malformed chunk size in upstream stream"))?;
                    self.pending.drain(..eol + 2);
                    if size == 0 {
                        // Trailers are not used by event streams; the stream is over.
                        self.framing = Framing::Done;
                        break;
                    }
                    *left = size;
                    *in_data = true;
                }
                Ok((!out.is_empty()).then_some(out))
            }
        }
    }
}

/// Per-core client.
pub struct Upstream {
    target: UpstreamTarget,
    connector: Option<TlsConnector>,
    idle: RefCell<Vec<(Conn, std::time::Instant)>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("target", &self.target)
            .field("idle", &self.idle.borrow().len())
            .finish()
    }
}

impl Upstream {
    /// A client with an empty pool.
    pub fn new(target: UpstreamTarget) -> Self {
        let connector = target
            .tls
            .as_ref()
            .map(|t| TlsConnector::from(Arc::clone(&t.config)));
        Self {
            target,
            connector,
            idle: RefCell::new(Vec::new()),
        }
    }

    /// The target's path (the MCP endpoint).
    pub fn path(&self) -> &str {
        &self.target.path
    }

    /// Idle keep-alive connections in this core's pool.
    pub fn idle(&self) -> usize {
        self.idle.borrow().len()
    }

    /// POSTs `body` (JSON-RPC) to the target path.
    pub async fn post(&self, body: &[u8]) -> Result<Response, UpstreamError> {
        self.post_traced(body, None).await
    }

    /// POSTs `body`, with a W3C `traceparent` when the call is traced, so the tool server's
    /// spans join the gateway's trace.
    pub async fn post_traced(
        &self,
        body: &[u8],
        traceparent: Option<&[u8]>,
    ) -> Result<Response, UpstreamError> {
        let extra: &[(&str, &[u8])] = match traceparent {
            Some(tp) => &[("traceparent", tp)],
            None => &[],
        };
        self.post_with(body, extra).await
    }

    /// POSTs `body` (JSON-RPC) with `extra` headers (MCP session and version, trace
    /// context) besides the content type and the MCP `Accept`.
    pub async fn post_with(
        &self,
        body: &[u8],
        extra: &[(&str, &[u8])],
    ) -> Result<Response, UpstreamError> {
        match self.post_answer(body, extra, false).await? {
            Answered::Whole(r) => Ok(r),
            Answered::Stream(_) => Err(UpstreamError::Transport("unexpected event stream".into())),
        }
    }

    /// Like [`Upstream::post_with`]; with `stream_events` an event-stream answer comes back
    /// unread, to be relayed as it arrives.
    pub async fn post_answer(
        &self,
        body: &[u8],
        extra: &[(&str, &[u8])],
        stream_events: bool,
    ) -> Result<Answered, UpstreamError> {
        // Usually a few extra headers: no allocation on the forward path unless a 2026
        // client sends many Mcp-Param-* headers.
        let mut fixed: [(&str, &[u8]); 8] = [("", b""); 8];
        let many: Vec<(&str, &[u8])>;
        let headers: &[(&str, &[u8])] = if extra.len() <= 6 {
            fixed[0] = ("Content-Type", b"application/json");
            fixed[1] = ("Accept", b"application/json, text/event-stream");
            fixed[2..2 + extra.len()].copy_from_slice(extra);
            &fixed[..2 + extra.len()]
        } else {
            many = [
                ("Content-Type", &b"application/json"[..]),
                ("Accept", b"application/json, text/event-stream"),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
            &many
        };
        let out = Outgoing {
            method: "POST",
            path: &self.target.path,
            stream_events,
            headers,
            body,
            pass_errors: false,
        };
        self.send(&out).await
    }

    /// Sends any request; with `pass_errors` a status ≥ 400 is a response, not an error.
    pub async fn request(&self, out: &Outgoing<'_>) -> Result<Response, UpstreamError> {
        match self.send(out).await? {
            Answered::Whole(r) => Ok(r),
            // Only asked for with `stream_events`.
            Answered::Stream(_) => Err(UpstreamError::Transport("unexpected event stream".into())),
        }
    }

    /// Sends any request; an event-stream answer comes back unread when `stream_events`.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<Answered, UpstreamError> {
        match monoio::time::timeout(self.target.timeout, self.request_inner(out)).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    async fn request_inner(&self, body: &Outgoing<'_>) -> Result<Answered, UpstreamError> {
        loop {
            let pooled = self.idle.borrow_mut().pop();
            let Some((conn, since)) = pooled else { break };
            if since.elapsed() > POOL_IDLE || conn.closed_by_peer() {
                continue;
            }
            match self.exchange(conn, body).await {
                // Only a failed write lands here: the upstream cannot have seen the call.
                Err(Attempt::Stale) => {}
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
        let tcp = TcpStream::connect_addr(self.target.addr)
            .await
            .map_err(|e| UpstreamError::Transport(format!("connect {}: {e}", self.target.addr)))?;
        let _ = tcp.set_nodelay(true);
        let conn = match (&self.connector, &self.target.tls) {
            (Some(connector), Some(tls)) => {
                let stream = connector
                    .connect(tls.server_name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        UpstreamError::Transport(format!("TLS handshake: {}", io::Error::from(e)))
                    })?;
                Conn::Tls(Box::new(stream))
            }
            _ => Conn::Plain(tcp),
        };
        match self.exchange(conn, body).await {
            Ok(r) => Ok(r),
            Err(Attempt::Failed(e)) => Err(e),
            Err(Attempt::Stale) => Err(UpstreamError::Transport(
                "upstream closed the connection".into(),
            )),
        }
    }

    async fn exchange(&self, mut conn: Conn, out: &Outgoing<'_>) -> Result<Answered, Attempt> {
        let t = &self.target;
        let mut req = Vec::with_capacity(256 + out.body.len());
        req.extend_from_slice(out.method.as_bytes());
        req.push(b' ');
        req.extend_from_slice(out.path.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        req.extend_from_slice(t.host.as_bytes());
        req.extend_from_slice(b"\r\nUser-Agent: intentgate\r\n");
        for (name, value) in out.headers {
            req.extend_from_slice(name.as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(value);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"Content-Length: ");
        req.extend_from_slice(out.body.len().to_string().as_bytes());
        req.extend_from_slice(b"\r\n\r\n");
        req.extend_from_slice(out.body);
        if conn.write_all(req).await.is_err() {
            return Err(Attempt::Stale);
        }
        let mut buf = Vec::with_capacity(8192);
        loop {
            let parsed = match parse_response(&buf, t.max_body, out.pass_errors) {
                Ok(p) => p,
                // An event stream framed by closing the connection is not an error here.
                Err(_) if out.stream_events && stream_head(&buf).is_some() => None,
                Err(e) => return Err(Attempt::Failed(e)),
            };
            if let Some((resp, keep)) = parsed {
                // Bytes past the response would answer the next caller: never pool then.
                if keep && resp.consumed == buf.len() && self.idle.borrow().len() < POOL_SIZE {
                    self.idle
                        .borrow_mut()
                        .push((conn, std::time::Instant::now()));
                }
                return Ok(Answered::Whole(resp));
            }
            // Only when the response is not complete yet: a whole answer (the common case)
            // costs no second parse.
            if out.stream_events
                && let Some((status, session_id, framing, head_len)) = stream_head(&buf)
            {
                buf.drain(..head_len);
                return Ok(Answered::Stream(EventStream {
                    conn,
                    pending: buf,
                    framing,
                    status,
                    session_id,
                    idle_timeout: t.timeout,
                }));
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(8192);
            }
            let len = buf.len();
            let (res, back) = conn.read_into(buf).await;
            buf = back;
            match res {
                Ok(0) if len == 0 => {
                    return Err(Attempt::Failed(UpstreamError::Transport(
                        "upstream closed the connection without answering".into(),
                    )));
                }
                Ok(0) => {
                    return Err(Attempt::Failed(UpstreamError::Transport(
                        "upstream closed mid-response".into(),
                    )));
                }
                Ok(_) => {}

                Err(e) => {
                    return Err(Attempt::Failed(UpstreamError::Transport(format!(
                        "read: {e}"
                    ))));
                }
            }
        }
    }
}

enum Attempt {
    /// The request could not be written: the upstream cannot have seen it, so retrying is safe.
    Stale,
    Failed(UpstreamError),
}

/// When `buf` holds a complete successful `text/event-stream` response head: its status,
/// session id, body framing and head length.
fn stream_head(buf: &[u8]) -> Option<(u16, Option<String>, Framing, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = resp.parse(buf) else {
        return None;
    };
    let status = resp.code?;
    if !(200..300).contains(&status) {
        return None;
    }
    let find = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let sse = find("content-type").is_some_and(|v| {
        v.trim_ascii_start()
            .to_ascii_lowercase()
            .starts_with(b"text/event-stream")
    });
    if !sse {
        return None;
    }
    let framing = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
        Framing::Chunked {
            left: 0,
            in_data: false,
        }
    } else if let Some(len) = find("content-length") {
        Framing::Length(std::str::from_utf8(len).ok()?.trim().parse().ok()?)
    } else {
        Framing::Close
    };
    let session_id = find("mcp-session-id")
        .filter(|v| !v.is_empty() && v.iter().all(|b| (0x21..=0x7e).contains(b)))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned);
    Some((status, session_id, framing, head_len))
}

/// Frames a response in `buf`: `Ok(None)` incomplete; `(response, keep_alive)` when done.
fn parse_response(
    buf: &[u8],
    max_body: usize,
    pass_errors: bool,
) -> Result<Option<(Response, bool)>, UpstreamError> {
    let bad = |detail: &str| UpstreamError::Http {
        status: 0,
        detail: detail.to_owned(),
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > 64 * 1024 => {
            return Err(bad("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(bad("malformed HTTP response")),
    };
    let status = resp.code.unwrap_or(0);
    let (mut length, mut chunked, mut keep) = (None, false, resp.version == Some(1));
    let content_type = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned);
    let session_id = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("mcp-session-id"))
        .filter(|h| !h.value.is_empty() && h.value.iter().all(|b| (0x21..=0x7e).contains(b)))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_none() {
                return Err(bad("invalid Content-Length in response"));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection")
            && h.value.eq_ignore_ascii_case(b"close")
        {
            keep = false;
        }
    }
    let rest = &buf[head_len..];
    let mut consumed = head_len;
    let body = if chunked {
        let mut out = Vec::new();
        match decode_chunked(rest, max_body, &mut out) {
            Ok(Some(used)) => {
                consumed += used;
                out
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(bad(e.message)),
        }
    } else if let Some(n) = length {
        if n > max_body {
            return Err(UpstreamError::Http {
                status,
                detail: "upstream response body too large".into(),
            });
        }
        if rest.len() < n {
            return Ok(None);
        }
        consumed += n;
        rest[..n].to_vec()
    } else if status == 204 || status == 202 || status == 304 {
        Vec::new()
    } else {
        // Delimited by close: we do not read-to-EOF responses; refuse them clearly.
        return Err(bad(
            "upstream response has neither Content-Length nor chunked encoding",
        ));
    };
    if status >= 400 && !pass_errors {
        let detail = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(UpstreamError::Http { status, detail });
    }
    Ok(Some((
        Response {
            status,
            body,
            consumed,
            content_type,
            session_id,
        },
        keep,
    )))
}

#[cfg(test)]
mod tests;
