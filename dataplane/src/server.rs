//! The monoio workers: one thread per core, each with its own SO_REUSEPORT listener, its own
//! decision caches, upstream pool and audit ring. Threads share only the snapshot cell, the
//! budget counters and a few atomic counters.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Canceller};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};
use regorus::Value;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::cpu_list;
use intentgate_shared::snapshot::{Snapshot, SnapshotCell};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::trace::IdGen;

use crate::approvals::{self, ApprovalQueue, PendingRequest};
use crate::audit_ring::{AuditProducer, CommitWatch, Reservation};
use crate::budget::Budget;
use crate::http::{self, BodyFraming, Head, HttpError, Method};
use crate::intent::{self, IntentCache};
use crate::jsonrpc::{self, RpcError, code};
use crate::pipeline::{
    self, Call, Core, Escalation, Finished, IntentOutcome, Settings, Verdict, VerifiedToken,
};
use crate::stages::{self, Stages};
use crate::upstream::{Upstream, UpstreamTarget};

/// Everything the workers need, fixed at startup.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address (every worker binds it with SO_REUSEPORT).
    pub addr: SocketAddr,
    /// Worker threads.
    pub threads: usize,
    /// Pin worker `i` to the `i`-th CPU this process may run on (`taskset`, a container's
    /// cpuset), so pinning never moves a worker outside the CPUs the operator gave.
    pub pin: bool,
    /// Largest request body.
    pub max_body: usize,
    /// Time allowed to receive a request head (and its body).
    pub header_timeout: Duration,
    /// Keep-alive idle time before the connection is closed.
    pub idle_timeout: Duration,
    /// Open connections per worker before new ones are refused.
    pub max_connections_per_core: usize,
    /// Time allowed to write one batch of responses to a client.
    pub write_timeout: Duration,
    /// Time open connections get to finish on shutdown.
    pub drain_timeout: Duration,
    /// Decision switches.
    pub settings: Settings,
    /// Upstream, if any.
    pub upstream: Option<UpstreamTarget>,
    /// Intent extractor (`POST {url}/v1/extract`), if any.
    pub extractor: Option<UpstreamTarget>,
    /// The admin listener `/v1/admin/*` is relayed to, if any.
    pub admin_relay: Option<UpstreamTarget>,
    /// Presented to the admin listener (`X-IntentGate-Relay-Secret`) so it believes the
    /// relayed client address from this relay only.
    pub admin_relay_secret: Option<String>,
    /// How long an escalated call waits for a reviewer.
    pub approval_timeout: Duration,
    /// `/healthz` answers 503 when the snapshot is older than this (None: no bound).
    pub max_staleness: Option<Duration>,
    /// Which calls record trace spans (None: tracing off).
    pub trace_sampler: Option<intentgate_shared::trace::Sampler>,
    /// Which browser origins may call the MCP routes.
    pub origins: crate::origin::OriginPolicy,
    /// OAuth protected resource metadata, when published.
    pub oauth: Option<crate::resource_metadata::ResourceMetadata>,
}

impl ServerConfig {
    /// Defaults for `addr`: 5 s head timeout, 120 s idle, 10k connections per core.
    pub fn new(addr: SocketAddr, settings: Settings) -> Self {
        Self {
            addr,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            pin: true,
            max_body: 1 << 20,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            max_connections_per_core: 10_000,
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(15),
            settings,
            upstream: None,
            extractor: None,
            admin_relay: None,
            admin_relay_secret: None,
            approval_timeout: Duration::from_secs(300),
            max_staleness: None,
            trace_sampler: None,
            origins: crate::origin::OriginPolicy::default(),
            oauth: None,
        }
    }
}

/// State shared by all workers.
#[derive(Debug)]
pub struct Shared {
    /// Published snapshot.
    pub snapshot: Arc<SnapshotCell>,
    /// Budget counters.
    pub budget: Arc<Budget>,
    /// Set to stop accepting; workers finish in-flight requests and exit.
    pub stopping: AtomicBool,
    /// Set on SIGTERM before `stopping`: calls are still served, but `/healthz` answers 503
    /// so load balancers route elsewhere, and each answer closes its connection so keep-alive
    /// clients move too.
    pub draining: AtomicBool,
    /// Open connections, all workers.
    pub connections: AtomicUsize,
    /// The approvals queue (None: escalations deny).
    pub approvals: Option<Arc<ApprovalQueue>>,
    /// `INTENTGATE_AUDIT_DURABILITY=sync`: how far the audit records are committed. A
    /// decision is answered, and an allowed call forwarded, only once its record is.
    pub commit_watch: Option<Arc<CommitWatch>>,
    /// Per-core counters and histograms, summed when scraped.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Longest wait for an audit commit in sync mode; past it the connection is closed without
/// an answer (a decision must not be returned unrecorded).
const SYNC_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running data plane.
#[derive(Debug)]
pub struct Running {
    /// The driver the workers use (`io_uring` or `epoll`).
    pub driver: &'static str,
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts draining: `/healthz` answers 503 `draining`, calls are still served.
    pub fn start_draining(&self) {
        self.shared.draining.store(true, Ordering::Release);
    }

    /// Stops accepting, waits up to `grace` for open connections to finish, joins the workers.
    pub fn shutdown(self, grace: Duration) {
        self.shared.stopping.store(true, Ordering::Release);
        let deadline = Instant::now() + grace;
        while self.shared.connections.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

type Runtime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

fn build_runtime() -> io::Result<(Runtime, &'static str)> {
    let rt: Runtime = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(1024)
        .build()
    {
        Ok(rt) => rt,
        // The io_uring probe can pass while the full ring fails (e.g. locked-memory limits).
        Err(_) => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .with_entries(1024)
            .build()?
            .into(),
    };
    let kind = match &rt {
        monoio::FusionRuntime::Uring(_) => "io_uring",
        monoio::FusionRuntime::Legacy(_) => "epoll",
    };
    Ok((rt, kind))
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`, e.g.
/// `0-3,6`); empty when unreadable (then worker `i` is pinned to CPU `i`).
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| cpu_list::parse(list, MAX_CPUS))
        .unwrap_or_default()
}

/// Linux's largest `CONFIG_NR_CPUS`.
const MAX_CPUS: usize = 8192;

/// Starts the workers. Returns once every worker has bound its listener.
pub fn start(
    config: ServerConfig,
    shared: Arc<Shared>,
    producers: Vec<AuditProducer>,
) -> io::Result<Running> {
    if producers.len() != config.threads {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "one audit producer per worker is required",
        ));
    }
    let cpus = allowed_cpus();
    let mut addr = config.addr;
    let mut threads = Vec::new();
    let mut driver = "epoll";
    for (i, producer) in producers.into_iter().enumerate() {
        let (ready_tx, ready_rx) =
            std::sync::mpsc::channel::<io::Result<(SocketAddr, &'static str)>>();
        let config = ServerConfig {
            addr,
            ..config.clone()
        };
        let shared = Arc::clone(&shared);
        let cpu = cpus.get(i % cpus.len().max(1)).copied().unwrap_or(i);
        let t = std::thread::Builder::new()
            .name(format!("dataplane-{i}"))
            .spawn(move || {
                if config.pin {
                    // Pinning is an optimisation: a container without the CPU keeps running unpinned.
                    let _ = monoio::utils::bind_to_cpu_set([cpu]);
                }
                let (mut rt, kind) = match build_runtime() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let opts = ListenerOpts::new()
                        .reuse_port(true)
                        .reuse_addr(true)
                        .backlog(4096);
                    let listener = match TcpListener::bind_with_config(config.addr, &opts) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let local = listener.local_addr().unwrap_or(config.addr);
                    let _ = ready_tx.send(Ok((local, kind)));
                    Worker::new(config, shared, producer, i)
                        .serve(listener)
                        .await;
                });
            })?;
        let (local, kind) = ready_rx
            .recv()
            .map_err(|_| io::Error::other("data plane worker died during startup"))??;
        // With port 0 the first worker picks the port; the others share it.
        addr = local;
        driver = kind;
        threads.push(t);
    }
    Ok(Running {
        driver,
        local_addr: addr,
        shared,
        threads,
    })
}

struct Worker {
    config: ServerConfig,
    shared: Arc<Shared>,
    core: RefCell<Core>,
    audit: RefCell<AuditProducer>,
    upstream: Option<Upstream>,
    extractor: Option<Upstream>,
    admin: Option<Upstream>,
    intents: RefCell<IntentCache>,
    scratch: jsonrpc::ScratchPool,
    open: Cell<usize>,
    /// This worker's index into `shared.metrics`.
    index: usize,
    /// Trace and span ids for sampled calls.
    ids: RefCell<IdGen>,
}

impl Worker {
    fn new(
        config: ServerConfig,
        shared: Arc<Shared>,
        audit: AuditProducer,
        index: usize,
    ) -> Rc<Self> {
        let upstream = config.upstream.clone().map(Upstream::new);
        let extractor = config.extractor.clone().map(Upstream::new);
        let admin = config.admin_relay.clone().map(Upstream::new);
        Rc::new(Self {
            config,
            shared,
            core: RefCell::new(Core::new()),
            audit: RefCell::new(audit),
            upstream,
            extractor,
            admin,
            intents: RefCell::new(IntentCache::default()),
            scratch: jsonrpc::ScratchPool::default(),
            open: Cell::new(0),
            index,
            ids: RefCell::new(IdGen::seeded({
                use std::hash::{BuildHasher as _, Hasher as _};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            })),
        })
    }

    async fn serve(self: Rc<Self>, listener: TcpListener) {
        'accept: loop {
            // A cancelable accept survives the shutdown tick: under io_uring, dropping an
            // in-flight accept could lose a connection the kernel already accepted.
            let canceller = Canceller::new();
            let mut accept = std::pin::pin!(listener.cancelable_accept(canceller.handle()));
            let accepted = loop {
                monoio::select! {
                    r = &mut accept => break r,
                    _ = monoio::time::sleep(Duration::from_millis(100)) => {
                        if self.shared.stopping.load(Ordering::Acquire) {
                            let _ = canceller.cancel();
                            // A connection accepted during the race is closed: we are stopping.
                            let _ = accept.await;
                            break 'accept;
                        }
                    }
                }
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(_) => {
                    // EMFILE and friends fail at once: back off instead of spinning the core.
                    monoio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            if self.open.get() >= self.config.max_connections_per_core {
                monoio::spawn(refuse(stream, self.config.write_timeout));
                continue;
            }
            self.open.set(self.open.get() + 1);
            self.shared.connections.fetch_add(1, Ordering::AcqRel);
            let me = Rc::clone(&self);
            monoio::spawn(async move {
                me.connection(stream, peer).await;
                me.open.set(me.open.get() - 1);
                me.shared.connections.fetch_sub(1, Ordering::AcqRel);
            });
            // Under steady load an accept completes before every shutdown tick, so the
            // tick alone would never see the flag. The connection just accepted is still
            // served (its answer closes it).
            if self.shared.stopping.load(Ordering::Acquire) {
                break 'accept;
            }
        }
        // Stop queueing new connections in the kernel, then let open ones finish their
        // current request, within the drain bound.
        drop(listener);
        let deadline = Instant::now() + self.config.drain_timeout;
        while self.open.get() > 0 && Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn connection(&self, mut stream: TcpStream, peer: SocketAddr) {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut chunked = http::Chunked::default();
        let remote = peer.to_string();
        let mut started: Option<Instant> = None;
        let mut continue_sent = false;
        // Head, body and framing overhead of one request may not exceed this.
        let max_buffer = http::MAX_HEAD_BYTES + self.config.max_body + 64 * 1024;
        loop {
            // Serve every complete request already buffered (pipelining), then write once.
            let mut close = false;
            loop {
                match self.frame(&buf, &mut chunked) {
                    Ok(Some((head, consumed, is_chunked))) => {
                        started = None;
                        continue_sent = false;
                        let body: &[u8] = if is_chunked {
                            &chunked.body
                        } else {
                            body_of(&buf, &head, consumed)
                        };
                        close = head.close
                            || self.shared.stopping.load(Ordering::Acquire)
                            || self.shared.draining.load(Ordering::Acquire);
                        let started = Instant::now();
                        let from = out.len();
                        let mut relay = None;
                        self.handle(&buf, &head, body, &remote, close, &mut out, &mut relay)
                            .await;
                        let method = match head.method {
                            Some(Method::Get) => 0,
                            Some(Method::Post) => 1,
                            _ => 2,
                        };
                        self.shared.metrics.core(self.index).request(
                            crate::metrics::route_index(&buf[head.path.clone()]),
                            method,
                            crate::metrics::status_index(&out[from..]),
                            started.elapsed(),
                        );
                        buf.drain(..consumed);
                        chunked.reset();
                        if let Some(job) = relay {
                            // Answers queued before this one go first, then the stream.
                            if !out.is_empty() {
                                if !self.committed().await {
                                    return;
                                }
                                if !self.flush(&mut stream, &mut out).await {
                                    return;
                                }
                            }
                            if !self.relay(&mut stream, job).await {
                                return;
                            }
                        }
                        if close {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        http::write_error(&mut out, e, true);
                        close = true;
                        break;
                    }
                }
            }
            if !close && buf.len() > max_buffer {
                http::write_error(
                    &mut out,
                    HttpError {
                        status: 413,
                        message: "request too large",
                    },
                    true,
                );
                close = true;
            }
            if !close && !continue_sent && wants_continue(&buf, self.config.max_body) {
                out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                continue_sent = true;
            }
            if !out.is_empty() && !self.committed().await {
                return;
            }
            if !out.is_empty() && !self.flush(&mut stream, &mut out).await {
                return;
            }
            if close {
                return;
            }
            // Need more bytes: the head timeout runs from the first byte of a request, the
            // idle timeout between requests. Idle waits wake every 250 ms to notice shutdown.
            let idle = buf.is_empty();
            let deadline = if idle {
                Instant::now() + self.config.idle_timeout
            } else {
                *started.get_or_insert_with(Instant::now) + self.config.header_timeout
            };
            let ready = loop {
                if idle && self.shared.stopping.load(Ordering::Acquire) {
                    return;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break false;
                }
                let slice = if idle {
                    left.min(Duration::from_millis(250))
                } else {
                    left
                };
                match monoio::time::timeout(slice, stream.readable(false)).await {
                    Ok(Ok(())) => break true,
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
            };
            if !ready {
                if !idle {
                    http::write_error(
                        &mut out,
                        HttpError {
                            status: 408,
                            message: "request not received in time",
                        },
                        true,
                    );
                    let _ = monoio::time::timeout(self.config.write_timeout, stream.write_all(out))
                        .await;
                }
                return;
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(8192);
            }
            let len = buf.len();
            let (res, slice) = stream.read(buf.slice_mut(len..)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if started.is_none() {
                        started = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// In sync durability: waits until every record this core pushed so far is committed
    /// (one wait covers all pipelined answers). `false`: not within the timeout.
    async fn committed(&self) -> bool {
        let Some(watch) = &self.shared.commit_watch else {
            return true;
        };
        let ticket = self.audit.borrow().last_ticket();
        match watch.wait(ticket) {
            None => true,
            Some(rx) => matches!(
                monoio::time::timeout(SYNC_COMMIT_TIMEOUT, rx).await,
                Ok(Ok(()))
            ),
        }
    }

    /// Before an allowed call leaves for the upstream. In sync durability (with an
    /// upstream) the allow decision is recorded now and its commit awaited; `None`: it was not
    /// committed in time and the call must not be forwarded. Otherwise the slot waits for
    /// the record written after the forward.
    async fn before_forward(&self, slot: Reservation, event: &AuditEvent) -> Option<Forwarded> {
        if self.shared.commit_watch.is_none() || self.upstream.is_none() {
            return Some(Forwarded::RecordAfter(slot));
        }
        let mut early = event.clone();
        early.reason.push_str(" (recorded before forwarding)");
        self.audit.borrow_mut().push_reserved(slot, early);
        self.committed().await.then_some(Forwarded::RecordedBefore)
    }

    /// After the forward: writes the call's record, or, when it was recorded before, only a
    /// failure.
    fn after_forward(&self, record: Forwarded, event: AuditEvent) {
        match record {
            Forwarded::RecordAfter(slot) => {
                self.audit.borrow_mut().push_reserved(slot, event);
            }
            // The answer waits for this record's commit too (`committed`); a full ring here
            // only loses the failure detail, the forward itself is on record.
            Forwarded::RecordedBefore if event.decision == Decision::Block.as_str() => {
                let _ = self.audit.borrow_mut().push(event);
            }
            Forwarded::RecordedBefore => {}
        }
    }

    /// A complete request at the start of `buf`: its head, total length, and whether the body
    /// was de-chunked into `chunked.body`.
    fn frame(
        &self,
        buf: &[u8],
        chunked: &mut http::Chunked,
    ) -> Result<Option<(Head, usize, bool)>, HttpError> {
        let Some((head, head_len)) = http::parse_head(buf, self.config.max_body)? else {
            return Ok(None);
        };
        match head.body {
            BodyFraming::Empty => Ok(Some((head, head_len, false))),
            BodyFraming::Length(n) if buf.len() >= head_len + n => {
                Ok(Some((head, head_len + n, false)))
            }
            BodyFraming::Length(_) => Ok(None),
            BodyFraming::Chunked => match chunked.decode(&buf[head_len..], self.config.max_body)? {
                Some(used) => Ok(Some((head, head_len + used, true))),
                None => Ok(None),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn handle(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let path = &buf[head.path.clone()];
        let method = head.method.unwrap_or(Method::Other);
        if let Some(origin) = head.origin.clone()
            && matches!(path, b"/v1/mcp" | b"/v1/tool-call")
            && !self.config.origins.allows(&buf[origin])
        {
            // DNS rebinding: a page elsewhere whose name resolves to this gateway.
            let body: &[u8] = if path == b"/v1/mcp" {
                br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"origin not allowed (INTENTGATE_ALLOWED_ORIGINS)"}}"#
            } else {
                br#"{"error":"origin not allowed (INTENTGATE_ALLOWED_ORIGINS)"}"#
            };
            return http::write_response(out, 403, body, close, &[]);
        }
        match (path, method) {
            (b"/healthz", Method::Get) => {
                let status = if self.shared.draining.load(Ordering::Acquire) {
                    "draining"
                } else if self.stale() {
                    "stale"
                } else {
                    "ok"
                };
                let body = format!(
                    "{{\"status\":\"{status}\",\"version\":\"{}\"}}",
                    intentgate_shared::VERSION
                );
                http::write_response(
                    out,
                    if status == "ok" { 200 } else { 503 },
                    body.as_bytes(),
                    close,
                    &[],
                );
            }
            (p, Method::Get) if self.config.oauth.as_ref().is_some_and(|m| m.serves(p)) => {
                if let Some(m) = &self.config.oauth {
                    http::write_response(out, 200, &m.body, close, &[]);
                }
            }
            // Liveness: the worker answers. Readiness (stale snapshot, draining) is /healthz.
            (b"/livez", Method::Get) => {
                http::write_response(out, 200, br#"{"status":"alive"}"#, close, &[]);
            }
            (b"/v1/mcp", Method::Post) => {
                self.mcp(buf, head, body, remote, close, out, relay).await
            }
            (b"/v1/tool-call", Method::Post) => {
                self.tool_call(buf, head, body, remote, close, out).await
            }
            (b"/v1/mcp", Method::Get | Method::Delete) => {
                self.mcp_stream_or_end(buf, head, remote, close, out, relay)
                    .await;
            }
            (b"/healthz" | b"/livez" | b"/v1/mcp" | b"/v1/tool-call", _) => {
                http::write_error(
                    out,
                    HttpError {
                        status: 405,
                        message: "method not allowed",
                    },
                    close,
                );
            }
            (p, _)
                if (p.starts_with(b"/v1/admin/") || p == b"/v1/admin") && self.admin.is_some() =>
            {
                self.relay_admin(buf, head, body, remote, close, out).await;
            }
            (p, _) if p.starts_with(b"/v1/admin/") || p == b"/v1/admin" => {
                http::write_error(
                    out,
                    HttpError {
                        status: 404,
                        message: "admin API is not enabled on this listener",
                    },
                    close,
                );
            }
            _ => http::write_error(
                out,
                HttpError {
                    status: 404,
                    message: "no such route",
                },
                close,
            ),
        }
    }

    fn call<'a>(
        &self,
        buf: &'a [u8],
        head: &Head,
        tool: &'a str,
        arguments: Option<&'a Value>,
        remote: &'a str,
    ) -> Call<'a> {
        Call {
            authorization: head.authorization.clone().map(|r| &buf[r]),
            intent_prompt: head.intent_prompt.clone().map(|r| &buf[r]),
            tool,
            arguments,
            remote_ip: remote,
            now: Timestamp::now(),
        }
    }

    /// Relays an admin request to the control plane listener, passing the caller's address.
    async fn relay_admin(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(admin) = &self.admin else { return };
        let text = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
        let mut headers: Vec<(&str, &[u8])> = vec![("X-IntentGate-Relayed-For", remote.as_bytes())];
        if let Some(secret) = &self.config.admin_relay_secret {
            headers.push(("X-IntentGate-Relay-Secret", secret.as_bytes()));
        }
        if let Some(v) = text(&head.authorization) {
            headers.push(("Authorization", v));
        }
        if let Some(v) = text(&head.elevation_id) {
            headers.push(("X-IntentGate-Elevation-Id", v));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", b"application/json"));
        }
        let (Ok(method), Ok(path)) = (
            std::str::from_utf8(&buf[head.method_name.clone()]),
            std::str::from_utf8(&buf[head.target.clone()]),
        ) else {
            return http::write_error(
                out,
                HttpError {
                    status: 400,
                    message: "malformed HTTP request",
                },
                close,
            );
        };
        let req = crate::upstream::Outgoing {
            stream_events: false,
            method,
            path,
            headers: &headers,
            body,
            pass_errors: true,
        };
        match admin.request(&req).await {
            Ok(resp) => http::write_response(out, resp.status, &resp.body, close, &[]),
            Err(_) => http::write_error(
                out,
                HttpError {
                    status: 502,
                    message: "admin API unavailable",
                },
                close,
            ),
        }
    }

    /// The snapshot could not be confirmed current within the staleness bound.
    fn stale(&self) -> bool {
        self.config
            .max_staleness
            .is_some_and(|max| self.shared.snapshot.is_stale(max))
    }

    /// The four checks, consulting the intent extractor between capability and policy.
    /// The four checks of a `tools/call`, each timed on `stages`.
    async fn decide(&self, snap: &Snapshot, call: &Call<'_>, stages: &mut Stages) -> Verdict {
        let settings = &self.config.settings;
        let metrics = self.shared.metrics.core(self.index);
        if self.stale() {
            // A revocation made elsewhere may be missing: refuse rather than guess.
            let mut event = AuditEvent::new(call.now, Decision::Block, call.tool);
            event.remote_ip = call.remote_ip.to_owned();
            let reason = STALE.to_string();
            return capability_denied(event, reason);
        }
        let capability = self
            .core
            .borrow_mut()
            .capability_stage(snap, settings, call);
        stages.end(stages::CAPABILITY, metrics);
        if let Some((_, start, took)) = self.record_revocation_lookup() {
            stages.span("revocation_lookup", start, start + took);
        }
        let passed = match capability {
            Ok(p) => p,
            Err(v) => return *v,
        };
        let outcome = match (call.intent_prompt, &self.extractor) {
            (Some(prompt), Some(extractor)) => {
                let tenant = passed
                    .token
                    .as_ref()
                    .map_or("", |t| t.token.claims.tenant.as_str());
                let agent = passed
                    .token
                    .as_ref()
                    .map_or("", |t| t.token.claims.sub.as_str());
                let outcome = self.extract(extractor, prompt, tenant, agent).await;
                stages.end(stages::INTENT, metrics);
                outcome
            }
            _ => IntentOutcome::NotConsulted,
        };
        let verdict = self.core.borrow_mut().finish(
            snap,
            settings,
            &self.shared.budget,
            call,
            passed,
            outcome,
        );
        if let Some(t) = self.core.borrow_mut().policy_done.take() {
            stages.end_at(stages::POLICY, t, metrics);
        }
        match verdict {
            Finished::Escalated(esc) => {
                let v = self.escalate(call, esc).await;
                stages.end(stages::APPROVAL, metrics);
                v
            }
            Finished::Done(v) => {
                let reached_budget = match &v {
                    Verdict::Allow { .. } => true,
                    Verdict::Deny { event, .. } => event.check == Check::Budget.as_str(),
                };
                if reached_budget {
                    stages.end(stages::BUDGET, metrics);
                }
                v
            }
        }
    }

    /// The capability check of a request that names no tool (MCP methods other than
    /// `tools/call`, GET and DELETE): refused while the snapshot is stale, else the token
    /// (if any) must verify, be unrevoked and valid now.
    fn session_verdict(
        &self,
        snap: &Snapshot,
        buf: &[u8],
        head: &Head,
        what: &str,
        remote: &str,
    ) -> Verdict {
        if self.stale() {
            let mut event = AuditEvent::new(Timestamp::now(), Decision::Block, what);
            event.remote_ip = remote.to_owned();
            return capability_denied(event, STALE.to_string());
        }
        let verdict = self.core.borrow_mut().authorize_session(
            snap,
            &self.config.settings,
            &self.call(buf, head, what, None, remote),
        );
        self.record_revocation_lookup();
        verdict
    }

    /// Records the capability stage's token cache use and revocation lookup, and returns
    /// the lookup, if it made one.
    fn record_revocation_lookup(&self) -> Option<(bool, Instant, Duration)> {
        let mut core = self.core.borrow_mut();
        let metrics = self.shared.metrics.core(self.index);
        if let Some(hit) = core.token_cache_hit.take() {
            metrics.token_cache[usize::from(!hit)].inc();
        }
        let lookup = core.revocation.take();
        if let Some((revoked, _, took)) = lookup {
            metrics.revocation(revoked, took);
        }
        lookup
    }

    /// The MCP transport's header rules (`mcp_transport`): a served protocol version, and for
    /// 2026-07-28 clients headers that repeat the body.
    fn transport_rules(
        &self,
        buf: &[u8],
        head: &Head,
        req: &jsonrpc::Request<'_>,
    ) -> Result<(), crate::mcp_transport::Refusal> {
        use crate::mcp_transport::{self as t, Revision};
        let at = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
        if t::revision(at(&head.mcp_protocol_version))? != Revision::Modern {
            return Ok(());
        }
        let name = match req.method {
            "resources/read" => req.param_str("uri"),
            _ => req.param_str("name"),
        };
        t::check_modern(at(&head.mcp_method), at(&head.mcp_name), req.method, name)
    }

    /// A call's stage clock, sampled for tracing as the configured sampler decides.
    fn stages(&self, buf: &[u8], head: &Head, started: Instant) -> Stages {
        Stages::begin(
            started,
            self.config.trace_sampler.as_ref(),
            head.traceparent.clone().map(|r| &buf[r]),
            &mut self.ids.borrow_mut(),
        )
    }

    /// Why a token that passed before an approval wait may no longer be used, if it may not.
    fn recheck(&self, token: Option<&VerifiedToken>, tool: &str) -> Option<String> {
        if self.stale() {
            return Some(STALE.into());
        }
        let t = token?;
        let snap = self.shared.snapshot.load();
        let c = &t.token.claims;
        if snap.revoked.is_revoked(&c.jti, &c.tenant)
            || snap.revoked.is_revoked(&c.root_jti, &c.tenant)
        {
            return Some("token revoked".into());
        }
        t.token
            .check(Timestamp::now().unix_seconds(), &c.sub, tool)
            .err()
            .map(|d| d.to_string())
    }

    /// Hands an escalated call to a reviewer and waits (without blocking the core) for
    /// approve, reject or the approval timeout (compat §6).
    async fn escalate(&self, call: &Call<'_>, esc: Box<Escalation>) -> Verdict {
        let Some(queue) = &self.shared.approvals else {
            let reason = format!(
                "escalation requested ({}) but approvals are off (INTENTGATE_APPROVALS_BACKEND=off)",
                esc.policy_reason
            );
            return pipeline::deny(
                esc.event,
                Check::Policy,
                code::POLICY,
                "policy escalation required",
                reason,
            );
        };
        let pending_id = approvals::new_pending_id(call.now);
        let e = &esc.event;
        let row = PendingRequest {
            pending_id: pending_id.clone(),
            tenant: e.tenant.clone(),
            capability_token_id: e.capability_token_id.clone(),
            root_capability_token_id: e.root_capability_token_id.clone(),
            agent_id: e.agent_id.clone(),
            tool: e.tool.clone(),
            // Reviewers see the arguments; beyond 64 KiB they are left out so that pending
            // rows cannot hold the whole body size each.
            args: call
                .arguments
                .and_then(|a| serde_json::to_vec(a).ok())
                .filter(|a| a.len() <= MAX_APPROVAL_ARGS)
                .and_then(|a| serde_json::from_slice(&a).ok()),
            intent_summary: e.intent_summary.clone(),
            reason: esc.policy_reason.clone(),
            status: approvals::Status::Pending,
            created_at: call.now,
            decided_at: None,
            decided_by: String::new(),
            decide_note: String::new(),
            requires_step_up: e.requires_step_up,
        };
        let Some(waiter) = queue.enqueue(row) else {
            let reason = "the approvals queue is full; escalation refused".to_string();
            return pipeline::deny(
                esc.event,
                Check::Policy,
                code::POLICY,
                "policy escalation failed",
                reason,
            );
        };
        let mut escalated = esc.event.clone();
        escalated.decision = Decision::Escalate.as_str().into();
        escalated.check = Check::Policy.as_str().into();
        escalated.reason = format!("escalate: {}", esc.policy_reason);
        escalated.pending_id.clone_from(&pending_id);
        if self.audit.borrow_mut().push(escalated).is_err() {
            queue.expire(&pending_id);
            let mut event = esc.event;
            event.pending_id = pending_id;
            let reason = "audit queue full: the escalation could not be recorded".to_string();
            return pipeline::deny(
                event,
                Check::Policy,
                code::POLICY,
                "policy escalation failed",
                reason,
            );
        }
        let timeout = self.config.approval_timeout;
        let decided = monoio::select! {
            r = waiter => r.ok(),
            _ = monoio::time::sleep(timeout) => None,
        };
        let mut event = esc.event.clone();
        event.pending_id.clone_from(&pending_id);
        match decided {
            Some(d) if d.approved => {
                let reason = reviewer_reason("approved", &d);
                self.shared.metrics.core(self.index).approvals[0].inc();
                let mut approved = event.clone();
                approved.check = Check::Policy.as_str().into();
                approved.reason.clone_from(&reason);
                approved.decided_by.clone_from(&d.decided_by);
                // The approval is recorded on the call's final record too, so a full ring
                // here loses nothing that the final record does not say.
                let _ = self.audit.borrow_mut().push(approved);
                // The wait may have been long: the token must still be valid, unrevoked and
                // the snapshot current before the approved call runs.
                if let Some(reason) = self.recheck(esc.token.as_deref(), call.tool) {
                    return capability_denied(event, reason);
                }
                let mut esc = esc;
                esc.event = event;
                esc.event.decided_by = d.decided_by;
                Core::after_approval(
                    &self.config.settings,
                    &self.shared.budget,
                    call,
                    *esc,
                    reason,
                )
            }
            Some(d) => {
                self.shared.metrics.core(self.index).approvals[1].inc();
                let reason = reviewer_reason("rejected", &d);
                event.decided_by = d.decided_by;
                pipeline::deny(
                    event,
                    Check::Policy,
                    code::POLICY,
                    "policy: rejected by reviewer",
                    reason,
                )
            }
            None => {
                self.shared.metrics.core(self.index).approvals[2].inc();
                queue.expire(&pending_id);
                let reason = format!("approval window expired ({}s)", timeout.as_secs());
                pipeline::deny(
                    event,
                    Check::Policy,
                    code::POLICY,
                    "policy: approval window expired",
                    reason,
                )
            }
        }
    }

    async fn extract(
        &self,
        extractor: &Upstream,
        prompt: &[u8],
        tenant: &str,
        agent: &str,
    ) -> IntentOutcome {
        if prompt.len() > intent::MAX_PROMPT_BYTES {
            return IntentOutcome::Failed(format!(
                "intent prompt exceeds {} bytes",
                intent::MAX_PROMPT_BYTES
            ));
        }
        let Ok(prompt) = std::str::from_utf8(prompt) else {
            return IntentOutcome::Failed("intent prompt is not valid UTF-8".into());
        };
        let key = intent::cache_key(tenant, agent, prompt);
        if let Some(hit) = self.intents.borrow_mut().get(&key) {
            return IntentOutcome::Extracted(hit);
        }
        let reply = match extractor.post(&intent::request_body(prompt, agent)).await {
            Ok(r) => r,
            Err(e) => {
                return IntentOutcome::Failed(format!(
                    "intent extractor {}: {} (fail closed)",
                    e.kind(),
                    e.detail()
                ));
            }
        };
        match intent::parse_response(&reply.body) {
            Ok(i) => {
                self.intents.borrow_mut().insert(key, i.clone());
                IntentOutcome::Extracted(i)
            }
            Err(e) => IntentOutcome::Failed(format!("{e} (fail closed)")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn mcp(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let started = Instant::now();
        let mut payload = Vec::with_capacity(256);
        let mut scratch = self.scratch.take();
        let req = match jsonrpc::parse_request(&mut scratch, body) {
            Ok(r) => r,
            Err((err, id)) => {
                jsonrpc::write_error(&mut payload, id, &err);
                http::write_response(out, 200, &payload, close, &[]);
                return;
            }
        };
        if let Err(refusal) = self.transport_rules(buf, head, &req) {
            let body = match refusal.code {
                Some(code) => {
                    let mut b = Vec::with_capacity(128);
                    jsonrpc::write_error(&mut b, req.id, &RpcError::new(code, refusal.message));
                    b
                }
                None => {
                    let mut b = Vec::from(&b"{\"error\":"[..]);
                    intentgate_shared::gojson::write_str(&mut b, &refusal.message);
                    b.push(b'}');
                    b
                }
            };
            return http::write_response(out, 400, &body, close, &[]);
        }
        let notification = req.is_notification();
        let snap = self.shared.snapshot.load();
        if req.method != "tools/call" {
            let Some(slot) = self.audit.borrow_mut().reserve() else {
                return audit_full(out, close);
            };
            let verdict = self.session_verdict(&snap, buf, head, req.method, remote);
            match verdict {
                Verdict::Deny { error, event } => {
                    return self.respond_denied(
                        slot,
                        req.id,
                        &error,
                        event,
                        notification,
                        close,
                        out,
                        head,
                    );
                }
                Verdict::Allow { mut event } => {
                    let Some(record) = self.before_forward(slot, &event).await else {
                        return audit_unconfirmed(out);
                    };
                    let mut answer = match self
                        .passthrough(&req, body, &mut event, McpIn::of(buf, head), !notification)
                        .await
                    {
                        UpstreamReply::Whole(a) => a,
                        UpstreamReply::Stream(upstream) => {
                            // A tools/list stream is narrowed to the token's tools as its
                            // answer passes.
                            let narrow = if req.method == "tools/list" {
                                head.authorization.clone().and_then(|r| {
                                    self.core.borrow_mut().verify(&snap, &buf[r]).ok()
                                })
                            } else {
                                None
                            };
                            *relay = Some(Relay {
                                upstream,
                                record: Some(record),
                                event,
                                stages: Stages::begin(
                                    started,
                                    None,
                                    None,
                                    &mut self.ids.borrow_mut(),
                                ),
                                id: req.id.map(<[u8]>::to_vec),
                                started,
                                close,
                                narrow,
                            });
                            return;
                        }
                    };
                    if req.method == "tools/list" {
                        self.filter_tools(&snap, buf, head, &mut answer, &mut event);
                    }
                    event.latency_ms = elapsed_ms(started);
                    self.after_forward(record, event);
                    answer.write(out, notification, close);
                }
            }
            return;
        }
        let call = match req.tool_call() {
            Ok(c) => c,
            Err(err) => {
                jsonrpc::write_error(&mut payload, req.id, &err);
                return http::write_response(out, 200, &payload, close, &[]);
            }
        };
        // The audit slot comes first: a call that cannot be recorded must not consume budget.
        let Some(slot) = self.audit.borrow_mut().reserve() else {
            return audit_full(out, close);
        };
        let mut stages = self.stages(buf, head, started);
        let verdict = self
            .decide(
                &snap,
                &self.call(buf, head, call.name, call.arguments.as_ref(), remote),
                &mut stages,
            )
            .await;
        match verdict {
            Verdict::Deny { error, mut event } => {
                event.latency_ms = elapsed_ms(started);
                stages.finish(&mut event);
                self.respond_denied(slot, req.id, &error, event, notification, close, out, head)
            }
            Verdict::Allow { mut event } => {
                let Some(record) = self.before_forward(slot, &event).await else {
                    return audit_unconfirmed(out);
                };
                let answer = match self
                    .forward_call(
                        &req,
                        body,
                        &mut event,
                        started,
                        &mut stages,
                        McpIn::of(buf, head),
                    )
                    .await
                {
                    UpstreamReply::Whole(a) => a,
                    UpstreamReply::Stream(upstream) => {
                        // Relayed by the connection loop, which owns the socket; audited
                        // when the stream ends.
                        *relay = Some(Relay {
                            upstream,
                            record: Some(record),
                            event,
                            stages,
                            id: req.id.map(<[u8]>::to_vec),
                            started,
                            close,
                            narrow: None,
                        });
                        return;
                    }
                };
                event.latency_ms = elapsed_ms(started);
                stages.finish(&mut event);
                self.after_forward(record, event);
                answer.write(out, notification, close);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn respond_denied(
        &self,
        slot: Reservation,
        id: Option<&[u8]>,
        error: &RpcError,
        event: AuditEvent,
        notification: bool,
        close: bool,
        out: &mut Vec<u8>,
        head: &Head,
    ) {
        self.audit.borrow_mut().push_reserved(slot, event);
        // OAuth resource-server mode: a call without any token gets 401 and the challenge
        // that tells a standard MCP client where to authenticate (the JSON-RPC error stays
        // in the body for the IntentGate SDKs).
        let challenge = self
            .config
            .oauth
            .as_ref()
            .filter(|_| head.authorization.is_none() && error.code == code::CAPABILITY)
            .map(|m| ("WWW-Authenticate", m.challenge.as_str()));
        let extra: &[(&str, &str)] = match &challenge {
            Some(h) => std::slice::from_ref(h),
            None => &[],
        };
        if notification && challenge.is_none() {
            return http::write_response(out, 202, b"", close, &[]);
        }
        let mut payload = Vec::with_capacity(256);
        jsonrpc::write_error(&mut payload, id, error);
        let status = if challenge.is_some() { 401 } else { 200 };
        http::write_response(out, status, &payload, close, extra);
    }

    /// Forwards an allowed `tools/call`, or answers with the stub result without an upstream.
    async fn forward_call(
        &self,
        req: &jsonrpc::Request<'_>,
        body: &[u8],
        event: &mut AuditEvent,
        started: Instant,
        stages: &mut Stages,
        mcp: McpIn<'_>,
    ) -> UpstreamReply {
        let mut payload = Vec::with_capacity(512);
        let Some(upstream) = &self.upstream else {
            // Written directly: this path is the gateway's own throughput ceiling.
            let mut result = Vec::with_capacity(256);
            result.extend_from_slice(br#"{"content":[{"type":"text","text":"stub: no upstream configured; gateway authorized this call"}],"isError":false,"_intentgate":{"decision":"allow","reason":"stub: no upstream configured","latency_ms":"#);
            result.extend_from_slice(elapsed_ms(started).to_string().as_bytes());
            result.extend_from_slice(b"}}");
            event.reason.push_str(" (stub upstream)");
            jsonrpc::write_result(&mut payload, req.id, &result);
            return UpstreamReply::Whole(Answer::json(payload));
        };
        let sent = Instant::now();
        stages.mark_at(sent);
        let traceparent = stages.next_traceparent();
        let mut headers = mcp.headers();
        if let Some(tp) = traceparent.as_deref() {
            headers.push(("traceparent", tp.as_bytes()));
        }
        let answer = upstream.post_answer(body, &headers, true).await;
        let done = Instant::now();
        let metrics = self.shared.metrics.core(self.index);
        stages.end_at(stages::UPSTREAM, done, metrics);
        metrics.upstream_idle.set(upstream.idle() as u64);
        let outcome = match &answer {
            Ok(_) => 0,
            Err(e) => crate::metrics::OUTCOMES
                .iter()
                .position(|o| *o == e.kind())
                .unwrap_or(2),
        };
        metrics.forward(outcome, done.saturating_duration_since(sent));
        match answer {
            Ok(crate::upstream::Answered::Stream(stream)) => {
                event.upstream_status = i64::from(stream.status);
                UpstreamReply::Stream(stream)
            }
            Ok(crate::upstream::Answered::Whole(resp)) => {
                event.upstream_status = i64::from(resp.status);
                let session_id = resp.session_id.clone();
                if is_event_stream(&resp) {
                    // The stream is relayed as sent once its final answer is found.
                    return UpstreamReply::Whole(
                        match final_answer(&resp.body, req.id, self.config.max_body) {
                            Ok(_) => Answer {
                                body: resp.body,
                                sse: true,
                                session_id,
                            },
                            Err(reason) => {
                                let err = malformed_upstream(event, &reason);
                                jsonrpc::write_error(&mut payload, req.id, &err);
                                Answer::json(payload)
                            }
                        },
                    );
                }
                let body = match inject_block(&resp.body, elapsed_ms(started) as u64) {
                    Some(b) => b,
                    None => {
                        let err = malformed_upstream(event, "upstream returned non-JSON-RPC body");
                        jsonrpc::write_error(&mut payload, req.id, &err);
                        payload
                    }
                };
                UpstreamReply::Whole(Answer {
                    body,
                    sse: false,
                    session_id,
                })
            }
            Err(e) => {
                event.upstream_status = i64::from(e.status());
                let err = upstream_failure(event, &e);
                jsonrpc::write_error(&mut payload, req.id, &err);
                UpstreamReply::Whole(Answer::json(payload))
            }
        }
    }

    /// Relays an upstream event stream to the agent as it arrives (chunked
    /// `text/event-stream`), watching for the response to the request, then writes the call's
    /// audit record. The response head is already gone when a stream breaks, so the failure
    /// reaches the agent as a final JSON-RPC error event. False: close the connection.
    async fn relay(&self, stream: &mut TcpStream, job: Relay) -> bool {
        let Relay {
            mut upstream,
            record,
            mut event,
            stages,
            id,
            started,
            close,
            narrow,
        } = job;
        let mut head = String::from(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n",
        );
        if let Some(sid) = &upstream.session_id {
            head.push_str(&format!("Mcp-Session-Id: {sid}\r\n"));
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut client_ok = self.send_to_agent(stream, head.into_bytes()).await;
        let want: serde_json::Value = id
            .as_deref()
            .and_then(|i| serde_json::from_slice(i).ok())
            .unwrap_or(serde_json::Value::Null);
        let mut parser = crate::sse::Parser::new(self.config.max_body.max(1));
        let mut answered = false;
        let failure = loop {
            if !client_ok {
                // Closing the upstream stream is the cancellation (2026-07-28).
                event.reason.push_str(" (agent disconnected mid-stream)");
                break None;
            }
            match upstream.next().await {
                Ok(Some(bytes)) => match parser.push(&bytes) {
                    Ok(mut events) => {
                        // Whole events only, so a stream cut later leaves no half event
                        // at the agent.
                        let mut chunk = Vec::with_capacity(bytes.len() + 64);
                        for e in &mut events {
                            let parsed = serde_json::from_str::<serde_json::Value>(&e.data).ok();
                            if let Some(mut v) = parsed.filter(|v| {
                                v.get("id") == Some(&want)
                                    && (v.get("result").is_some() || v.get("error").is_some())
                            }) {
                                answered = true;
                                if let Some(token) = &narrow
                                    && narrow_tools(&mut v, token, &mut event)
                                {
                                    e.data = v.to_string();
                                }
                            }
                            crate::sse::write_event(&mut chunk, e);
                        }
                        if !chunk.is_empty() {
                            client_ok = self.send_to_agent(stream, http_chunk(&chunk)).await;
                        }
                        // The response ends the request's stream (servers SHOULD close it
                        // then; one that does not must not hold this connection).
                        if answered && record.is_some() {
                            break None;
                        }
                    }
                    Err(e) => break Some(format!("malformed upstream event stream: {e}")),
                },
                Ok(None) if parser.mid_event() => {
                    break Some("upstream event stream was cut mid-event".into());
                }
                Ok(None) if !answered && record.is_some() => {
                    break Some("upstream event stream ended without a response".into());
                }
                Ok(None) => break None,
                Err(_) if answered => break None,
                Err(e) => break Some(format!("upstream event stream failed: {}", e.detail())),
            }
        };
        // A GET stream has no answer to wait for: it just ends.
        if let Some(reason) = failure.filter(|_| record.is_some()) {
            let err = malformed_upstream(&mut event, &reason);
            if client_ok {
                let mut payload = Vec::with_capacity(256);
                jsonrpc::write_error(&mut payload, id.as_deref(), &err);
                let mut chunk = Vec::with_capacity(payload.len() + 32);
                crate::sse::write_event(
                    &mut chunk,
                    &crate::sse::Event {
                        data: String::from_utf8_lossy(&payload).into_owned(),
                        ..crate::sse::Event::default()
                    },
                );
                client_ok = self.send_to_agent(stream, http_chunk(&chunk)).await;
            }
        }
        if client_ok {
            client_ok = self.send_to_agent(stream, b"0\r\n\r\n".to_vec()).await;
        }
        event.latency_ms = elapsed_ms(started);
        stages.finish(&mut event);
        if let Some(record) = record {
            self.after_forward(record, event);
        }
        client_ok && !close
    }

    /// `GET /v1/mcp` (the server-to-client stream, resumed with `Last-Event-ID`) and
    /// `DELETE /v1/mcp` (ending a session) of the revisions with sessions: the capability
    /// check, then passed to the upstream with the session headers; the upstream's answer
    /// (often 405) goes back as it is, a GET's event stream is relayed for as long as both
    /// ends keep it open. 2026-07-28 has neither: 405.
    async fn mcp_stream_or_end(
        &self,
        buf: &[u8],
        head: &Head,
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
        relay: &mut Option<Relay>,
    ) {
        let get = head.method == Some(Method::Get);
        let not_allowed = |out: &mut Vec<u8>| {
            http::write_response(
                out,
                405,
                br#"{"error":"method not allowed"}"#,
                close,
                &[("Allow", "POST")],
            )
        };
        let version = head.mcp_protocol_version.clone().map(|r| &buf[r]);
        match crate::mcp_transport::revision(version) {
            Ok(crate::mcp_transport::Revision::Modern) => return not_allowed(out),
            Ok(_) => {}
            Err(refusal) => {
                let mut b = Vec::from(&b"{\"error\":"[..]);
                intentgate_shared::gojson::write_str(&mut b, &refusal.message);
                b.push(b'}');
                return http::write_response(out, 400, &b, close, &[]);
            }
        }
        let Some(upstream) = &self.upstream else {
            return not_allowed(out);
        };
        let Some(slot) = self.audit.borrow_mut().reserve() else {
            return audit_full(out, close);
        };
        let what = if get { "GET /v1/mcp" } else { "DELETE /v1/mcp" };
        let snap = self.shared.snapshot.load();
        let verdict = self.session_verdict(&snap, buf, head, what, remote);
        let mut event = match verdict {
            Verdict::Deny { error, event } => {
                self.audit.borrow_mut().push_reserved(slot, event);
                let mut payload = Vec::with_capacity(256);
                jsonrpc::write_error(&mut payload, Some(b"null"), &error);
                return http::write_response(out, 403, &payload, close, &[]);
            }
            Verdict::Allow { event } => event,
        };
        let mcp = McpIn::of(buf, head);
        let mut headers = mcp.headers();
        headers.push(("Accept", b"text/event-stream"));
        if let Some(r) = head.last_event_id.clone() {
            headers.push(("Last-Event-ID", &buf[r]));
        }
        let req = crate::upstream::Outgoing {
            method: if get { "GET" } else { "DELETE" },
            path: upstream.path(),
            headers: &headers,
            body: b"",
            pass_errors: true,
            stream_events: get,
        };
        let started = Instant::now();
        match upstream.send(&req).await {
            Ok(crate::upstream::Answered::Stream(stream)) => {
                event.upstream_status = i64::from(stream.status);
                event.reason.push_str(" (stream opened)");
                // Recorded now: the stream may stay open for hours.
                self.audit.borrow_mut().push_reserved(slot, event.clone());
                *relay = Some(Relay {
                    upstream: stream,
                    record: None,
                    event,
                    stages: Stages::begin(started, None, None, &mut self.ids.borrow_mut()),
                    id: None,
                    started,
                    close,
                    narrow: None,
                });
            }
            Ok(crate::upstream::Answered::Whole(resp)) => {
                event.upstream_status = i64::from(resp.status);
                self.audit.borrow_mut().push_reserved(slot, event);
                let session = resp.session_id.as_deref().map(|s| ("Mcp-Session-Id", s));
                let extra: &[(&str, &str)] = match &session {
                    Some(h) => std::slice::from_ref(h),
                    None => &[],
                };
                let ct = resp.content_type.as_deref().unwrap_or("application/json");
                http::write_response_as(out, resp.status, &resp.body, ct, close, extra);
            }
            Err(e) => {
                event.upstream_status = i64::from(e.status());
                let err = upstream_failure(&mut event, &e);
                self.audit.borrow_mut().push_reserved(slot, event);
                let mut payload = Vec::with_capacity(256);
                jsonrpc::write_error(&mut payload, Some(b"null"), &err);
                http::write_response(out, 502, &payload, close, &[]);
            }
        }
    }

    /// Writes the queued answers; false when the client is gone or does not read. A client
    /// that never reads must not hold the connection (and its buffer): the write has a
    /// deadline. `out` comes back empty, its allocation kept.
    async fn flush(&self, stream: &mut TcpStream, out: &mut Vec<u8>) -> bool {
        let write = monoio::time::timeout(
            self.config.write_timeout,
            stream.write_all(std::mem::take(out)),
        )
        .await;
        let Ok((res, back)) = write else {
            return false;
        };
        *out = back;
        out.clear();
        res.is_ok()
    }

    async fn send_to_agent(&self, stream: &mut TcpStream, bytes: Vec<u8>) -> bool {
        let write = monoio::time::timeout(self.config.write_timeout, stream.write_all(bytes)).await;
        matches!(write, Ok((Ok(_), _)))
    }

    /// Removes from a `tools/list` answer (JSON, or the final event of an event stream) the
    /// tools the caller's token may not call (`tool_allow` / `tool_deny` caveats), so an
    /// agent only sees what it may use. Cursors and every other field are kept; an answer
    /// without a token is left as it is.
    fn filter_tools(
        &self,
        snap: &Snapshot,
        buf: &[u8],
        head: &Head,
        answer: &mut Answer,
        event: &mut AuditEvent,
    ) {
        let Some(auth) = head.authorization.clone() else {
            return;
        };
        let Ok(token) = self.core.borrow_mut().verify(snap, &buf[auth]) else {
            return;
        };
        if answer.sse {
            let mut parser = crate::sse::Parser::new(self.config.max_body.max(1));
            let Ok(mut events) = parser.push(&answer.body) else {
                return;
            };
            // The list is the last event carrying a result.
            let last = events.iter_mut().rev().find_map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.data)
                    .ok()
                    .filter(|doc| doc.get("result").is_some())
                    .map(|doc| (e, doc))
            });
            if let Some((e, mut doc)) = last
                && narrow_tools(&mut doc, &token, event)
            {
                e.data = doc.to_string();
                let mut body = Vec::with_capacity(answer.body.len());
                for e in &events {
                    crate::sse::write_event(&mut body, e);
                }
                answer.body = body;
            }
        } else if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            && narrow_tools(&mut doc, &token, event)
            && let Ok(filtered) = serde_json::to_vec(&doc)
        {
            answer.body = filtered;
        }
    }

    /// Methods other than `tools/call`: forwarded as they are, or the local fallbacks.
    async fn passthrough(
        &self,
        req: &jsonrpc::Request<'_>,
        body: &[u8],
        event: &mut AuditEvent,
        mcp: McpIn<'_>,
        stream: bool,
    ) -> UpstreamReply {
        let mut payload = Vec::with_capacity(256);
        if let Some(upstream) = &self.upstream {
            match upstream.post_answer(body, &mcp.headers(), stream).await {
                Ok(crate::upstream::Answered::Stream(s)) => {
                    event.upstream_status = i64::from(s.status);
                    return UpstreamReply::Stream(s);
                }
                Ok(crate::upstream::Answered::Whole(resp)) => {
                    event.upstream_status = i64::from(resp.status);
                    let session_id = resp.session_id.clone();
                    let valid = if is_event_stream(&resp) {
                        final_answer(&resp.body, req.id, self.config.max_body).map(|_| true)
                    } else if resp.body.is_empty()
                        || serde_json::from_slice::<&serde_json::value::RawValue>(&resp.body)
                            .is_ok()
                    {
                        Ok(false)
                    } else {
                        Err("upstream returned non-JSON-RPC body".to_owned())
                    };
                    match valid {
                        Ok(sse) => {
                            return UpstreamReply::Whole(Answer {
                                body: resp.body,
                                sse,
                                session_id,
                            });
                        }
                        Err(reason) => {
                            let err = malformed_upstream(event, &reason);
                            jsonrpc::write_error(&mut payload, req.id, &err);
                        }
                    }
                }
                Err(e) => {
                    let err = upstream_failure(event, &e);
                    jsonrpc::write_error(&mut payload, req.id, &err);
                }
            }
            return UpstreamReply::Whole(Answer::json(payload));
        }
        let result: &[u8] = match req.method {
            "initialize" => br#"{"protocolVersion":"2025-03-26","serverInfo":{"name":"intentgate","version":"0.2"},"capabilities":{"tools":{}}}"#,
            "tools/list" => br#"{"tools":[]}"#,
            "ping" => b"{}",
            other => {
                let err = RpcError::new(code::METHOD_NOT_FOUND, format!("method not implemented: {other}"));
                jsonrpc::write_error(&mut payload, req.id, &err);
                return UpstreamReply::Whole(Answer::json(payload));
            }
        };
        jsonrpc::write_result(&mut payload, req.id, result);
        UpstreamReply::Whole(Answer::json(payload))
    }

    /// `POST /v1/tool-call` `{tool, args, agent_id?, session_id?}`: the same checks as a
    /// `tools/call` (the Go gateway's always-allow stub is not copied).
    async fn tool_call(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
    ) {
        let started = Instant::now();
        let mut scratch = self.scratch.take();
        let req = match jsonrpc::parse_tool_call_body(&mut scratch, body) {
            Ok(r) => r,
            Err(e) => {
                let b = serde_json::json!({"error": e.error, "detail": e.detail}).to_string();
                return http::write_response(out, 400, b.as_bytes(), close, &[]);
            }
        };
        let snap = self.shared.snapshot.load();
        let Some(slot) = self.audit.borrow_mut().reserve() else {
            return audit_full(out, close);
        };
        let mut stages = self.stages(buf, head, started);
        let verdict = self
            .decide(
                &snap,
                &self.call(buf, head, req.tool, req.args.as_ref(), remote),
                &mut stages,
            )
            .await;
        let (status, doc, mut event) = match verdict {
            Verdict::Deny { error, event } => {
                let doc = serde_json::json!({"decision": "block", "check": event.check, "reason": event.reason, "code": error.code});
                (403, doc, event)
            }
            Verdict::Allow { event } => {
                let doc = serde_json::json!({"decision": "allow", "reason": event.reason, "latency_ms": elapsed_ms(started)});
                (200, doc, event)
            }
        };
        event.latency_ms = elapsed_ms(started);
        stages.finish(&mut event);
        self.audit.borrow_mut().push_reserved(slot, event);
        http::write_response(out, status, doc.to_string().as_bytes(), close, &[]);
    }
}

/// `approved by alice: looks fine` (compat wording; an empty reviewer is `(anonymous)`).
fn reviewer_reason(verb: &str, d: &approvals::Decided) -> String {
    let who = if d.decided_by.is_empty() {
        "(anonymous)"
    } else {
        d.decided_by.as_str()
    };
    if d.note.is_empty() {
        format!("{verb} by {who}")
    } else {
        format!("{verb} by {who}: {}", d.note)
    }
}

/// Marks `event` as blocked at the upstream stage and builds the compat -32603 error
/// (`upstream <kind>`, data `{upstream_status, detail}`).
fn upstream_failure(event: &mut AuditEvent, e: &crate::upstream::UpstreamError) -> RpcError {
    event.decision = Decision::Block.as_str().into();
    event.check = Check::Upstream.as_str().into();
    event.reason = format!("upstream {}: {}", e.kind(), e.detail());
    let data = serde_json::json!({"upstream_status": e.status(), "detail": e.detail()});
    RpcError {
        code: code::INTERNAL,
        message: format!("upstream {}", e.kind()).into(),
        data: Some(data.to_string().into_bytes()),
    }
}

/// Largest arguments kept on a pending approval.
const MAX_APPROVAL_ARGS: usize = 64 * 1024;

/// Why calls are refused while the snapshot is stale.
const STALE: &str = "revocation snapshot is stale; token rejected (fail-closed)";

fn capability_denied(event: AuditEvent, reason: String) -> Verdict {
    pipeline::deny(
        event,
        Check::Capability,
        code::CAPABILITY,
        "capability check failed",
        reason,
    )
}

fn body_of<'a>(buf: &'a [u8], head: &Head, consumed: usize) -> &'a [u8] {
    match head.body {
        BodyFraming::Length(n) => &buf[consumed - n..consumed],
        _ => &[],
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// How a forwarded call's audit record is written ([`Worker::before_forward`]).
enum Forwarded {
    /// After the forward, into this slot (async durability).
    RecordAfter(Reservation),
    /// Before the forward, committed (sync durability).
    RecordedBefore,
}

/// Sync durability: the decision's record was not committed in time; nothing was forwarded.
fn audit_unconfirmed(out: &mut Vec<u8>) {
    http::write_response(
        out,
        503,
        br#"{"error":"audit record not committed in time: call not forwarded"}"#,
        true,
        &[("Retry-After", "1")],
    );
}

fn audit_full(out: &mut Vec<u8>, close: bool) {
    http::write_response(
        out,
        503,
        br#"{"error":"audit queue full: call refused so that no decision goes unrecorded"}"#,
        close,
        &[("Retry-After", "1")],
    );
}

/// Adds `_intentgate` to a JSON-RPC result object; `None` when the body is not JSON-RPC.
fn inject_block(body: &[u8], latency_ms: u64) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = doc.as_object_mut()?;
    if !obj.contains_key("result") && !obj.contains_key("error") {
        return None;
    }
    if let Some(result) = obj
        .get_mut("result")
        .and_then(serde_json::Value::as_object_mut)
    {
        result.insert(
            "_intentgate".into(),
            jsonrpc::intentgate_block("forwarded", latency_ms),
        );
    }
    serde_json::to_vec(&doc).ok()
}

async fn refuse(mut stream: TcpStream, write_timeout: Duration) {
    let mut out = Vec::new();
    http::write_error(
        &mut out,
        HttpError {
            status: 503,
            message: "too many connections on this core; retry later",
        },
        true,
    );
    let _ = monoio::time::timeout(write_timeout, stream.write_all(out)).await;
}

/// True when `buf` holds a complete head asking `Expect: 100-continue` whose body has not
/// started to arrive.
fn wants_continue(buf: &[u8], max_body: usize) -> bool {
    matches!(http::parse_head(buf, max_body), Ok(Some((head, len))) if head.expect_continue && buf.len() == len)
}

/// What `forward_call` got back: an answer to write, or an event stream to relay.
enum UpstreamReply {
    Whole(Answer),
    Stream(crate::upstream::EventStream),
}

/// A `tools/call` whose upstream answers with an event stream, handed to the connection
/// loop to relay ([`Worker::relay`]).
struct Relay {
    upstream: crate::upstream::EventStream,
    /// Where the call's record goes when the stream ends (None: recorded when it opened).
    record: Option<Forwarded>,
    event: AuditEvent,
    stages: Stages,
    id: Option<Vec<u8>>,
    started: Instant,
    close: bool,
    /// A `tools/list` answer is narrowed to this token's tools.
    narrow: Option<Arc<crate::pipeline::VerifiedToken>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

/// One HTTP/1.1 chunk.
fn http_chunk(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The MCP transport headers of an agent's request, passed on to the upstream.
#[derive(Debug, Clone, Copy, Default)]
struct McpIn<'a> {
    session: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    /// `Mcp-Method` and `Mcp-Name` (2026-07-28), already checked against the body.
    method: Option<&'a [u8]>,
    name: Option<&'a [u8]>,
    /// `Mcp-Param-*` headers, forwarded untouched.
    params: &'a [(std::ops::Range<usize>, std::ops::Range<usize>)],
    buf: &'a [u8],
}

impl<'a> McpIn<'a> {
    fn of(buf: &'a [u8], head: &'a Head) -> Self {
        Self {
            session: head.mcp_session_id.clone().map(|r| &buf[r]),
            version: head.mcp_protocol_version.clone().map(|r| &buf[r]),
            method: head.mcp_method.clone().map(|r| &buf[r]),
            name: head.mcp_name.clone().map(|r| &buf[r]),
            params: &head.mcp_params,
            buf,
        }
    }

    fn headers(&self) -> Vec<(&'a str, &'a [u8])> {
        let mut h: Vec<(&'a str, &'a [u8])> = [
            ("Mcp-Session-Id", self.session),
            ("MCP-Protocol-Version", self.version),
            ("Mcp-Method", self.method),
            ("Mcp-Name", self.name),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        let buf = self.buf;
        for (name, value) in self.params {
            // Header names are ASCII tokens (httparse checked them).
            if let Ok(n) = std::str::from_utf8(&buf[name.clone()]) {
                h.push((n, &buf[value.clone()]));
            }
        }
        h
    }
}

/// What goes back to the agent for a forwarded request.
#[derive(Debug)]
struct Answer {
    body: Vec<u8>,
    /// The body is an event stream (relayed as `text/event-stream`).
    sse: bool,
    /// The upstream's `Mcp-Session-Id`, passed back.
    session_id: Option<String>,
}

impl Answer {
    fn json(body: Vec<u8>) -> Self {
        Self {
            body,
            sse: false,
            session_id: None,
        }
    }

    fn write(&self, out: &mut Vec<u8>, notification: bool, close: bool) {
        let session = self.session_id.as_deref().map(|s| ("Mcp-Session-Id", s));
        let extra: &[(&str, &str)] = match &session {
            Some(h) => std::slice::from_ref(h),
            None => &[],
        };
        if notification {
            http::write_response(out, 202, b"", close, extra);
        } else if self.sse {
            http::write_response_as(out, 200, &self.body, "text/event-stream", close, extra);
        } else {
            http::write_response(out, 200, &self.body, close, extra);
        }
    }
}

fn is_event_stream(resp: &crate::upstream::Response) -> bool {
    resp.content_type.as_deref().is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
    })
}

/// The event of an upstream event stream that answers the request `id`: its final JSON-RPC
/// response. A stream that is cut, oversized, not UTF-8 or ends without one is malformed.
fn final_answer(
    body: &[u8],
    id: Option<&[u8]>,
    max_event: usize,
) -> Result<serde_json::Value, String> {
    let mut parser = crate::sse::Parser::new(max_event.max(1));
    let events = parser
        .push(body)
        .map_err(|e| format!("malformed upstream event stream: {e}"))?;
    if parser.mid_event() {
        return Err("upstream event stream was cut mid-event".into());
    }
    let want: serde_json::Value = id
        .and_then(|i| serde_json::from_slice(i).ok())
        .unwrap_or(serde_json::Value::Null);
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.data).ok())
        .find(|v| {
            v.get("id") == Some(&want) && (v.get("result").is_some() || v.get("error").is_some())
        })
        .ok_or_else(|| "upstream event stream ended without a response".into())
}

/// Marks `event` as blocked at the upstream stage for an answer that is not JSON-RPC, and
/// builds the agent's -32603.
fn malformed_upstream(event: &mut AuditEvent, reason: &str) -> RpcError {
    event.decision = Decision::Block.as_str().into();
    event.check = Check::Upstream.as_str().into();
    event.reason = reason.to_owned();
    RpcError::new(code::INTERNAL, reason.to_owned())
}

/// Removes the tools `allowed` refuses from a `tools/list` result; `(hidden, listed)`.
/// Removes from a `tools/list` result the tools `token` may not call, and notes on the
/// call's record how many; true when the document changed.
fn narrow_tools(
    doc: &mut serde_json::Value,
    token: &crate::pipeline::VerifiedToken,
    event: &mut AuditEvent,
) -> bool {
    let Some(tools) = doc
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(serde_json::Value::as_array_mut)
    else {
        return false;
    };
    let now = Timestamp::now().unix_seconds();
    let sub = &token.token.claims.sub;
    let before = tools.len();
    tools.retain(|t| {
        t.get("name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|name| token.token.check(now, sub, name).is_ok())
    });
    let hidden = before - tools.len();
    if hidden == 0 {
        return false;
    }
    if !event.reason.is_empty() {
        event.reason.push_str("; ");
    }
    event.reason.push_str(&format!(
        "{hidden} of {before} tools hidden by the token's caveats"
    ));
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allowed_cpus_of_this_process_are_read() {
        assert!(!super::allowed_cpus().is_empty());
    }
}
