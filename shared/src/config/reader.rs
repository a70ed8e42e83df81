//! Reading variables: the typed accessors that turn a missing, blank or invalid value into
//! the default plus one error line naming the variable and what it accepts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::Secret;

/// One invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarError {
    /// Variable name.
    pub var: &'static str,
    /// What is wrong and what is accepted (never the value of a secret).
    pub message: String,
}

/// All invalid variables found; displayed as one line per variable, so each
/// misconfiguration is a line of its own at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("{}: {}", e.var, e.message)).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<VarError>);

/// Reads variables from a source, collecting every invalid one instead of stopping at the
/// first.
pub(super) struct Reader<F> {
    get: F,
    pub(super) errors: Vec<VarError>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// A reader over `get` with no errors yet.
    pub(super) fn new(get: F) -> Self {
        Self {
            get,
            errors: Vec::new(),
        }
    }

    /// `value` when every variable read was valid, else all the errors.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError(self.errors))
        }
    }

    /// The trimmed value, `None` when unset or blank.
    pub(super) fn raw(&self, var: &str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn fail(&mut self, var: &'static str, message: String) {
        self.errors.push(VarError { var, message });
    }

    /// Shows a non-secret value in an error, shortened.
    pub(super) fn shown(value: &str) -> String {
        format!("{:?}", value.chars().take(80).collect::<String>())
    }

    pub(super) fn bool(&mut self, var: &'static str, default: bool) -> bool {
        match self.raw(var).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if v == "true" || v == "1" => true,
            Some(v) if v == "false" || v == "0" => false,
            Some(v) => {
                self.fail(
                    var,
                    format!("invalid value {} (accepted: true, false)", Self::shown(&v)),
                );
                default
            }
        }
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        var: &'static str,
        default: T,
        options: &[(&str, T)],
        accepted: &str,
    ) -> T {
        let Some(v) = self.raw(var) else {
            return default;
        };
        let lower = v.to_ascii_lowercase();
        match options.iter().find(|(name, _)| *name == lower) {
            Some((_, value)) => *value,
            None => {
                self.fail(
                    var,
                    format!("invalid value {} (accepted: {accepted})", Self::shown(&v)),
                );
                default
            }
        }
    }

    pub(super) fn u64(&mut self, var: &'static str, default: u64, min: u64) -> u64 {
        self.opt_u64(var, min).unwrap_or(default)
    }

    pub(super) fn opt_u64(&mut self, var: &'static str, min: u64) -> Option<u64> {
        let v = self.raw(var)?;
        match v.parse::<u64>() {
            Ok(n) if n >= min => Some(n),
            _ => {
                self.fail(
                    var,
                    format!(
                        "invalid value {} (accepted: an integer >= {min})",
                        Self::shown(&v)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn addr(&mut self, var: &'static str, default: SocketAddr) -> SocketAddr {
        let Some(v) = self.raw(var) else {
            return default;
        };
        match parse_listen_addr(&v) {
            Some(a) => a,
            None => {
                self.fail(
                    var,
                    format!(
                        "invalid value {} (accepted: host:port, [v6]:port or :port)",
                        Self::shown(&v)
                    ),
                );
                default
            }
        }
    }

    pub(super) fn url(&mut self, var: &'static str) -> Option<String> {
        let v = self.raw(var)?;
        if is_http_url(&v) {
            Some(v)
        } else {
            self.fail(
                var,
                format!(
                    "invalid value {} (accepted: an http:// or https:// URL with a host)",
                    Self::shown(&v)
                ),
            );
            None
        }
    }

    pub(super) fn secret(&self, var: &str) -> Option<Secret> {
        self.raw(var).map(Secret::new)
    }

    pub(super) fn list(&self, var: &str) -> Vec<String> {
        self.raw(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses `host:port`, `[v6]:port` or Go's `:port` (all interfaces).
pub fn parse_listen_addr(s: &str) -> Option<SocketAddr> {
    if let Some(port) = s.strip_prefix(':') {
        return port
            .parse::<u16>()
            .ok()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    match host {
        "localhost" => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        _ => None,
    }
}

pub(super) fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.starts_with(':') && !host.contains(char::is_whitespace)
        }
        None => false,
    }
}

pub(super) fn default_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}
