//! Where the upstream is: its URL resolved once at startup, and the TLS client settings
//! for `https://` upstreams (Mozilla roots plus an optional operator CA file).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};

/// Where to forward, resolved once at startup.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// Resolved address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Request path (with query).
    pub path: String,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_body: usize,
    /// TLS settings for `https://` targets.
    pub tls: Option<Tls>,
}

/// How to reach an `https://` upstream.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Client configuration (roots, protocol versions).
    pub config: Arc<rustls::ClientConfig>,
    /// Name the certificate must carry.
    pub server_name: ServerName<'static>,
}

/// A target URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not `http://host[:port][/path]`.
    #[error("INTENTGATE_UPSTREAM_URL must look like http://host:port/path")]
    Malformed,
    /// The TLS client could not be configured.
    #[error("INTENTGATE_UPSTREAM_URL: TLS setup failed: {0}")]
    Tls(String),
    /// The CA file is unreadable or holds no certificate.
    #[error("INTENTGATE_UPSTREAM_CA_FILE: {0}")]
    CaFile(String),
    /// DNS resolution failed.
    #[error("INTENTGATE_UPSTREAM_URL: cannot resolve {0}")]
    Resolve(String),
}

impl UpstreamTarget {
    /// Parses and resolves `url` (`http://` or `https://`); `extra_roots` are trusted in
    /// addition to the Mozilla roots.
    pub fn parse(
        url: &str,
        timeout: Duration,
        max_body: usize,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, TargetError> {
        let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err(TargetError::Malformed),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(TargetError::Malformed);
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|_| TargetError::Resolve(authority.to_owned()))?
            .next()
            .ok_or_else(|| TargetError::Resolve(authority.to_owned()))?;
        let tls = if https {
            let host = match authority.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => h,
                _ => authority,
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let server_name = ServerName::try_from(host.to_owned())
                .map_err(|e| TargetError::Tls(format!("bad server name {host:?}: {e}")))?;
            Some(Tls {
                config: client_config(extra_roots)?,
                server_name,
            })
        } else {
            None
        };
        Ok(Self {
            addr,
            host: authority.to_owned(),
            path: path.to_owned(),
            timeout,
            max_body,
            tls,
        })
    }
}

fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, TargetError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| TargetError::CaFile(format!("unusable certificate: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TargetError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reads every certificate of a PEM file (for `INTENTGATE_UPSTREAM_CA_FILE`).
pub fn load_ca_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TargetError> {
    use rustls_pki_types::pem::PemObject as _;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TargetError::CaFile(format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TargetError::CaFile(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TargetError::CaFile(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}
