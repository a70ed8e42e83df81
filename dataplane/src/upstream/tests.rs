use super::*;

#[test]
fn targets_parse_and_refuse_what_we_cannot_do() {
    let parse = |u: &str| UpstreamTarget::parse(u, Duration::from_secs(1), 10, &[]);
    let t = parse("http://127.0.0.1:9000/mcp").unwrap();
    assert_eq!(
        (t.addr.port(), t.host.as_str(), t.path.as_str()),
        (9000, "127.0.0.1:9000", "/mcp")
    );
    assert!(t.tls.is_none());
    let t = parse("http://127.0.0.1").unwrap();
    assert_eq!((t.addr.port(), t.path.as_str()), (80, "/"));
    let t = parse("https://127.0.0.1/mcp").unwrap();
    assert_eq!(t.addr.port(), 443);
    assert!(t.tls.is_some());
    assert_eq!(parse("ftp://x").unwrap_err(), TargetError::Malformed);
    assert_eq!(parse("http://u:p@h/").unwrap_err(), TargetError::Malformed);
    let missing = load_ca_file(std::path::Path::new("/nonexistent/ca.pem")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("INTENTGATE_UPSTREAM_CA_FILE: /nonexistent/ca.pem"),
        "{missing}"
    );
}

fn parse_response_t(buf: &[u8], max: usize) -> Result<Option<(Response, bool)>, UpstreamError> {
    parse_response(buf, max, false)
}

#[test]
fn responses_frame_by_length_and_chunks() {
    let (r, keep) = parse_response_t(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 10)
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.body.as_slice(), keep), (200, &b"{}"[..], true));
    assert!(
        parse_response_t(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", 10)
            .unwrap()
            .is_none()
    );
    let (r, keep) =
        parse_response_t(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 10)
            .unwrap()
            .unwrap();
    assert_eq!((r.body.as_slice(), keep), (&b"{}"[..], false));
}

#[test]
fn relays_can_take_error_statuses_as_responses() {
    let (r, _) = parse_response(
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        10,
        true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (r.status, r.content_type.as_deref()),
        (403, Some("application/json"))
    );
}

#[test]
fn bad_responses_are_upstream_errors() {
    let e = parse_response_t(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops",
        10,
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.status(), e.detail().as_str()),
        ("upstream_http", 502, "oops")
    );
    assert_eq!(
        parse_response_t(b"garbage\r\n\r\n", 10).unwrap_err().kind(),
        "upstream_http"
    );
    let e = parse_response_t(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", 10).unwrap_err();
    assert_eq!(e.detail(), "upstream response body too large");
    let e = parse_response_t(b"HTTP/1.1 200 OK\r\n\r\n{}", 10).unwrap_err();
    assert!(e.detail().contains("neither Content-Length"));
}
