//! Audit handoff: each core pushes one record per decision into its own SPSC ring (rtrb); a
//! drain thread collects all rings and hands batches to a sink (the chain writer, or memory
//! and stdout in `dev`). Hashing happens in the sink, never on the request path.
//!
//! No record is dropped silently: a core forwards a call only after reserving a ring slot for
//! its record, and refuses the call (503) when it cannot.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use intentgate_shared::audit::AuditEvent;

/// Slots per core ring.
pub const RING_SLOTS: usize = 16 * 1024;

/// Counters shared by all rings.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Records pushed.
    pub pushed: AtomicU64,
    /// Calls refused because a ring was full.
    pub refused: AtomicU64,
    /// Records delivered to the sink.
    pub delivered: AtomicU64,
}

/// A core's producer. `reserve` before forwarding; `push` never fails for a reserved record.
#[derive(Debug)]
pub struct AuditProducer {
    ring: rtrb::Producer<AuditEvent>,
    reserved: usize,
    counters: Arc<AuditCounters>,
}

/// A reserved slot; give it back with [`AuditProducer::push_reserved`].
#[derive(Debug)]
#[must_use = "a reservation must be used to push the record"]
pub struct Reservation(());

impl AuditProducer {
    /// Reserves a slot for a record to be pushed later (after an await). `None`: the ring is
    /// full, refuse the call.
    pub fn reserve(&mut self) -> Option<Reservation> {
        if self.ring.slots() > self.reserved {
            self.reserved += 1;
            Some(Reservation(()))
        } else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Pushes a record into a slot reserved earlier.
    pub fn push_reserved(&mut self, _slot: Reservation, event: AuditEvent) {
        self.reserved -= 1;
        // The reservation guarantees a free slot: the drain only ever frees more.
        if self.ring.push(event).is_ok() {
            self.counters.pushed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Pushes a record now (decisions that forward nothing). `Err`: the ring is full; the
    /// caller must refuse the call (503) rather than answer it unaudited.
    pub fn push(&mut self, event: AuditEvent) -> Result<(), RingFull> {
        let slot = self.reserve().ok_or(RingFull)?;
        self.push_reserved(slot, event);
        Ok(())
    }
}

/// The ring has no free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull;

/// Where drained records go.
pub trait AuditSink: Send + 'static {
    /// Takes a batch (in per-core order; cores interleave).
    fn write_batch(&mut self, batch: &mut Vec<AuditEvent>);
}

impl<S: AuditSink + ?Sized> AuditSink for Box<S> {
    fn write_batch(&mut self, batch: &mut Vec<AuditEvent>) {
        (**self).write_batch(batch);
    }
}

/// Keeps the most recent records in memory and optionally prints each as a JSON line.
#[derive(Debug, Clone)]
pub struct MemorySink {
    recent: Arc<Mutex<VecDeque<AuditEvent>>>,
    capacity: usize,
    stdout: bool,
}

impl MemorySink {
    /// A sink keeping `capacity` records; `stdout` prints one JSON line per record.
    pub fn new(capacity: usize, stdout: bool) -> Self {
        Self {
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
            stdout,
        }
    }

    /// A copy of the records kept, oldest first.
    pub fn recent(&self) -> Vec<AuditEvent> {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

impl AuditSink for MemorySink {
    fn write_batch(&mut self, batch: &mut Vec<AuditEvent>) {
        if self.stdout {
            write_json_lines(batch);
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        for e in batch.drain(..) {
            if recent.len() == self.capacity {
                recent.pop_front();
            }
            recent.push_back(e);
        }
    }
}

/// Prints each record as one JSON line on stdout (`INTENTGATE_AUDIT_TARGET=stdout`).
pub fn write_json_lines(batch: &[AuditEvent]) {
    let mut out = std::io::stdout().lock();
    for e in batch {
        let mut line = e.to_json();
        line.push(b'\n');
        let _ = out.write_all(&line);
    }
    let _ = out.flush();
}

/// The drain thread. Stopping it drains every ring once more, so nothing pushed is lost.
#[derive(Debug)]
pub struct AuditDrain {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Creates one producer per core and starts the drain thread feeding `sink`.
pub fn start(
    cores: usize,
    mut sink: impl AuditSink,
    counters: Arc<AuditCounters>,
) -> (Vec<AuditProducer>, AuditDrain) {
    let (producers, mut consumers): (Vec<_>, Vec<_>) = (0..cores)
        .map(|_| {
            let (p, c) = rtrb::RingBuffer::new(RING_SLOTS);
            (
                AuditProducer {
                    ring: p,
                    reserved: 0,
                    counters: Arc::clone(&counters),
                },
                c,
            )
        })
        .unzip();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("audit-drain".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(1024);
            loop {
                let stopping = flag.load(Ordering::Acquire);
                for c in &mut consumers {
                    while let Ok(e) = c.pop() {
                        batch.push(e);
                    }
                }
                if batch.is_empty() {
                    if stopping {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                counters
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                sink.write_batch(&mut batch);
                batch.clear();
            }
        })
        .ok();
    (producers, AuditDrain { stop, thread })
}

impl AuditDrain {
    /// Drains what is left and stops.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intentgate_shared::audit::Decision;
    use intentgate_shared::timestamp::Timestamp;

    fn ev(i: i64) -> AuditEvent {
        AuditEvent::new(
            Timestamp::from_unix_micros(i),
            Decision::Allow,
            format!("t{i}"),
        )
    }

    #[test]
    fn every_record_reaches_the_sink_in_core_order() {
        let sink = MemorySink::new(1000, false);
        let counters = Arc::new(AuditCounters::default());
        let (mut producers, drain) = start(2, sink.clone(), Arc::clone(&counters));
        for i in 0..100 {
            producers[(i % 2) as usize].push(ev(i)).unwrap();
        }
        drain.stop();
        let got = sink.recent();
        assert_eq!(got.len(), 100);
        let core0: Vec<i64> = got
            .iter()
            .map(|e| e.ts.unix_micros())
            .filter(|i| i % 2 == 0)
            .collect();
        assert!(core0.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(counters.delivered.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn a_full_ring_refuses_and_counts() {
        let counters = Arc::new(AuditCounters::default());
        let (p, _c) = rtrb::RingBuffer::new(2);
        let mut prod = AuditProducer {
            ring: p,
            reserved: 0,
            counters: Arc::clone(&counters),
        };
        let slot = prod.reserve().unwrap();
        prod.push(ev(1)).unwrap();
        // One slot is left but reserved for the in-flight call: a new record is refused.
        assert!(prod.push(ev(2)).is_err());
        assert!(prod.reserve().is_none());
        prod.push_reserved(slot, ev(3));
        assert_eq!(counters.refused.load(Ordering::Relaxed), 2);
        assert_eq!(counters.pushed.load(Ordering::Relaxed), 2);
    }
}
