//! Audit handoff: each core pushes one record per decision into its own SPSC ring (rtrb); a
//! drain thread collects all rings and hands batches to a sink (the chain writer, or memory
//! and stdout in `dev`). Hashing happens in the sink, never on the request path.
//!
//! No record is dropped silently: a core forwards a call only after reserving a ring slot for
//! its record, and refuses the call (503) when it cannot.
//!
//! The traits the control plane plugs in through ([`AuditSink`], [`Observer`],
//! [`CommitListener`], [`AuditRecorder`]) live in `intentgate_shared::audit_sink`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::oneshot;
use intentgate_shared::audit::AuditEvent;
// The sink, observer and tap traits and the ticket are the contract with the control plane.
pub use intentgate_shared::audit_sink::{
    AuditRecorder, AuditSink, CommitListener, Observer, RingFull, Tap, Ticket,
};

/// Slots per core ring.
pub const RING_SLOTS: usize = 16 * 1024;

/// Counters shared by all rings.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Records waiting in the rings, as the drain thread last saw them (it is the only
    /// writer: the request path updates no shared counter when it pushes).
    pub queue_depth: AtomicU64,
    /// Calls refused because a ring was full.
    pub refused: AtomicU64,
    /// Records delivered to the sink.
    pub delivered: AtomicU64,
    /// Check decisions, tallied by the drain thread from the records it moves.
    pub decisions: crate::metrics::DecisionMetrics,
}

/// A core's producer. `reserve` before forwarding; `push` never fails for a reserved record.
#[derive(Debug)]
pub struct AuditProducer {
    ring: rtrb::Producer<AuditEvent>,
    reserved: usize,
    counters: Arc<AuditCounters>,
    core: u16,
    pushed: u64,
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
    pub fn push_reserved(&mut self, _slot: Reservation, event: AuditEvent) -> Ticket {
        self.reserved -= 1;
        // The reservation guarantees a free slot: the drain only ever frees more.
        if self.ring.push(event).is_ok() {
            self.pushed += 1;
        }
        self.last_ticket()
    }

    /// Pushes a record now (decisions that forward nothing). `Err`: the ring is full; the
    /// caller must refuse the call (503) rather than answer it unaudited.
    pub fn push(&mut self, event: AuditEvent) -> Result<Ticket, RingFull> {
        let slot = self.reserve().ok_or(RingFull)?;
        Ok(self.push_reserved(slot, event))
    }

    /// The ticket of the newest record pushed here (seq 0: none yet).
    pub fn last_ticket(&self) -> Ticket {
        Ticket {
            core: self.core,
            seq: self.pushed,
        }
    }
}

#[derive(Debug, Default)]
struct CoreWatch {
    committed: AtomicU64,
    waiters: Mutex<Vec<(u64, oneshot::Sender<()>)>>,
}

/// How far each producer's records are durably stored, and the calls waiting for that
/// (`INTENTGATE_AUDIT_DURABILITY=sync`). The writer advances it after each commit; a core
/// waits on a oneshot (no polling, no blocking of the core).
#[derive(Debug)]
pub struct CommitWatch {
    cores: Vec<CoreWatch>,
}

impl CommitWatch {
    /// A watch for `producers` producers, nothing committed.
    pub fn new(producers: usize) -> Self {
        Self {
            cores: (0..producers).map(|_| CoreWatch::default()).collect(),
        }
    }

    /// `n` more records of producer `core` are committed.
    pub fn advance(&self, core: u16, n: u64) {
        let Some(w) = self.cores.get(usize::from(core)) else {
            return;
        };
        let now = w.committed.fetch_add(n, Ordering::AcqRel) + n;
        let mut waiters = w.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut i = 0;
        while i < waiters.len() {
            if waiters[i].0 <= now {
                let (_, tx) = waiters.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
    }

    /// `None` when `t` is committed already; otherwise a receiver that completes when it is.
    pub fn wait(&self, t: Ticket) -> Option<oneshot::Receiver<()>> {
        let w = self.cores.get(usize::from(t.core))?;
        let mut waiters = w.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if w.committed.load(Ordering::Acquire) >= t.seq {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiters.push((t.seq, tx));
        Some(rx)
    }

    /// Records of `core` committed so far.
    pub fn committed(&self, core: u16) -> u64 {
        self.cores
            .get(usize::from(core))
            .map_or(0, |w| w.committed.load(Ordering::Acquire))
    }
}

/// The chain writer reports its commits here.
impl CommitListener for CommitWatch {
    fn advance(&self, core: u16, n: u64) {
        CommitWatch::advance(self, core, n);
    }
}

/// The control plane pushes its admin records through its own producer.
impl AuditRecorder for AuditProducer {
    fn push(&mut self, event: AuditEvent) -> Result<Ticket, RingFull> {
        AuditProducer::push(self, event)
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
    intentgate_shared::audit_sink::write_json_lines(&mut std::io::stdout().lock(), batch);
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
        .map(|i| {
            let (p, c) = rtrb::RingBuffer::new(RING_SLOTS);
            (
                AuditProducer {
                    ring: p,
                    reserved: 0,
                    counters: Arc::clone(&counters),
                    core: u16::try_from(i).unwrap_or(u16::MAX),
                    pushed: 0,
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
            let mut tags: Vec<u16> = Vec::with_capacity(1024);
            loop {
                let stopping = flag.load(Ordering::Acquire);
                let waiting: usize = consumers.iter().map(rtrb::Consumer::slots).sum();
                counters
                    .queue_depth
                    .store(waiting as u64, Ordering::Relaxed);
                for (i, c) in consumers.iter_mut().enumerate() {
                    while let Ok(e) = c.pop() {
                        batch.push(e);
                        tags.push(u16::try_from(i).unwrap_or(u16::MAX));
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
                let log = tracing::enabled!(tracing::Level::DEBUG);
                for e in &batch {
                    counters.decisions.tally(e);
                    // The runbook's per-decision event, written here, off the request path.
                    if log && !e.tool.starts_with("admin/") {
                        tracing::debug!(
                            decision = %e.decision,
                            check = %e.check,
                            tool = %e.tool,
                            tenant = %e.tenant,
                            agent_id = %e.agent_id,
                            reason = %e.reason,
                            "policy.decision"
                        );
                    }
                }
                sink.write_tagged(&mut batch, &mut tags);
                batch.clear();
                tags.clear();
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
            core: 0,
            pushed: 0,
        };
        let slot = prod.reserve().unwrap();
        prod.push(ev(1)).unwrap();
        // One slot is left but reserved for the in-flight call: a new record is refused.
        assert!(prod.push(ev(2)).is_err());
        assert!(prod.reserve().is_none());
        prod.push_reserved(slot, ev(3));
        assert_eq!(counters.refused.load(Ordering::Relaxed), 2);
        assert_eq!(prod.last_ticket().seq, 2);
    }

    #[test]
    fn commit_watch_wakes_each_waiter_once_its_record_is_committed() {
        let w = CommitWatch::new(2);
        let t = |core, seq| Ticket { core, seq };
        let mut first = w.wait(t(0, 1)).unwrap();
        let mut third = w.wait(t(0, 3)).unwrap();
        let mut other = w.wait(t(1, 1)).unwrap();
        w.advance(0, 2);
        assert_eq!(first.try_recv().unwrap(), Some(()));
        assert_eq!(third.try_recv().unwrap(), None);
        assert_eq!(other.try_recv().unwrap(), None);
        assert!(w.wait(t(0, 2)).is_none(), "already committed");
        w.advance(0, 1);
        assert_eq!(third.try_recv().unwrap(), Some(()));
        assert_eq!((w.committed(0), w.committed(1)), (3, 0));
        w.advance(9, 1); // unknown producer: ignored
    }
}
