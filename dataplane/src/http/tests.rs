use super::*;

const MAX: usize = 1024;

fn head(raw: &str) -> Result<Option<(Head, usize)>, HttpError> {
    parse_head(raw.as_bytes(), MAX)
}

fn text(raw: &str, r: &Option<Range<usize>>) -> String {
    r.clone().map(|r| raw[r].to_string()).unwrap_or_default()
}

#[test]
fn parses_a_post_with_the_headers_we_use() {
    let raw = "POST /v1/mcp?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization:  Bearer abc \r\nX-Intent-Prompt: pay bob\r\nContent-Length: 5\r\n\r\nhello";
    let (h, len) = head(raw).unwrap().unwrap();
    assert_eq!(len, raw.len() - 5);
    assert_eq!(h.method, Some(Method::Post));
    assert_eq!(&raw[h.path.clone()], "/v1/mcp");
    assert_eq!(text(raw, &h.authorization), "Bearer abc");
    assert_eq!(text(raw, &h.intent_prompt), "pay bob");
    assert_eq!(h.body, BodyFraming::Length(5));
    assert!(h.http11 && !h.close);
}

#[test]
fn incomplete_heads_ask_for_more() {
    assert_eq!(head("POST /v1/mcp HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
    assert_eq!(head("").unwrap(), None);
}

#[test]
fn connection_semantics() {
    let (h, _) = head("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.close);
    let (h, _) = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(h.close);
    let (h, _) = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.close);
}

#[test]
fn every_bad_head_gets_its_status() {
    let big = format!(
        "GET / HTTP/1.1\r\nX-Big: {}\r\n",
        "a".repeat(MAX_HEAD_BYTES)
    );
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<(String, u16, &str)> = vec![
        (big, 431, "request head exceeds 16 KiB"),
        (
            format!("GET / HTTP/1.1\r\n{many}\r\n"),
            431,
            "too many request headers",
        ),
        ("GARBAGE\r\n\r\n".into(), 400, "malformed HTTP request"),
        (
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n".into(),
            400,
            "malformed HTTP request",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n".into(),
            400,
            "invalid Content-Length",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n".into(),
            400,
            "invalid Content-Length",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(),
            400,
            "conflicting Content-Length headers",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            400,
            "both Content-Length and Transfer-Encoding",
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
            501,
            "only Transfer-Encoding: chunked is supported",
        ),
        (
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX + 1),
            413,
            "request body too large",
        ),
        (
            "POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n".into(),
            417,
            "unsupported Expect header",
        ),
    ];
    // Every header a check reads, sent twice (in any case): refused, never "last wins".
    let repeated = [
        ("Authorization", "Bearer a", "repeated Authorization header"),
        ("x-intent-prompt", "p", "repeated X-Intent-Prompt header"),
        ("Origin", "http://a", "repeated Origin header"),
        (
            "X-IntentGate-Elevation-Id",
            "e",
            "repeated X-IntentGate-Elevation-Id header",
        ),
        ("traceparent", "00-a-b-01", "repeated traceparent header"),
        ("mcp-session-id", "s", "repeated Mcp-Session-Id header"),
        (
            "MCP-Protocol-Version",
            "2025-06-18",
            "repeated MCP-Protocol-Version header",
        ),
        ("Mcp-Method", "tools/call", "repeated Mcp-Method header"),
        ("Mcp-Name", "x", "repeated Mcp-Name header"),
        ("Last-Event-ID", "1", "repeated Last-Event-ID header"),
    ];
    let mut cases = cases;
    for (name, value, message) in repeated {
        let upper = name.to_ascii_uppercase();
        cases.push((
            format!("POST / HTTP/1.1\r\n{name}: {value}\r\n{upper}: {value}x\r\n\r\n"),
            400,
            message,
        ));
    }
    for (raw, status, message) in cases {
        assert_eq!(
            parse_head(raw.as_bytes(), MAX),
            Err(HttpError { status, message }),
            "{}",
            &raw[..raw.len().min(60)]
        );
    }
}

#[test]
fn a_repeated_forwarded_for_is_not_refused() {
    let (h, _) =
        head("GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n")
            .unwrap()
            .unwrap();
    let raw = "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n";
    assert_eq!(text(raw, &h.forwarded_for), "2.2.2.2");
}

#[test]
fn duplicate_equal_content_length_is_accepted() {
    let (h, _) = head("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.body, BodyFraming::Length(2));
}

#[test]
fn chunked_bodies_decode_with_extensions_and_trailers() {
    let mut out = Vec::new();
    let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
    let used = decode_chunked(body, MAX, &mut out).unwrap().unwrap();
    assert_eq!(out, b"hello world");
    assert_eq!(&body[used..], b"NEXT");
}

#[test]
fn chunked_incomplete_and_malformed() {
    let mut out = Vec::new();
    assert_eq!(decode_chunked(b"5\r\nhel", MAX, &mut out), Ok(None));
    assert_eq!(
        decode_chunked(b"5\r\nhello\r\n0\r\n", MAX, &mut out),
        Ok(None)
    );
    let bad = HttpError {
        status: 400,
        message: "malformed chunked body",
    };
    assert_eq!(decode_chunked(b"z\r\nhello\r\n", MAX, &mut out), Err(bad));
    assert_eq!(
        decode_chunked(b"5\r\nhelloXX0\r\n\r\n", MAX, &mut out),
        Err(bad)
    );
    assert_eq!(decode_chunked(b"\r\n", MAX, &mut out), Err(bad));
    let too_big = format!("{:x}\r\n", MAX + 1);
    assert_eq!(
        decode_chunked(too_big.as_bytes(), MAX, &mut out),
        Err(HttpError {
            status: 413,
            message: "request body too large"
        })
    );
}

#[test]
fn responses_are_well_formed() {
    let mut out = Vec::new();
    write_error(
        &mut out,
        HttpError {
            status: 404,
            message: "no route for /x",
        },
        true,
    );
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
    assert!(
        s.contains("Content-Type: application/json\r\nContent-Length: 27\r\n"),
        "{s}"
    );
    assert!(
        s.contains("Connection: close\r\n\r\n{\"error\":\"no route for /x\"}"),
        "{s}"
    );
    let mut out = Vec::new();
    write_response(&mut out, 202, b"", false, &[("Retry-After", "1")]);
    assert_eq!(
        out,
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n"
    );
}

#[test]
fn chunked_limits_bound_extensions_and_trailers() {
    let mut out = Vec::new();
    let bad = HttpError {
        status: 400,
        message: "malformed chunked body",
    };
    let long_ext = format!("1;{}\r\nA\r\n0\r\n\r\n", "x".repeat(2000));
    assert_eq!(decode_chunked(long_ext.as_bytes(), MAX, &mut out), Err(bad));
    let endless = format!("0\r\n{}", "a:b\r\n".repeat(2000));
    assert_eq!(decode_chunked(endless.as_bytes(), MAX, &mut out), Err(bad));
}

#[test]
fn chunked_decoding_resumes_where_it_stopped() {
    let full = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let mut state = Chunked::default();
    for end in 1..full.len() {
        assert_eq!(
            state.decode(&full[..end], MAX).unwrap(),
            None,
            "prefix {end}"
        );
    }
    assert_eq!(state.decode(full, MAX).unwrap(), Some(full.len()));
    assert_eq!(state.body, b"abcde");
    state.reset();
    assert!(state.body.is_empty());
}
