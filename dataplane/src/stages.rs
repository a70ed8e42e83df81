//! Per-call stage timing. One clock read per stage boundary feeds the
//! `check_duration_seconds` histograms of every call; for a call the sampler picked, the same
//! reads also become the child spans of its trace (`intentgate_shared::trace`), attached to
//! the call's audit record and exported by the control plane off the request path. An
//! unsampled call allocates nothing here.

use std::time::Instant;

use intentgate_shared::audit::AuditEvent;
use intentgate_shared::trace::{
    IdGen, RequestTrace, Sampler, SpanId, SpanRecord, TraceParent, now_ns, traceparent,
};

use crate::metrics::CoreMetrics;

/// Stage names: the checks (in [`crate::metrics::CHECKS`] order), then the waits.
pub const CAPABILITY: usize = 0;
/// Intent check.
pub const INTENT: usize = 1;
/// Policy check.
pub const POLICY: usize = 2;
/// Budget check.
pub const BUDGET: usize = 3;
/// Waiting for a reviewer.
pub const APPROVAL: usize = 4;
/// The upstream round trip.
pub const UPSTREAM: usize = 5;
const NAMES: [&str; 6] = [
    "capability",
    "intent",
    "policy",
    "budget",
    "approval",
    "upstream",
];

struct Sampled {
    trace: Box<RequestTrace>,
    ids: IdGen,
    start_ns: u64,
}

/// One call's stage clock.
pub struct Stages {
    started: Instant,
    last: Instant,
    sampled: Option<Sampled>,
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stages")
            .field("sampled", &self.sampled.is_some())
            .finish_non_exhaustive()
    }
}

impl Stages {
    /// Starts the clock at `started`. With a sampler, decides (from the caller's
    /// `traceparent`, if any) whether this call is traced.
    pub fn begin(
        started: Instant,
        sampler: Option<&Sampler>,
        traceparent: Option<&[u8]>,
        ids: &mut IdGen,
    ) -> Self {
        let sampled = sampler.filter(|s| !s.never()).and_then(|s| {
            let parent = traceparent.and_then(TraceParent::parse);
            let trace_id = parent.map_or_else(|| ids.trace_id(), |p| p.trace_id);
            if !s.sample(&trace_id, parent.as_ref()) {
                return None;
            }
            let mut own = IdGen::seeded(u64::from_be_bytes(ids.span_id()));
            let start_ns = now_ns().saturating_sub(ns(started.elapsed()));
            Some(Sampled {
                trace: Box::new(RequestTrace {
                    trace_id,
                    remote_parent: parent.map(|p| p.span_id),
                    request: SpanRecord {
                        name: "request",
                        span_id: own.span_id(),
                        start_ns,
                        end_ns: start_ns,
                    },
                    children: Vec::with_capacity(6),
                }),
                ids: own,
                start_ns,
            })
        });
        Self {
            started,
            last: started,
            sampled,
        }
    }

    /// Whether this call is traced.
    pub fn traced(&self) -> bool {
        self.sampled.is_some()
    }

    fn at(&self, t: Instant) -> u64 {
        self.sampled.as_ref().map_or(0, |s| {
            s.start_ns + ns(t.saturating_duration_since(self.started))
        })
    }

    /// Ends stage `stage` at `end` (it began where the previous one ended): observed in the
    /// check histograms, and a span when traced.
    pub fn end_at(&mut self, stage: usize, end: Instant, metrics: &CoreMetrics) {
        if let Some(h) = metrics.check_duration.get(stage) {
            h.observe(end.saturating_duration_since(self.last));
        }
        self.span(NAMES[stage], self.last, end);
        self.last = end;
    }

    /// Records a span inside the current stage (no histogram), when traced.
    pub fn span(&mut self, name: &'static str, start: Instant, end: Instant) {
        if self.sampled.is_some() {
            let (start_ns, end_ns) = (self.at(start), self.at(end));
            if let Some(s) = self.sampled.as_mut() {
                let span_id = s.ids.span_id();
                s.trace.children.push(SpanRecord {
                    name,
                    span_id,
                    start_ns,
                    end_ns,
                });
            }
        }
    }

    /// Ends stage `stage` now.
    pub fn end(&mut self, stage: usize, metrics: &CoreMetrics) {
        self.end_at(stage, Instant::now(), metrics);
    }

    /// Restarts the stage clock now (time since the last stage is nobody's).
    pub fn mark(&mut self) {
        self.mark_at(Instant::now());
    }

    /// Restarts the stage clock at `t` (a clock read the caller already made).
    pub fn mark_at(&mut self, t: Instant) {
        self.last = t;
    }

    /// The span id the next stage will get.
    pub fn next_span(&self) -> Option<SpanId> {
        self.sampled.as_ref().map(|s| s.ids.clone().span_id())
    }

    /// The `traceparent` naming the next stage's span, sent upstream so the tool server's
    /// spans join this trace.
    pub fn next_traceparent(&self) -> Option<String> {
        let s = self.sampled.as_ref()?;
        Some(traceparent(&s.trace.trace_id, &s.ids.clone().span_id()))
    }

    /// Closes the request span and hands the trace to the call's audit record.
    pub fn finish(self, event: &mut AuditEvent) {
        if let Some(mut s) = self.sampled {
            s.trace.request.end_ns = s.start_ns + ns(self.started.elapsed());
            event.trace = Some(s.trace);
        }
    }
}

fn ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use intentgate_shared::audit::Decision;
    use intentgate_shared::timestamp::Timestamp;
    use intentgate_shared::trace::{Root, hex};

    #[test]
    fn an_unsampled_call_records_metrics_but_no_trace() {
        let m = CoreMetrics::default();
        let mut ids = IdGen::seeded(1);
        let mut s = Stages::begin(
            Instant::now(),
            Some(&Sampler::ParentBased(Root::AlwaysOff)),
            None,
            &mut ids,
        );
        assert!(!s.traced());
        s.end(CAPABILITY, &m);
        let mut e = AuditEvent::new(Timestamp::now(), Decision::Allow, "t");
        s.finish(&mut e);
        assert!(e.trace.is_none());
        assert_eq!(m.check_duration[CAPABILITY].count(), 1);
    }

    #[test]
    fn a_sampled_call_keeps_the_callers_trace_and_nests_its_stages() {
        let m = CoreMetrics::default();
        let mut ids = IdGen::seeded(1);
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut s = Stages::begin(
            Instant::now(),
            Some(&Sampler::ParentBased(Root::AlwaysOff)),
            Some(tp),
            &mut ids,
        );
        assert!(s.traced());
        s.end(CAPABILITY, &m);
        s.end(POLICY, &m);
        let next = s.next_span().unwrap();
        s.end(UPSTREAM, &m);
        let mut e = AuditEvent::new(Timestamp::now(), Decision::Allow, "t");
        s.finish(&mut e);
        let t = e.trace.unwrap();
        assert_eq!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&t.remote_parent.unwrap()), "00f067aa0ba902b7");
        let names: Vec<&str> = t.children.iter().map(|c| c.name).collect();
        assert_eq!(names, ["capability", "policy", "upstream"]);
        assert_eq!(
            t.children[2].span_id, next,
            "traceparent names the upstream span"
        );
        for c in &t.children {
            assert!(t.request.start_ns <= c.start_ns && c.start_ns <= c.end_ns);
            assert!(c.end_ns <= t.request.end_ns);
        }
        let checks: u64 = m.check_duration.iter().map(|h| h.count()).sum();
        assert_eq!(checks, 2, "the upstream round trip is not a check");
    }
}
