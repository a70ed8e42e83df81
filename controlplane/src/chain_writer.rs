//! The chain writer: the sink the audit drain thread hands batches to when
//! `INTENTGATE_AUDIT_PERSIST=true`, and the task that appends them to Postgres.
//!
//! Nothing is dropped. Batches wait in a bounded channel; the writer takes as many as fit in
//! one transaction (group commit: while one batch commits the next accumulates) and retries a
//! failed append with backoff, keeping every event in order. While it retries the channel
//! fills, the drain thread blocks, the per-core rings fill, and the data plane refuses new
//! calls with 503 instead of answering them unaudited.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use intentgate_shared::audit::AuditEvent;
use intentgate_shared::audit_sink::{self, AuditSink, CommitListener};
use intentgate_shared::metrics::Histogram;

use crate::checkpoint::Signer;
use crate::store::audit as sql;

/// Rows per transaction at most.
pub const MAX_BATCH: usize = 4096;
/// Drain batches the channel holds before the drain thread waits.
pub const CHANNEL_BATCHES: usize = 256;
/// An append that takes longer is abandoned and retried. (If it had committed after all,
/// the retry writes the batch twice: duplicated, never lost.)
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the writer has done, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Rows committed.
    pub persisted: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Failed appends (each retried).
    pub failures: AtomicU64,
    /// Time of each committed append (two writers share it, hence the lock; one lock per
    /// batch, not per record).
    pub append_duration: std::sync::Mutex<Histogram>,
}

/// The drain thread's side: echoes to stdout when asked, then hands the batch to the writer,
/// waiting while the writer is behind.
#[derive(Debug)]
pub struct ChainSink {
    tx: mpsc::Sender<Batch>,
    stdout: bool,
}

impl AuditSink for ChainSink {
    fn write_batch(&mut self, batch: &mut Vec<AuditEvent>) {
        self.write_tagged(batch, &mut Vec::new());
    }

    fn write_tagged(&mut self, batch: &mut Vec<AuditEvent>, cores: &mut Vec<u16>) {
        if self.stdout {
            audit_sink::write_json_lines(&mut std::io::stdout().lock(), batch);
        }
        let n = batch.len();
        let sent = (std::mem::take(batch), std::mem::take(cores));
        if self.tx.blocking_send(sent).is_err() {
            // Only after the writer stopped, which happens after the drain thread stopped.
            tracing::error!(records = n, "audit writer gone: records not persisted");
        }
    }
}

/// How the writer runs besides its pool.
#[derive(Debug, Default)]
pub struct WriterOptions {
    /// Echo every record to stdout as a JSON line.
    pub stdout: bool,
    /// Learns after each commit which producers' records are stored
    /// (`INTENTGATE_AUDIT_DURABILITY=sync`): the data plane's commit watch.
    pub watch: Option<Arc<dyn CommitListener>>,
    /// Signs a checkpoint of every chain head each batch moves.
    pub signer: Option<Arc<Signer>>,
    /// Exports an `audit.insert` span for each sampled call's committed record.
    pub trace: Option<crate::otlp::Exporter>,
}

/// A sink for the drain thread and the writer task to spawn on the control plane runtime.
pub fn start(
    pool: PgPool,
    stats: Arc<WriterStats>,
    options: WriterOptions,
) -> (ChainSink, impl Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let sink = ChainSink {
        tx,
        stdout: options.stdout,
    };
    (sink, run(pool, rx, stats, options))
}

/// Tells `watch` that the first `n` records of `tags` are committed.
fn report(watch: Option<&dyn CommitListener>, tags: &[u16]) {
    let Some(watch) = watch else { return };
    let mut counts: Vec<u64> = Vec::new();
    for &core in tags {
        let i = usize::from(core);
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
    }
    for (core, n) in counts.into_iter().enumerate() {
        if n > 0 {
            watch.advance(u16::try_from(core).unwrap_or(u16::MAX), n);
        }
    }
}

/// Writer connections in async mode. Chains are split between them by key, so each chain
/// keeps one writer (and its order) and the writers never wait on each other's head locks.
/// Sync mode keeps one: the commit watch needs each core's records committed in order.
pub const WRITERS: usize = 2;

/// Which writer appends a chain (FNV-1a of the chain key).
fn partition(chain_key: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in chain_key.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % WRITERS
}

type Batch = (Vec<AuditEvent>, Vec<u16>);

async fn run(
    pool: PgPool,
    mut rx: mpsc::Receiver<Batch>,
    stats: Arc<WriterStats>,
    options: WriterOptions,
) {
    let WriterOptions {
        watch,
        signer,
        trace,
        ..
    } = options;
    if watch.is_some() {
        return commit_loop(pool, rx, stats, watch, signer, trace).await;
    }
    let mut senders = Vec::with_capacity(WRITERS);
    let mut writers = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let (tx, part_rx) = mpsc::channel(CHANNEL_BATCHES);
        let task = commit_loop(
            pool.clone(),
            part_rx,
            Arc::clone(&stats),
            None,
            signer.clone(),
            trace.clone(),
        );
        writers.push(tokio::spawn(task));
        senders.push(tx);
    }
    while let Some((events, _)) = rx.recv().await {
        let mut parts: Vec<Vec<AuditEvent>> = (0..WRITERS).map(|_| Vec::new()).collect();
        for e in events {
            parts[partition(e.chain_key())].push(e);
        }
        for (tx, part) in senders.iter().zip(parts) {
            // A full partition waits here, and back-pressure reaches the rings as before.
            if !part.is_empty() && tx.send((part, Vec::new())).await.is_err() {
                tracing::error!("audit writer task ended early: records not persisted");
            }
        }
    }
    drop(senders);
    for w in writers {
        let _ = w.await;
    }
}

async fn commit_loop(
    pool: PgPool,
    mut rx: mpsc::Receiver<Batch>,
    stats: Arc<WriterStats>,
    watch: Option<Arc<dyn CommitListener>>,
    signer: Option<Arc<Signer>>,
    trace: Option<crate::otlp::Exporter>,
) {
    let mut ids = intentgate_shared::trace::IdGen::seeded({
        use std::hash::{BuildHasher as _, Hasher as _};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    let mut pending: Vec<AuditEvent> = Vec::with_capacity(MAX_BATCH);
    // Producer of each pending record (empty when the feeder did not tag them).
    let mut tags: Vec<u16> = Vec::with_capacity(MAX_BATCH);
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some((b, t)) => {
                    pending.extend(b);
                    tags.extend(t);
                }
                None => return,
            }
        }
        while pending.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((b, t)) => {
                    pending.extend(b);
                    tags.extend(t);
                }
                Err(_) => break,
            }
        }
        let n = pending.len().min(MAX_BATCH);
        let mut delay = Duration::from_millis(20);
        loop {
            let begun = intentgate_shared::trace::now_ns();
            let append_started = std::time::Instant::now();
            let append = sql::append_signed(&pool, &pending[..n], signer.as_deref());
            let result = tokio::time::timeout(APPEND_TIMEOUT, append)
                .await
                .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut));
            match result {
                Ok(()) => {
                    stats.persisted.fetch_add(n as u64, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats
                        .append_duration
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .observe(append_started.elapsed());
                    // The runbook's chain-advance event, one per committed batch.
                    tracing::debug!(rows = n, "audit.insert");
                    if let Some(exporter) = &trace {
                        let ended = intentgate_shared::trace::now_ns();
                        for t in pending[..n].iter().filter_map(|e| e.trace.as_deref()) {
                            exporter.offer(vec![crate::otlp::insert_span(
                                t,
                                ids.span_id(),
                                begun,
                                ended,
                                n,
                            )]);
                        }
                    }
                    pending.drain(..n);
                    let done = n.min(tags.len());
                    report(watch.as_deref(), &tags[..done]);
                    tags.drain(..done);
                    break;
                }
                Err(e) => {
                    let failures = stats.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        error = %e,
                        records = n,
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "audit append failed; holding the records and retrying (new calls are refused once the queue is full)"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
