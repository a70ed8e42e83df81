//! Phase 0, the runtime: what the workers are given ([`ServerConfig`], [`Shared`]), starting
//! one monoio thread per core (io_uring, or epoll where io_uring is refused), each pinned
//! within the CPUs this process may use and bound to its own SO_REUSEPORT listener, and
//! stopping them ([`Running`]). Everything after accept is in [`crate::connection`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::net::{ListenerOpts, TcpListener};

use intentgate_shared::cpu_list;
use intentgate_shared::snapshot::SnapshotCell;

use crate::approvals::ApprovalQueue;
use crate::audit_ring::{AuditProducer, CommitWatch};
use crate::budget::Budget;
use crate::decision::Settings;
use crate::server_requests::ServerRequests;
use crate::session_seal::SessionSeal;
use crate::upstream::UpstreamTarget;
use crate::worker::Worker;

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
    /// The keys and lifetime of the MCP session ids clients see (`session_seal`), derived
    /// once from the master key so every replica opens every replica's ids. None: a random
    /// key for this process, whose ids no other process opens.
    pub sessions: Option<Arc<SessionSeal>>,
}

/// How long a session lives when the configuration does not say (and never past its
/// token's expiry).
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);

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
            sessions: None,
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
    /// The requests upstreams sent to their clients that await a response (a client's
    /// response may be relayed through any core).
    pub server_requests: ServerRequests,
}

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

/// What a worker thread reports once its listener is bound: the address and driver.
type Ready = io::Result<(SocketAddr, &'static str)>;

/// What one worker is built with besides the configuration.
struct WorkerParts {
    shared: Arc<Shared>,
    producer: AuditProducer,
    index: usize,
    sessions: Arc<SessionSeal>,
}

/// One worker thread: pin, build the runtime, bind, report, serve until stopped.
fn worker_thread(
    config: ServerConfig,
    parts: WorkerParts,
    cpu: usize,
    ready: &std::sync::mpsc::Sender<Ready>,
) {
    if config.pin {
        // Pinning is an optimisation: a container without the CPU keeps running unpinned.
        let _ = monoio::utils::bind_to_cpu_set([cpu]);
    }
    let (mut rt, kind) = match build_runtime() {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e));
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
                let _ = ready.send(Err(e));
                return;
            }
        };
        let local = listener.local_addr().unwrap_or(config.addr);
        let _ = ready.send(Ok((local, kind)));
        let WorkerParts {
            shared,
            producer,
            index,
            sessions,
        } = parts;
        Worker::new(config, shared, producer, index, sessions)
            .serve(listener)
            .await;
    });
}

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
    // One key for every core of this process: a session opened on one core is used on
    // any other.
    let sessions = match &config.sessions {
        Some(s) => Arc::clone(s),
        None => Arc::new(SessionSeal::random(DEFAULT_SESSION_LIFETIME).map_err(io::Error::other)?),
    };
    let cpus = allowed_cpus();
    let mut addr = config.addr;
    let mut threads = Vec::new();
    let mut driver = "epoll";
    for (i, producer) in producers.into_iter().enumerate() {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
        let config = ServerConfig {
            addr,
            ..config.clone()
        };
        let shared = Arc::clone(&shared);
        let sessions = Arc::clone(&sessions);
        let cpu = cpus.get(i % cpus.len().max(1)).copied().unwrap_or(i);
        let t = std::thread::Builder::new()
            .name(format!("dataplane-{i}"))
            .spawn(move || {
                let worker = WorkerParts {
                    shared,
                    producer,
                    index: i,
                    sessions,
                };
                worker_thread(config, worker, cpu, &ready_tx);
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_allowed_cpus_of_this_process_are_read() {
        assert!(!super::allowed_cpus().is_empty());
    }
}
