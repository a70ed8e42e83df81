//! Sans-IO HTTP/1.1: request framing (heads via `httparse`, Content-Length and chunked bodies)
//! and response writing. No sockets here, so every limit and every malformed input is tested
//! without a server.
//!
//! Framing is strict because a gateway that frames differently from the server behind it can be
//! smuggled past: a request with both `Content-Length` and `Transfer-Encoding`, with differing
//! `Content-Length` values, or with a transfer coding other than `chunked` is refused.

use std::ops::Range;

/// Largest request head (request line + headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;

/// A request the server answers with an HTTP error (and then closes the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// Status code.
    pub status: u16,
    /// Message for the JSON body `{"error": ...}`.
    pub message: &'static str,
}

impl HttpError {
    const fn new(status: u16, message: &'static str) -> Self {
        Self { status, message }
    }
}

/// Request method, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// DELETE.
    Delete,
    /// Anything else.
    Other,
}

/// The parts of a request head the gateway uses, as byte ranges into the connection buffer
/// (no copies: the buffer outlives the request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Method.
    pub method: Option<Method>,
    /// Path without the query string.
    pub path: Range<usize>,
    /// The whole request target (path and query).
    pub target: Range<usize>,
    /// The method as sent.
    pub method_name: Range<usize>,
    /// HTTP/1.1 (true) or HTTP/1.0.
    pub http11: bool,
    /// The client asked to close (or HTTP/1.0 without keep-alive).
    pub close: bool,
    /// `Authorization` value.
    pub authorization: Option<Range<usize>>,
    /// `X-Intent-Prompt` value.
    pub intent_prompt: Option<Range<usize>>,
    /// `Origin` value.
    pub origin: Option<Range<usize>>,
    /// `X-Forwarded-For` value.
    pub forwarded_for: Option<Range<usize>>,
    /// `X-IntentGate-Elevation-Id` value (relayed to the admin API).
    pub elevation_id: Option<Range<usize>>,
    /// `traceparent` value (W3C trace context).
    pub traceparent: Option<Range<usize>>,
    /// `Mcp-Session-Id` value.
    pub mcp_session_id: Option<Range<usize>>,
    /// `MCP-Protocol-Version` value.
    pub mcp_protocol_version: Option<Range<usize>>,
    /// `Mcp-Method` value (2026-07-28).
    pub mcp_method: Option<Range<usize>>,
    /// `Mcp-Name` value (2026-07-28).
    pub mcp_name: Option<Range<usize>>,
    /// `Last-Event-ID` value (resuming an event stream).
    pub last_event_id: Option<Range<usize>>,
    /// `Mcp-Param-*` headers (2026-07-28), name and value, forwarded untouched.
    pub mcp_params: Vec<(Range<usize>, Range<usize>)>,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// `Content-Type` value (one header at most).
    pub content_type: Option<Range<usize>>,
    /// A `Content-Encoding` other than `identity` was sent: the body is not the bytes the
    /// gateway would authorize.
    pub content_encoded: bool,
    /// Body framing.
    pub body: BodyFraming,
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    #[default]
    Empty,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

fn range_of(buf: &[u8], part: &[u8]) -> Range<usize> {
    // httparse hands out subslices of `buf`; their offset is a pointer difference.
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    start..start + part.len()
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fn parse_usize(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl Head {
    /// Records `Content-Type` (once) and whether a `Content-Encoding` other than `identity`
    /// was sent; false for any other header.
    fn note_content(&mut self, buf: &[u8], name: &str, value: &[u8]) -> Result<bool, HttpError> {
        if name.eq_ignore_ascii_case("content-type") {
            if self.content_type.is_some() {
                return Err(HttpError::new(400, "repeated Content-Type header"));
            }
            self.content_type = Some(range_of(buf, value));
        } else if name.eq_ignore_ascii_case("content-encoding") {
            self.content_encoded |= value
                .split(|b| *b == b',')
                .map(trim)
                .any(|v| !v.is_empty() && !v.eq_ignore_ascii_case(b"identity"));
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Where a header the gateway only records (its value's range) is kept, if it is one,
    /// and the refusal of a second copy (None: a repeat replaces, as for `X-Forwarded-For`,
    /// which proxies may legitimately send twice and which decides nothing).
    fn slot_for(
        &mut self,
        name: &str,
    ) -> Option<(&mut Option<std::ops::Range<usize>>, Option<&'static str>)> {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        // A header read by a check must have one value: two copies are two readings, and
        // whichever one a proxy in front or the upstream takes may not be ours.
        Some(if is("authorization") {
            (
                &mut self.authorization,
                Some("repeated Authorization header"),
            )
        } else if is("x-intent-prompt") {
            (
                &mut self.intent_prompt,
                Some("repeated X-Intent-Prompt header"),
            )
        } else if is("origin") {
            (&mut self.origin, Some("repeated Origin header"))
        } else if is("x-forwarded-for") {
            (&mut self.forwarded_for, None)
        } else if is("x-intentgate-elevation-id") {
            (
                &mut self.elevation_id,
                Some("repeated X-IntentGate-Elevation-Id header"),
            )
        } else if is("traceparent") {
            (&mut self.traceparent, Some("repeated traceparent header"))
        } else if is("mcp-session-id") {
            (
                &mut self.mcp_session_id,
                Some("repeated Mcp-Session-Id header"),
            )
        } else if is("mcp-protocol-version") {
            (
                &mut self.mcp_protocol_version,
                Some("repeated MCP-Protocol-Version header"),
            )
        } else if is("mcp-method") {
            (&mut self.mcp_method, Some("repeated Mcp-Method header"))
        } else if is("mcp-name") {
            (&mut self.mcp_name, Some("repeated Mcp-Name header"))
        } else if is("last-event-id") {
            (
                &mut self.last_event_id,
                Some("repeated Last-Event-ID header"),
            )
        } else {
            return None;
        })
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success returns the head and its length in bytes.
pub fn parse_head(buf: &[u8], max_body: usize) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD_BYTES {
                Err(HttpError::new(431, "request head exceeds 16 KiB"))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many request headers"));
        }
        Err(_) => return Err(HttpError::new(400, "malformed HTTP request")),
    };
    if len > MAX_HEAD_BYTES {
        return Err(HttpError::new(431, "request head exceeds 16 KiB"));
    }
    let http11 = req.version == Some(1);
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some("DELETE") => Method::Delete,
        _ => Method::Other,
    };
    let full = req.path.unwrap_or("/");
    let path = full.split_once('?').map_or(full, |(p, _)| p);
    let mut head = Head {
        method: Some(method),
        path: range_of(buf, path.as_bytes()),
        target: range_of(buf, full.as_bytes()),
        method_name: range_of(buf, req.method.unwrap_or("").as_bytes()),
        http11,
        close: !http11,
        ..Head::default()
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let value = trim(h.value);
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_usize(value).ok_or(HttpError::new(400, "invalid Content-Length"))?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HttpError::new(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(HttpError::new(
                    501,
                    "only Transfer-Encoding: chunked is supported",
                ));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|b| *b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    head.close = false;
                }
            }
        } else if let Some((slot, repeated)) = head.slot_for(name) {
            if let (Some(_), Some(message)) = (&slot, repeated) {
                return Err(HttpError::new(400, message));
            }
            *slot = Some(range_of(buf, value));
        } else if name.len() > 10 && name[..10].eq_ignore_ascii_case("mcp-param-") {
            head.mcp_params
                .push((range_of(buf, name.as_bytes()), range_of(buf, value)));
        } else if head.note_content(buf, name, value)? {
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(HttpError::new(417, "unsupported Expect header"));
            }
            head.expect_continue = true;
        }
    }
    head.body = match (content_length, chunked) {
        (Some(_), true) => {
            return Err(HttpError::new(
                400,
                "both Content-Length and Transfer-Encoding",
            ));
        }
        (Some(n), false) if n > max_body => {
            return Err(HttpError::new(413, "request body too large"));
        }
        (Some(0), false) | (None, false) => BodyFraming::Empty,
        (Some(n), false) => BodyFraming::Length(n),
        (None, true) => BodyFraming::Chunked,
    };
    Ok(Some((head, len)))
}

/// Longest chunk-size line (size plus extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// Largest trailer section.
const MAX_TRAILERS: usize = 8 * 1024;

/// A chunked body decoded across reads: complete chunks are decoded once, so a body that
/// trickles in costs linear, not quadratic, work.
#[derive(Debug, Default)]
pub struct Chunked {
    /// Input bytes already consumed by complete chunks.
    pos: usize,
    /// The decoded body so far.
    pub body: Vec<u8>,
}

impl Chunked {
    /// Forgets the previous request's body.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.body.clear();
    }

    /// Continues decoding `input` (the body bytes received so far, from its first chunk).
    /// `Ok(None)`: incomplete. On success returns the bytes consumed (trailers included); the
    /// decoded body is in `self.body`.
    pub fn decode(&mut self, input: &[u8], max_body: usize) -> Result<Option<usize>, HttpError> {
        const BAD: HttpError = HttpError::new(400, "malformed chunked body");
        loop {
            let rest = &input[self.pos..];
            let Some(line_end) = find_crlf(rest) else {
                return if rest.len() > MAX_CHUNK_LINE {
                    Err(BAD)
                } else {
                    Ok(None)
                };
            };
            if line_end > MAX_CHUNK_LINE {
                return Err(BAD);
            }
            let line = &rest[..line_end];
            let size_part = line
                .split(|b| *b == b';')
                .next()
                .map(trim)
                .unwrap_or_default();
            if size_part.is_empty()
                || size_part.len() > 15
                || !size_part.iter().all(u8::is_ascii_hexdigit)
            {
                return Err(BAD);
            }
            let size = usize::from_str_radix(std::str::from_utf8(size_part).map_err(|_| BAD)?, 16)
                .map_err(|_| BAD)?;
            let data = line_end + 2;
            if size == 0 {
                // Trailers: header lines until an empty line, bounded as a whole.
                let mut at = data;
                loop {
                    let Some(end) = find_crlf(&rest[at..]) else {
                        return if rest.len() - data > MAX_TRAILERS {
                            Err(BAD)
                        } else {
                            Ok(None)
                        };
                    };
                    at += end + 2;
                    if at - data > MAX_TRAILERS {
                        return Err(BAD);
                    }
                    if end == 0 {
                        return Ok(Some(self.pos + at));
                    }
                }
            }
            if self.body.len() + size > max_body {
                return Err(HttpError::new(413, "request body too large"));
            }
            if rest.len() < data + size + 2 {
                return Ok(None);
            }
            if &rest[data + size..data + size + 2] != b"\r\n" {
                return Err(BAD);
            }
            self.body.extend_from_slice(&rest[data..data + size]);
            self.pos += data + size + 2;
        }
    }
}

/// Decodes a whole chunked body in one go (see [`Chunked::decode`]).
pub fn decode_chunked(
    input: &[u8],
    max_body: usize,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, HttpError> {
    let mut state = Chunked {
        pos: 0,
        body: std::mem::take(out),
    };
    state.body.clear();
    let result = state.decode(input, max_body);
    *out = state.body;
    result
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Reason phrase for the statuses we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Appends a complete response. `body` empty with status 202/204 sends no content type.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    body: &[u8],
    close: bool,
    extra: &[(&str, &str)],
) {
    write_response_as(out, status, body, "application/json", close, extra);
}

/// Appends a response whose body has `content_type`.
pub fn write_response_as(
    out: &mut Vec<u8>,
    status: u16,
    body: &[u8],
    content_type: &str,
    close: bool,
    extra: &[(&str, &str)],
) {
    use std::io::Write as _;
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    if !body.is_empty() {
        let _ = write!(out, "Content-Type: {content_type}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n", body.len());
    for (k, v) in extra {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends an error response with body `{"error": message}`.
pub fn write_error(out: &mut Vec<u8>, err: HttpError, close: bool) {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(b"{\"error\":");
    intentgate_shared::gojson::write_str(&mut body, err.message);
    body.push(b'}');
    write_response(out, err.status, &body, close, &[]);
}

#[cfg(test)]
mod tests;
