//! The load generator: keep-alive HTTP/1.1 connections spread over client threads (one monoio
//! runtime per thread, pinned when asked), each writing pre-built request bytes and reading
//! the status line, `Content-Length` and body of the answer.
//!
//! Open loop (`Load::Rate`): the run has one global schedule, request `g` is due at
//! `start + g / rate`, and connection `k` of `C` owns requests `k, k + C, k + 2C, …`. Latency
//! is measured from the *intended* send time, so a stalled server is charged for every
//! request that should have been sent during the stall (coordinated omission corrected, as
//! wrk2 does); the service time from the actual send and the client's own lateness (actual
//! minus intended send) are recorded beside it. Timers only get within ~1.5 ms: the last
//! stretch before a send is spent yielding, so sends are microsecond-precise.
//!
//! Closed loop (`Load::Max`): each connection sends as soon as its previous answer arrived.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::cpu::CpuSet;
use crate::outcome::{Outcome, classify};
use crate::scenario::{Request, Scenario};

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Closed loop: as fast as answers come back.
    Max,
    /// Open loop: this many requests per second in total, whatever the answers do.
    Rate(f64),
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Max => f.write_str("max"),
            Self::Rate(r) => write!(f, "{r}/s"),
        }
    }
}

/// One measured run against one target.
#[derive(Debug, Clone)]
pub struct Job {
    pub addr: SocketAddr,
    pub deck: Arc<Vec<Request>>,
    pub connections: usize,
    pub threads: usize,
    pub cpus: Option<CpuSet>,
    pub load: Load,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
}

/// Answers of one scenario, by outcome, with the first body seen for each outcome.
#[derive(Debug, Clone, Default)]
pub struct ScenarioTally {
    pub outcomes: BTreeMap<Outcome, u64>,
    pub samples: BTreeMap<Outcome, String>,
}

/// Everything one run recorded (measured window only, except `all_answers`).
#[derive(Debug, Clone)]
pub struct Tally {
    /// From the intended send time (open loop), or the send (closed loop), in ns.
    pub latency: Histogram<u64>,
    /// From the actual send, in ns.
    pub service: Histogram<u64>,
    /// Actual minus intended send time, in ns (open loop).
    pub lateness: Histogram<u64>,
    pub scenarios: BTreeMap<Scenario, ScenarioTally>,
    /// Transport failures by kind (connect, timeout, closed, framing).
    pub errors: BTreeMap<&'static str, u64>,
    /// Answers in the measured window.
    pub answers: u64,
    /// Answers including the warm-up (CPU per request is over the whole run).
    pub all_answers: u64,
    /// The measured window.
    pub window: Duration,
    /// Requests the schedule wanted sent in the window but the client never sent (open loop).
    pub unsent: u64,
}

/// 1 ns .. 60 s at 3 significant digits: HdrHistogram's usual latency range.
#[allow(clippy::expect_used)] // constant bounds that HdrHistogram accepts
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

impl Tally {
    fn new() -> Self {
        Self {
            latency: histogram(),
            service: histogram(),
            lateness: histogram(),
            scenarios: BTreeMap::new(),
            errors: BTreeMap::new(),
            answers: 0,
            all_answers: 0,
            window: Duration::ZERO,
            unsent: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.lateness.add(&other.lateness);
        for (s, t) in other.scenarios {
            let mine = self.scenarios.entry(s).or_default();
            for (o, n) in t.outcomes {
                *mine.outcomes.entry(o).or_default() += n;
            }
            for (o, body) in t.samples {
                mine.samples.entry(o).or_insert(body);
            }
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.answers += other.answers;
        self.all_answers += other.all_answers;
        self.unsent += other.unsent;
    }

    fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// Times shared by every connection of a run.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// Runs the job to its end and returns what it recorded.
pub fn run(job: &Job) -> Result<Tally, String> {
    // Threads connect first; the schedule starts once all could have.
    let start = Instant::now() + Duration::from_millis(100);
    let clock = Clock {
        start,
        measure_from: start + job.warmup,
        end: start + job.warmup + job.duration,
    };
    let threads: Vec<_> = (0..job.threads)
        .map(|t| {
            let job = job.clone();
            std::thread::Builder::new()
                .name(format!("loadtest-{t}"))
                .spawn(move || client_thread(&job, t, clock))
                .map_err(|e| format!("cannot start a client thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = Tally::new();
    for t in threads {
        total.merge(
            t.join()
                .map_err(|_| "a client thread panicked".to_owned())??,
        );
    }
    total.window = job.duration;
    Ok(total)
}

fn client_thread(job: &Job, t: usize, clock: Clock) -> Result<Tally, String> {
    if let Some(cpus) = &job.cpus {
        let _ = monoio::utils::bind_to_cpu_set([cpus.nth(t)]);
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start a client runtime: {e}"))?;
    let tally = Rc::new(RefCell::new(Tally::new()));
    let deck: Rc<Vec<(Scenario, Rc<Vec<u8>>)>> = Rc::new(
        job.deck
            .iter()
            .map(|r| (r.scenario, Rc::new(r.bytes.clone())))
            .collect(),
    );
    rt.block_on(async {
        let mut tasks = Vec::new();
        for k in (t..job.connections).step_by(job.threads) {
            let conn = Connection {
                job: job.clone(),
                k,
                clock,
                deck: deck.clone(),
                tally: tally.clone(),
            };
            tasks.push(monoio::spawn(conn.run()));
        }
        for task in tasks {
            task.await;
        }
    });
    Ok(Rc::try_unwrap(tally)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| rc.borrow().clone()))
}

struct Connection {
    job: Job,
    k: usize,
    clock: Clock,
    deck: Rc<Vec<(Scenario, Rc<Vec<u8>>)>>,
    tally: Rc<RefCell<Tally>>,
}

/// Why an exchange failed.
enum Failure {
    Closed,
    Framing,
}

impl Connection {
    async fn run(self) {
        let mut stream = None;
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let step = self.job.connections;
        let mut g = self.k;
        loop {
            let intended = match self.job.load {
                Load::Max => Instant::now().max(self.clock.start),
                Load::Rate(r) => self.clock.start + Duration::from_secs_f64(g as f64 / r),
            };
            if intended >= self.clock.end {
                break;
            }
            if Instant::now() >= self.clock.end {
                // The schedule wanted more than this connection could send.
                let missed = (self.clock.end - intended).as_secs_f64();
                if let Load::Rate(r) = self.job.load {
                    self.tally.borrow_mut().unsent += (missed * r / step as f64) as u64 + 1;
                }
                break;
            }
            wait_until(intended).await;
            if stream.is_none() {
                match TcpStream::connect(self.job.addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        stream = Some(s);
                    }
                    Err(_) => {
                        self.tally.borrow_mut().error("connect");
                        // A target that is down: try again a little later, not in a hot loop.
                        monoio::time::sleep(Duration::from_millis(50)).await;
                        g += step;
                        continue;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { continue };
            let (scenario, bytes) = &self.deck[g % self.deck.len()];
            let sent = Instant::now();
            let exchange = exchange(s, bytes.clone(), &mut buf);
            let answer = monoio::time::timeout(self.job.timeout, exchange).await;
            let done = Instant::now();
            let measured = intended >= self.clock.measure_from;
            let mut tally = self.tally.borrow_mut();
            match answer {
                Ok(Ok((status, body_at, keep_alive))) => {
                    tally.all_answers += 1;
                    if measured {
                        let body = buf.get(body_at.clone()).unwrap_or_default();
                        let outcome = classify(status, body);
                        let t = tally.scenarios.entry(*scenario).or_default();
                        *t.outcomes.entry(outcome).or_default() += 1;
                        if !t.samples.contains_key(&outcome) {
                            let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
                            t.samples.insert(outcome, text.into_owned());
                        }
                        let ns =
                            |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
                        let _ = tally.latency.record(ns(done - intended));
                        let _ = tally.service.record(ns(done - sent));
                        if matches!(self.job.load, Load::Rate(_)) {
                            let _ = tally
                                .lateness
                                .record(ns(sent.saturating_duration_since(intended)));
                        }
                        tally.answers += 1;
                    }
                    buf.drain(..body_at.end);
                    if !keep_alive {
                        stream = None;
                    }
                }
                Ok(Err(failure)) => {
                    tally.error(match failure {
                        Failure::Closed => "closed",
                        Failure::Framing => "bad framing",
                    });
                    stream = None;
                    buf.clear();
                }
                Err(_) => {
                    tally.error("timeout");
                    stream = None;
                    buf.clear();
                }
            }
            g += step;
        }
    }
}

/// Writes one request and reads its answer: status, where the body is in `buf`, and
/// whether the connection stays open.
async fn exchange(
    stream: &mut TcpStream,
    request: Rc<Vec<u8>>,
    buf: &mut Vec<u8>,
) -> Result<(u16, std::ops::Range<usize>, bool), Failure> {
    let (res, _) = stream.write_all(request).await;
    res.map_err(|_| Failure::Closed)?;
    loop {
        {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(buf) {
                Ok(httparse::Status::Complete(head)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut len = None;
                    let mut keep_alive = true;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            len = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            // Streamed answers are not what this client measures.
                            return Err(Failure::Framing);
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            keep_alive = !h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    let len = len.ok_or(Failure::Framing)?;
                    if buf.len() >= head + len {
                        return Ok((status, head..head + len, keep_alive));
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(Failure::Framing),
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(buf.capacity().max(16 * 1024));
        }
        let len = buf.len();
        let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..)).await;
        *buf = slice.into_inner();
        match res {
            Ok(n) if n > 0 => {}
            _ => return Err(Failure::Closed),
        }
    }
}

/// Sleeps until `at`: on the timer until ~1.5 ms before (it only has millisecond
/// resolution), then by yielding to the runtime, so other connections keep running.
async fn wait_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > Duration::from_micros(2_000) {
            monoio::time::sleep(left - Duration::from_micros(1_500)).await;
        } else {
            YieldNow(false).await;
        }
    }
}

/// Gives every other ready task (and the I/O driver) a turn, once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
