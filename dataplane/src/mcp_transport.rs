//! MCP Streamable HTTP header rules the gateway checks itself: which `MCP-Protocol-Version`
//! values it serves, and for the 2026-07-28 revision the request headers that must repeat
//! the body (`Mcp-Method`, `Mcp-Name`), refused on mismatch with 400 and -32020. Routers and
//! rate limiters key on these headers, so a request whose headers say one thing and whose
//! body does another must not pass.

use base64::Engine as _;

/// The revisions this gateway serves.
pub const SUPPORTED: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];
/// The first revision with the stateless header rules.
pub const MODERN: &str = "2026-07-28";

/// Header/body mismatch (2026-07-28).
pub const HEADER_MISMATCH: i32 = -32020;
/// Unsupported protocol version (2026-07-28).
pub const UNSUPPORTED_VERSION: i32 = -32022;

/// The request's revision as its `MCP-Protocol-Version` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// No header: a 2025-03-26 client (the spec's default assumption).
    Assumed,
    /// 2025-03-26 to 2025-11-25: sessions, GET streams, DELETE.
    Legacy,
    /// 2026-07-28: stateless, header rules.
    Modern,
}

/// Why a request's MCP headers are refused: HTTP 400, with a JSON-RPC error when the
/// client speaks the modern revision (a legacy client must not get a modern-looking body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// JSON-RPC code, for modern clients; None: plain HTTP error.
    pub code: Option<i32>,
    /// What is wrong.
    pub message: String,
}

/// Classifies the `MCP-Protocol-Version` header.
pub fn revision(header: Option<&[u8]>) -> Result<Revision, Refusal> {
    let Some(v) = header else {
        return Ok(Revision::Assumed);
    };
    let v = std::str::from_utf8(v.trim_ascii()).unwrap_or("");
    if v == MODERN {
        return Ok(Revision::Modern);
    }
    if SUPPORTED.contains(&v) {
        return Ok(Revision::Legacy);
    }
    // Dates sort as strings: a later revision is a modern client that expects the modern
    // error; anything else gets a plain 400.
    let later = v.len() == MODERN.len() && v > MODERN;
    Err(Refusal {
        code: later.then_some(UNSUPPORTED_VERSION),
        message: format!(
            "unsupported MCP-Protocol-Version {:?} (supported: {})",
            v.chars().take(40).collect::<String>(),
            SUPPORTED.join(", ")
        ),
    })
}

/// A header value, decoding the `=?base64?…?=` form used for values that are not plain ASCII.
pub fn decode_value(raw: &[u8]) -> Option<String> {
    let v = std::str::from_utf8(raw.trim_ascii()).ok()?;
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(v.to_owned()),
    }
}

/// The 2026-07-28 rule: `Mcp-Method` equals the body's method, and `Mcp-Name` the tool or
/// prompt name (`tools/call`, `prompts/get`) or resource URI (`resources/read`).
pub fn check_modern(
    method_header: Option<&[u8]>,
    name_header: Option<&[u8]>,
    method: &str,
    name: Option<&str>,
) -> Result<(), Refusal> {
    let mismatch = |message: String| Refusal {
        code: Some(HEADER_MISMATCH),
        message,
    };
    match method_header.and_then(decode_value) {
        None => return Err(mismatch("Mcp-Method header is required".into())),
        Some(m) if m != method => {
            return Err(mismatch(format!(
                "Mcp-Method header {m:?} does not match the body's method {method:?}"
            )));
        }
        Some(_) => {}
    }
    let names_something = matches!(method, "tools/call" | "prompts/get" | "resources/read");
    if names_something {
        let body = name.unwrap_or("");
        match name_header.and_then(decode_value) {
            None => return Err(mismatch("Mcp-Name header is required".into())),
            Some(n) if n != body => {
                return Err(mismatch(format!(
                    "Mcp-Name header {n:?} does not match the body's {body:?}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_classified_and_unknown_ones_refused_as_their_era_expects() {
        assert_eq!(revision(None), Ok(Revision::Assumed));
        assert_eq!(revision(Some(b"2025-06-18")), Ok(Revision::Legacy));
        assert_eq!(revision(Some(b"2026-07-28")), Ok(Revision::Modern));
        assert_eq!(
            revision(Some(b"2027-01-01")).unwrap_err().code,
            Some(UNSUPPORTED_VERSION)
        );
        assert_eq!(revision(Some(b"2024-11-05")).unwrap_err().code, None);
        assert_eq!(revision(Some(b"banana")).unwrap_err().code, None);
    }

    #[test]
    fn modern_headers_must_repeat_the_body() {
        assert!(
            check_modern(
                Some(b"tools/call"),
                Some(b"read"),
                "tools/call",
                Some("read")
            )
            .is_ok()
        );
        assert!(check_modern(Some(b"tools/list"), None, "tools/list", None).is_ok());
        for (m, n) in [
            (None, Some(&b"read"[..])),
            (Some(&b"tools/list"[..]), Some(&b"read"[..])),
            (Some(&b"tools/call"[..]), None),
            (Some(&b"tools/call"[..]), Some(&b"pay"[..])),
        ] {
            let e = check_modern(m, n, "tools/call", Some("read")).unwrap_err();
            assert_eq!(e.code, Some(HEADER_MISMATCH), "{m:?} {n:?}");
        }
        // Non-ASCII names travel base64-encoded.
        let enc = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("récupérer")
        );
        assert!(
            check_modern(
                Some(b"tools/call"),
                Some(enc.as_bytes()),
                "tools/call",
                Some("récupérer")
            )
            .is_ok()
        );
    }
}
