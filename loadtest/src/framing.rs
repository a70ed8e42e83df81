//! HTTP/1.1 framing shared by the baseline servers, the probes and the load engine.

/// The `Content-Length` among `headers`, if present and readable.
pub fn declared_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
}

/// The `Content-Length` among `headers` (0 when absent or unreadable: these peers are ours).
pub fn content_length(headers: &[httparse::Header<'_>]) -> usize {
    declared_length(headers).unwrap_or(0)
}
