//! The audit handoff's contract between the planes: where drained records go ([`AuditSink`]),
//! who sees them on the way ([`Observer`], [`Tap`]), how a sink reports commits back
//! ([`CommitListener`]), and how the control plane pushes the records it originates
//! ([`AuditRecorder`]).
//!
//! The rings, the drain thread and the commit watch that wakes waiting calls are the data
//! plane's (`intentgate_dataplane::audit_ring`); the chain writer and the fan-out taps are the
//! control plane's. Both meet here, so neither names the other's types.

use std::fmt::Debug;
use std::io::Write;

use crate::audit::AuditEvent;

/// Which record a push was: the producer's index and its 1-based count of records pushed
/// there. Rings are FIFO and the writer commits in drain order, so a core's records commit
/// in ticket order (see [`CommitListener`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Producer index.
    pub core: u16,
    /// Records pushed by that producer up to and including this one.
    pub seq: u64,
}

/// The ring has no free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull;

/// Where drained records go.
pub trait AuditSink: Send + 'static {
    /// Takes a batch (in per-core order; cores interleave).
    fn write_batch(&mut self, batch: &mut Vec<AuditEvent>);

    /// Takes a batch with the producer index of each record (for sinks that report commits
    /// back through a [`CommitListener`]).
    fn write_tagged(&mut self, batch: &mut Vec<AuditEvent>, cores: &mut Vec<u16>) {
        cores.clear();
        self.write_batch(batch);
    }
}

/// Sees every drained batch before the sink takes it: the fan-out to webhooks, SIEM
/// forwarders and trace export. Runs on the drain thread, so it must never wait.
pub trait Observer: Send + 'static {
    /// Looks at a batch (in per-core order).
    fn observe(&mut self, batch: &[AuditEvent]);
}

/// A sink that shows each batch to an [`Observer`], then hands it on to `inner`.
#[derive(Debug)]
pub struct Tap<S, O> {
    inner: S,
    observer: O,
}

impl<S, O> Tap<S, O> {
    /// `observer` sees what `inner` is given.
    pub fn new(inner: S, observer: O) -> Self {
        Self { inner, observer }
    }
}

impl<S: AuditSink, O: Observer> AuditSink for Tap<S, O> {
    fn write_batch(&mut self, batch: &mut Vec<AuditEvent>) {
        self.observer.observe(batch);
        self.inner.write_batch(batch);
    }

    fn write_tagged(&mut self, batch: &mut Vec<AuditEvent>, cores: &mut Vec<u16>) {
        self.observer.observe(batch);
        self.inner.write_tagged(batch, cores);
    }
}

impl<S: AuditSink + ?Sized> AuditSink for Box<S> {
    fn write_batch(&mut self, batch: &mut Vec<AuditEvent>) {
        (**self).write_batch(batch);
    }

    fn write_tagged(&mut self, batch: &mut Vec<AuditEvent>, cores: &mut Vec<u16>) {
        (**self).write_tagged(batch, cores);
    }
}

/// Learns how far each producer's records are durably stored
/// (`INTENTGATE_AUDIT_DURABILITY=sync`): the sink that commits calls it after each commit,
/// and the data plane's commit watch wakes the calls waiting for those records.
pub trait CommitListener: Send + Sync + Debug {
    /// `n` more records of producer `core` are committed.
    fn advance(&self, core: u16, n: u64);
}

/// The control plane's own producer: the records it originates (admin changes) enter the
/// audit handoff here, in order, like a core's.
pub trait AuditRecorder: Send + Debug {
    /// Pushes a record now. `Err`: no room; the caller must say the record is not queued
    /// rather than drop it silently.
    fn push(&mut self, event: AuditEvent) -> Result<Ticket, RingFull>;
}

/// Writes each record as one JSON line to `out` and flushes it
/// (`INTENTGATE_AUDIT_TARGET=stdout`; the caller picks the stream). Write errors are ignored:
/// the line is an echo, the record itself goes on to the sink.
pub fn write_json_lines(out: &mut impl Write, batch: &[AuditEvent]) {
    for e in batch {
        let mut line = e.to_json();
        line.push(b'\n');
        let _ = out.write_all(&line);
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::audit::Decision;
    use crate::timestamp::Timestamp;

    #[derive(Default)]
    struct Kept(Vec<String>);

    impl AuditSink for Kept {
        fn write_batch(&mut self, batch: &mut Vec<AuditEvent>) {
            self.0.extend(batch.drain(..).map(|e| e.tool));
        }
    }

    struct Seen(Arc<Mutex<usize>>);

    impl Observer for Seen {
        fn observe(&mut self, batch: &[AuditEvent]) {
            *self.0.lock().unwrap() += batch.len();
        }
    }

    fn ev(tool: &str) -> AuditEvent {
        AuditEvent::new(Timestamp::from_unix_micros(1), Decision::Allow, tool)
    }

    #[test]
    fn a_tap_shows_the_batch_then_hands_it_on_and_untagged_sinks_drop_the_tags() {
        let seen = Arc::new(Mutex::new(0));
        let mut tap: Box<dyn AuditSink> =
            Box::new(Tap::new(Kept::default(), Seen(Arc::clone(&seen))));
        let mut cores = vec![0, 1];
        tap.write_tagged(&mut vec![ev("a"), ev("b")], &mut cores);
        tap.write_batch(&mut vec![ev("c")]);
        assert!(cores.is_empty(), "a sink that ignores tags clears them");
        assert_eq!(*seen.lock().unwrap(), 3);
    }

    #[test]
    fn json_lines_are_one_record_per_line() {
        let mut out = Vec::new();
        write_json_lines(&mut out, &[ev("a"), ev("b")]);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')));
    }
}
