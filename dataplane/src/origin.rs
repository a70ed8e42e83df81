//! `Origin` validation against DNS rebinding (MCP Streamable HTTP: "servers MUST validate the
//! Origin header"). A request without `Origin` (every non-browser agent) is unaffected. A
//! browser request is allowed when its origin is listed in `INTENTGATE_ALLOWED_ORIGINS`;
//! unset, only loopback origins are, so a page on another site that resolves its name to
//! this gateway cannot call it. `*` allows every origin (an explicit opt-out).

/// Which `Origin` values may call the MCP routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// `http(s)://localhost`, `127.0.0.0/8` and `[::1]`, any port (the default).
    #[default]
    LoopbackOnly,
    /// Exactly these origins (scheme://host[:port], compared case-insensitively).
    List(Vec<String>),
    /// Any origin.
    Any,
}

impl OriginPolicy {
    /// From `INTENTGATE_ALLOWED_ORIGINS` entries.
    pub fn from_list(entries: &[String]) -> Self {
        if entries.is_empty() {
            Self::LoopbackOnly
        } else if entries.iter().any(|e| e == "*") {
            Self::Any
        } else {
            Self::List(
                entries
                    .iter()
                    .map(|e| e.trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
            )
        }
    }

    /// Whether a request carrying `Origin: origin` may proceed.
    pub fn allows(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin.trim_ascii()) else {
            return false;
        };
        match self {
            Self::Any => true,
            Self::List(list) => {
                let o = origin.trim_end_matches('/');
                list.iter().any(|allowed| allowed.eq_ignore_ascii_case(o))
            }
            Self::LoopbackOnly => is_loopback_origin(origin),
        }
    }
}

fn is_loopback_origin(origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains(['/', '@', '?', '#']) {
        return false;
    }
    let host = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || valid_port(port) => return h == "::1",
            _ => return false,
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, port)) if valid_port(port) => h,
            Some(_) => return false,
            None => rest,
        }
    };
    if host == "localhost" {
        return true;
    }
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn valid_port(p: &str) -> bool {
    p.strip_prefix(':')
        .unwrap_or(p)
        .parse::<u16>()
        .is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_loopback_origins_pass() {
        let p = OriginPolicy::from_list(&[]);
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "HTTP://LOCALHOST:1",
        ] {
            assert!(p.allows(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://evil.example:8080",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://user@127.0.0.1",
            "http://[::2]",
            "null",
            "file://",
            "http://10.0.0.1",
            "http://localhost:99999",
        ] {
            assert!(!p.allows(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn a_list_allows_exactly_its_entries_and_a_star_allows_all() {
        let p = OriginPolicy::from_list(&[
            "https://app.example".into(),
            "http://localhost:3000/".into(),
        ]);
        assert!(p.allows(b"https://app.example"));
        assert!(p.allows(b"https://APP.example/"));
        assert!(p.allows(b"http://localhost:3000"));
        assert!(
            !p.allows(b"http://localhost:3001"),
            "a list replaces the loopback default"
        );
        assert!(!p.allows(b"https://app.example.evil"));
        assert!(OriginPolicy::from_list(&["*".into()]).allows(b"https://anything.example"));
        assert!(!OriginPolicy::default().allows(&[0xff, 0xfe]));
    }
}
