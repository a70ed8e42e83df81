//! `OTEL_*`: OTLP trace export (OTLP over HTTP with JSON bodies) and the sampler.

use super::{Reader, Secret};
use crate::trace::{Root, Sampler};

/// Trace export settings; present when an OTLP endpoint is set.
#[derive(Debug, Clone)]
pub struct Otel {
    /// The traces URL (`<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces`, or the traces endpoint as
    /// given).
    pub traces_url: String,
    /// Headers sent with each export (they often carry an API key).
    pub headers: Vec<(String, Secret)>,
    /// Which requests are recorded.
    pub sampler: Sampler,
    /// `service.name`.
    pub service_name: String,
}

pub(super) fn read_otel<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<Otel> {
    let base = r.url("OTEL_EXPORTER_OTLP_ENDPOINT");
    let traces = r.url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let protocol = r.raw("OTEL_EXPORTER_OTLP_PROTOCOL");
    let headers = r.raw("OTEL_EXPORTER_OTLP_HEADERS");
    let sampler_name = r.raw("OTEL_TRACES_SAMPLER");
    let sampler_arg = r.raw("OTEL_TRACES_SAMPLER_ARG");
    let service_name = r
        .raw("OTEL_SERVICE_NAME")
        .unwrap_or_else(|| "intentgate-gateway".into());
    if let Some(p) = &protocol
        && p != "http/json"
    {
        r.fail(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            format!(
                "{} is not spoken by this build (accepted: http/json; point the endpoint at the \
                 collector's OTLP/HTTP port, usually 4318)",
                Reader::<F>::shown(p)
            ),
        );
    }
    let sampler = match sampler_name {
        None => Sampler::ParentBased(Root::AlwaysOn),
        Some(name) => match Sampler::parse(&name, sampler_arg.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                r.fail(e.var(), e.problem());
                Sampler::AlwaysOff
            }
        },
    };
    let mut parsed = Vec::new();
    for (i, pair) in headers
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        match pair.split_once('=') {
            Some((k, v))
                if !k.trim().is_empty()
                    && k.trim()
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') =>
            {
                parsed.push((k.trim().to_owned(), Secret::new(v.trim())));
            }
            // The value may be a key: name the entry, never show it.
            _ => r.fail(
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("entry #{} is not name=value", i + 1),
            ),
        }
    }
    let traces_url =
        traces.or_else(|| base.map(|b| format!("{}/v1/traces", b.trim_end_matches('/'))))?;
    Some(Otel {
        traces_url,
        headers: parsed,
        sampler,
        service_name,
    })
}
