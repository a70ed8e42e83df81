//! What the configuration says to start, read before anything starts: the policy, the
//! upstream and extractor targets, the data plane's settings and thread count, and the
//! replica id. Every error here is a configuration error naming its variable.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use intentgate_dataplane::decision::Settings;
use intentgate_dataplane::upstream::UpstreamTarget;
use intentgate_shared::config::Config;
use intentgate_shared::policy::Policy;

/// The configuration plus what `serve` and `dev` read differently (the startup policy and
/// the upstream).
pub(super) struct Plan {
    pub(super) cfg: Config,
    pub(super) policy: Policy,
    pub(super) upstream: Option<UpstreamTarget>,
}

/// Features configured that this build does not provide yet: refusing to start beats
/// silently running without them.
pub(super) fn refuse_unsupported(cfg: &Config) -> Result<()> {
    let mut missing = Vec::new();
    if cfg.redis_url.is_some() {
        missing.push("INTENTGATE_REDIS_URL (budgets are kept in process, exact across cores)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "not supported by this build yet: {} — unset them to start",
            missing.join(", ")
        )
    }
}

pub(super) fn load_policy(cfg: &Config) -> Result<Policy> {
    match &cfg.policy_file {
        Some(path) => {
            let src = std::fs::read_to_string(path).with_context(|| {
                format!("INTENTGATE_POLICY_FILE: cannot read {}", path.display())
            })?;
            Policy::compile(&src, cfg.policy_syntax).map_err(|e| {
                anyhow::anyhow!(
                    "INTENTGATE_POLICY_FILE: {}: {}",
                    path.display(),
                    e.one_line()
                )
            })
        }
        None => Ok(Policy::default_policy()?),
    }
}

/// Extra trust roots for https upstreams and extractors (`INTENTGATE_UPSTREAM_CA_FILE`).
pub(super) fn extra_roots(cfg: &Config) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    Ok(match &cfg.upstream_ca_file {
        Some(path) => intentgate_dataplane::upstream::load_ca_file(path)?,
        None => Vec::new(),
    })
}

/// The extractor endpoint `{INTENTGATE_EXTRACTOR_URL}/v1/extract` (10 s, as the Go gateway).
pub(super) fn extractor(cfg: &Config) -> Result<Option<UpstreamTarget>> {
    cfg.extractor_url
        .as_deref()
        .map(|u| {
            let url = format!("{}/v1/extract", u.trim_end_matches('/'));
            UpstreamTarget::parse(&url, Duration::from_secs(10), 1 << 20, &extra_roots(cfg)?)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}",
                        e.to_string()
                            .replace("INTENTGATE_UPSTREAM_URL", "INTENTGATE_EXTRACTOR_URL")
                    )
                })
        })
        .transpose()
}

pub(super) fn settings(cfg: &Config) -> Settings {
    Settings {
        require_capability: cfg.require_capability,
        require_intent: cfg.require_intent,
        require_budget: cfg.require_budget,
    }
}

/// `INTENTGATE_DATAPLANE_THREADS`, or one per available core.
pub(super) fn dataplane_threads(cfg: &Config) -> usize {
    cfg.dataplane_threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    )
}

/// `INTENTGATE_REPLICA_ID`, or `<hostname>:<port>`. It names the process holding a pending
/// approval's call, so it must be unique per running process: set it when two processes on
/// one host share a port.
pub(super) fn replica_id(cfg: &Config) -> String {
    cfg.replica_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "intentgate".into());
        format!("{host}:{}", cfg.addr.port())
    })
}
