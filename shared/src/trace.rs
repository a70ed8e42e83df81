//! W3C trace context and the OpenTelemetry samplers (`OTEL_TRACES_SAMPLER`), small enough for
//! the data plane to decide per request whether it records spans at all: an unsampled request
//! costs one comparison.

use std::fmt::Write as _;

/// A 16-byte trace id.
pub type TraceId = [u8; 16];
/// An 8-byte span id.
pub type SpanId = [u8; 8];

/// `OTEL_TRACES_SAMPLER` (with `OTEL_TRACES_SAMPLER_ARG` for the ratio samplers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Every trace.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// A fraction of trace ids.
    TraceIdRatio(f64),
    /// Follow a caller's `traceparent` sampled flag; without one, use the inner sampler.
    ParentBased(Root),
}

/// The root sampler of [`Sampler::ParentBased`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    /// Every root trace.
    AlwaysOn,
    /// No root trace.
    AlwaysOff,
    /// A fraction of root trace ids.
    TraceIdRatio(f64),
}

/// A sampler setting that is not one of the standard names or ratios.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.var(), self.problem())]
pub enum SamplerError {
    /// `OTEL_TRACES_SAMPLER` names no sampler.
    Name(String),
    /// `OTEL_TRACES_SAMPLER_ARG` is not a ratio in 0.0-1.0.
    Ratio(String),
}

impl SamplerError {
    /// The variable at fault.
    pub fn var(&self) -> &'static str {
        match self {
            Self::Name(_) => "OTEL_TRACES_SAMPLER",
            Self::Ratio(_) => "OTEL_TRACES_SAMPLER_ARG",
        }
    }

    /// What is wrong with it and what is accepted.
    pub fn problem(&self) -> String {
        match self {
            Self::Name(name) => format!(
                "invalid value {name:?} (accepted: always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off, parentbased_traceidratio)"
            ),
            Self::Ratio(arg) => format!("invalid value {arg:?} (accepted: 0.0-1.0)"),
        }
    }
}

impl Sampler {
    /// Parses the standard names; `arg` is the ratio (default 1.0).
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Self, SamplerError> {
        let ratio = || match arg {
            None => Ok(1.0),
            Some(a) => match a.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(SamplerError::Ratio(a.to_owned())),
            },
        };
        Ok(match name.trim() {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio(ratio()?),
            "parentbased_always_on" => Self::ParentBased(Root::AlwaysOn),
            "parentbased_always_off" => Self::ParentBased(Root::AlwaysOff),
            "parentbased_traceidratio" => Self::ParentBased(Root::TraceIdRatio(ratio()?)),
            other => return Err(SamplerError::Name(other.to_owned())),
        })
    }

    /// Whether a request with this trace id (and the caller's context, if any) is recorded.
    pub fn sample(&self, trace_id: &TraceId, parent: Option<&TraceParent>) -> bool {
        match (self, parent) {
            (Self::AlwaysOn, _) => true,
            (Self::AlwaysOff, _) => false,
            (Self::TraceIdRatio(r), _) => ratio_sample(*r, trace_id),
            (Self::ParentBased(_), Some(p)) => p.sampled,
            (Self::ParentBased(Root::AlwaysOn), None) => true,
            (Self::ParentBased(Root::AlwaysOff), None) => false,
            (Self::ParentBased(Root::TraceIdRatio(r)), None) => ratio_sample(*r, trace_id),
        }
    }

    /// Whether no request can ever be sampled (spans need not even be considered).
    pub fn never(&self) -> bool {
        match self {
            Self::AlwaysOff => true,
            Self::TraceIdRatio(r) => *r <= 0.0,
            _ => false,
        }
    }
}

/// As the OpenTelemetry SDKs: the trace id's low 8 bytes against `ratio * 2^63`.
fn ratio_sample(ratio: f64, id: &TraceId) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&id[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    x < bound
}

/// A caller's `traceparent` header (W3C Trace Context, version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id.
    pub trace_id: TraceId,
    /// The caller's span.
    pub span_id: SpanId,
    /// The sampled flag.
    pub sampled: bool,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; anything else (including all-zero ids) is
    /// ignored, as the specification asks.
    pub fn parse(v: &[u8]) -> Option<Self> {
        let v = v.trim_ascii();
        if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let version = hex_byte(&v[0..2])?;
        // Version ff is invalid; version 00 is exactly 55 bytes; later versions may append.
        if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, b) in span_id.iter_mut().enumerate() {
            *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&v[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// Lowercase hex only, as the specification requires.
fn hex_byte(two: &[u8]) -> Option<u8> {
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(d(two[0])? << 4 | d(two[1])?)
}

/// Lowercase hex of an id.
pub fn hex(id: &[u8]) -> String {
    let mut s = String::with_capacity(id.len() * 2);
    for b in id {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The `traceparent` value for a sampled span.
pub fn traceparent(trace_id: &TraceId, span_id: &SpanId) -> String {
    format!("00-{}-{}-01", hex(trace_id), hex(span_id))
}

/// Per-core id source (splitmix64): trace ids need to be unique and well spread, not secret.
#[derive(Debug, Clone)]
pub struct IdGen(u64);

impl IdGen {
    /// A generator from a random seed.
    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A non-zero span id.
    pub fn span_id(&mut self) -> SpanId {
        loop {
            let v = self.next();
            if v != 0 {
                return v.to_be_bytes();
            }
        }
    }

    /// A non-zero trace id.
    pub fn trace_id(&mut self) -> TraceId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.span_id());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }
}

/// One finished span of a sampled request, as the data plane records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRecord {
    /// `request`, a check name, `upstream` or `audit.insert`.
    pub name: &'static str,
    /// This span.
    pub span_id: SpanId,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
}

/// The spans of one sampled request: the request span first, then its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTrace {
    /// Trace id (the caller's when it sent a `traceparent`).
    pub trace_id: TraceId,
    /// The caller's span, when it sent a `traceparent`.
    pub remote_parent: Option<SpanId>,
    /// The request span.
    pub request: SpanRecord,
    /// Child spans of the request span.
    pub children: Vec<SpanRecord>,
}

/// Unix nanoseconds now.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_parses_the_specification_example_and_refuses_malformed_values() {
        let p = TraceParent::parse(TP).unwrap();
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert!(
            !TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .sampled
        );
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"garbage",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
        let back = traceparent(&p.trace_id, &p.span_id);
        assert_eq!(back.as_bytes(), TP);
    }

    #[test]
    fn samplers_parse_and_decide_as_the_specification_says() {
        let id = IdGen::seeded(7).trace_id();
        let parent_on = TraceParent::parse(TP).unwrap();
        let parent_off = TraceParent {
            sampled: false,
            ..parent_on
        };
        let s = |n: &str, a: Option<&str>| Sampler::parse(n, a).unwrap();
        assert!(s("always_on", None).sample(&id, Some(&parent_off)));
        assert!(!s("always_off", None).sample(&id, Some(&parent_on)));
        assert!(s("parentbased_always_on", None).sample(&id, None));
        assert!(!s("parentbased_always_on", None).sample(&id, Some(&parent_off)));
        assert!(s("parentbased_always_off", None).sample(&id, Some(&parent_on)));
        assert!(!s("parentbased_always_off", None).sample(&id, None));
        assert!(!s("traceidratio", Some("0")).sample(&id, Some(&parent_on)));
        assert!(s("traceidratio", Some("1")).sample(&id, None));
        // About a quarter of ids at 0.25.
        let mut g = IdGen::seeded(42);
        let r = s("parentbased_traceidratio", Some("0.25"));
        let n = (0..10_000)
            .filter(|_| r.sample(&g.trace_id(), None))
            .count();
        assert!((2_200..2_800).contains(&n), "{n}");
        for (name, arg) in [
            ("sometimes", None),
            ("traceidratio", Some("1.5")),
            ("traceidratio", Some("-0.1")),
            ("traceidratio", Some("half")),
        ] {
            assert!(Sampler::parse(name, arg).is_err(), "{name} {arg:?}");
        }
        assert!(s("always_off", None).never());
        assert!(!s("parentbased_always_off", None).never());
        assert!(!s("always_on", None).never());
    }

    #[test]
    fn generated_ids_are_non_zero_and_distinct() {
        let mut g = IdGen::seeded(0);
        let a = g.trace_id();
        let b = g.trace_id();
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
        assert_ne!(g.span_id(), [0; 8]);
    }
}
