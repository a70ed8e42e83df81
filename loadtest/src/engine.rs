//! The load generator: keep-alive HTTP/1.1 connections, each writing pre-built request bytes
//! and reading the status line, `Content-Length` and body of the answer.
//!
//! Open loop (`Load::Rate`): the run has one global schedule, request `g` is due at
//! `start + g / rate`, and connection `k` of `C` owns requests `k, k + C, k + 2C, …`. Latency
//! is measured from the *intended* send time, so a stalled server is charged for every
//! request that should have been sent during the stall (coordinated omission corrected, as
//! wrk2 does); the service time from the actual send and the client's own lateness (actual
//! minus intended send) are recorded beside it. Each open-loop connection is its own blocking
//! thread (pinned to the client cores) that sleeps until ~200 µs before its send time and
//! spins the rest, so sends are microsecond-precise. (On monoio, a connection waiting for its
//! send time must yield in a loop — the timer has millisecond resolution — and answers to the
//! other connections of the thread were then only picked up once every connection was idle,
//! which added up to one send interval to every latency.)
//!
//! Closed loop (`Load::Max`): each connection sends as soon as its previous answer arrived;
//! connections are tasks spread over client threads, one monoio runtime per thread.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
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
#[expect(
    clippy::expect_used,
    reason = "constant bounds that HdrHistogram accepts"
)]
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

    /// Records one answer (counted always; measured only when due inside the window).
    fn record(
        &mut self,
        clock: &Clock,
        scenario: Scenario,
        status: u16,
        body: &[u8],
        t: Times,
        paced: bool,
    ) {
        self.all_answers += 1;
        if t.intended < clock.measure_from {
            return;
        }
        let outcome = classify(status, body);
        let s = self.scenarios.entry(scenario).or_default();
        *s.outcomes.entry(outcome).or_default() += 1;
        s.samples
            .entry(outcome)
            .or_insert_with(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self.latency.record(ns(t.done - t.intended));
        let _ = self.service.record(ns(t.done - t.sent));
        if paced {
            let _ = self
                .lateness
                .record(ns(t.sent.saturating_duration_since(t.intended)));
        }
        self.answers += 1;
    }

    fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// When one request was due, sent and answered.
#[derive(Debug, Clone, Copy)]
struct Times {
    intended: Instant,
    sent: Instant,
    done: Instant,
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
    let spawn = |name: String, f: Box<dyn FnOnce() -> Result<Tally, String> + Send>| {
        std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map_err(|e| format!("cannot start a client thread: {e}"))
    };
    let threads: Vec<_> = match job.load {
        Load::Max => (0..job.threads)
            .map(|t| {
                let job = job.clone();
                spawn(
                    format!("loadtest-{t}"),
                    Box::new(move || client_thread(&job, t, clock)),
                )
            })
            .collect::<Result<_, _>>()?,
        Load::Rate(rate) => (0..job.connections)
            .map(|k| {
                let job = job.clone();
                spawn(
                    format!("loadtest-c{k}"),
                    Box::new(move || Ok(paced_connection(&job, k, rate, clock))),
                )
            })
            .collect::<Result<_, _>>()?,
    };
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
#[derive(Debug)]
enum Failure {
    Closed,
    Timeout,
    Framing,
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Timeout => "timeout",
            Self::Framing => "bad framing",
        }
    }
}

impl Connection {
    async fn run(self) {
        let mut stream = None;
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let step = self.job.connections;
        let mut g = self.k;
        loop {
            if Instant::now() < self.clock.start {
                monoio::time::sleep(self.clock.start - Instant::now()).await;
            }
            let intended = Instant::now();
            if intended >= self.clock.end {
                break;
            }
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
            let mut tally = self.tally.borrow_mut();
            match answer {
                Ok(Ok((status, body_at, keep_alive))) => {
                    let times = Times {
                        intended,
                        sent,
                        done,
                    };
                    let body = buf.get(body_at.clone()).unwrap_or_default();
                    tally.record(&self.clock, *scenario, status, body, times, false);
                    buf.drain(..body_at.end);
                    if !keep_alive {
                        stream = None;
                    }
                }
                Ok(Err(failure)) => {
                    tally.error(failure.kind());
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

/// Where the answer in `buf` is, once it is all there: status, body range, keep-alive.
fn framed(buf: &[u8]) -> Result<Option<(u16, Range<usize>, bool)>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Framing),
    };
    let mut keep_alive = true;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Streamed answers are not what this client measures.
            return Err(Failure::Framing);
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let len = crate::framing::declared_length(resp.headers).ok_or(Failure::Framing)?;
    Ok((buf.len() >= head + len).then(|| (resp.code.unwrap_or(0), head..head + len, keep_alive)))
}

/// Writes one request and reads its answer: status, where the body is in `buf`, and
/// whether the connection stays open.
async fn exchange(
    stream: &mut TcpStream,
    request: Rc<Vec<u8>>,
    buf: &mut Vec<u8>,
) -> Result<(u16, Range<usize>, bool), Failure> {
    let (res, _) = stream.write_all(request).await;
    res.map_err(|_| Failure::Closed)?;
    loop {
        if let Some(answer) = framed(buf)? {
            return Ok(answer);
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

/// The blocking twin of `exchange`, for paced connections (the socket has a read timeout).
fn exchange_blocking(
    stream: &mut std::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(u16, Range<usize>, bool), Failure> {
    stream.write_all(request).map_err(|_| Failure::Closed)?;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(answer) = framed(buf)? {
            return Ok(answer);
        }
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Failure::Timeout);
            }
            _ => return Err(Failure::Closed),
        }
    }
}

/// One open-loop connection on its own thread: request `k + i·C` is due at
/// `start + (k + i·C) / rate`.
fn paced_connection(job: &Job, k: usize, rate: f64, clock: Clock) -> Tally {
    if let Some(cpus) = &job.cpus {
        let _ = monoio::utils::bind_to_cpu_set([cpus.nth(k)]);
    }
    let mut tally = Tally::new();
    let mut stream: Option<std::net::TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let step = job.connections;
    let mut g = k;
    loop {
        let intended = clock.start + Duration::from_secs_f64(g as f64 / rate);
        if intended >= clock.end {
            break;
        }
        let now = Instant::now();
        if now >= clock.end {
            // Behind schedule at the end: what the schedule wanted but was never sent.
            let missed = (clock.end - intended).as_secs_f64();
            tally.unsent += (missed * rate / step as f64) as u64 + 1;
            break;
        }
        pace_until(intended);
        if stream.is_none() {
            match std::net::TcpStream::connect_timeout(&job.addr, job.timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(job.timeout));
                    stream = Some(s);
                }
                Err(_) => {
                    tally.error("connect");
                    std::thread::sleep(Duration::from_millis(50));
                    g += step;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let (scenario, bytes) = match job.deck.get(g % job.deck.len().max(1)) {
            Some(r) => (r.scenario, &r.bytes),
            None => break,
        };
        let sent = Instant::now();
        match exchange_blocking(s, bytes, &mut buf) {
            Ok((status, body_at, keep_alive)) => {
                let times = Times {
                    intended,
                    sent,
                    done: Instant::now(),
                };
                let body = buf.get(body_at.clone()).unwrap_or_default();
                tally.record(&clock, scenario, status, body, times, true);
                buf.drain(..body_at.end);
                if !keep_alive {
                    stream = None;
                }
            }
            Err(failure) => {
                tally.error(failure.kind());
                stream = None;
                buf.clear();
            }
        }
        g += step;
    }
    tally
}

/// Sleeps until ~200 µs before `at` (the kernel's sleep overshoots by tens of µs), then spins
/// with `sched_yield`, so a connection thread whose answer arrived meanwhile on the same core
/// runs at once instead of after the spin.
fn pace_until(at: Instant) {
    let early = Duration::from_micros(200);
    let now = Instant::now();
    if at > now + early {
        std::thread::sleep(at - now - early);
    }
    while Instant::now() < at {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_framed_by_length_and_streams_or_unframed_ones_refused() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let (status, body, keep) = framed(ok).unwrap().unwrap();
        assert_eq!((status, &ok[body], keep), (200, &b"{}"[..], true));
        assert!(
            framed(&ok[..ok.len() - 1]).unwrap().is_none(),
            "partial body"
        );
        assert!(
            framed(b"HTTP/1.1 200 OK\r\nContent-").unwrap().is_none(),
            "partial head"
        );
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(!framed(close).unwrap().unwrap().2);
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(matches!(framed(bad), Err(Failure::Framing)), "{bad:?}");
        }
    }
}
